package kube_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/urunner/urunner/kube"
)

// waitRollout restarts the workload and waits for its rollout, at most
// wait. A restart that conflicts with its controller's writes is read and
// made again, as the run does.
func waitRollout(t *testing.T, c *kube.Client, kind, ns, name string, wait time.Duration) (kube.Rollout, string) {
	t.Helper()
	w := get(t, c, kind, ns, name)
	for attempt := 0; ; attempt++ {
		_, err := c.Restart(t.Context(), w, kube.Restart{At: time.Now()})
		if err == nil {
			break
		}
		if !errors.Is(err, kube.ErrConflict) || attempt == 20 {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		w = get(t, c, kind, ns, name)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	r, msg, err := c.WaitRollout(ctx, w)
	if err != nil {
		t.Fatalf("%s %s: %v", kind, name, err)
	}
	return r, msg
}

// A restarted workload's rollout is judged as `kubectl rollout status`
// judges it: complete when every replica runs the new template (here, no
// replicas, or a DaemonSet without nodes), failed when a Deployment passes
// its progressDeadlineSeconds, unfinished (no error) when the wait ends
// first, and a person's to finish for an OnDelete workload.
func TestWaitRollout(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	deadline := func(s int32) func(*appsv1.Deployment) {
		return func(d *appsv1.Deployment) { d.Spec.ProgressDeadlineSeconds = &s }
	}
	deployment(t, ns, "empty", 0)
	statefulSet(t, ns, "empty", 0)
	daemonSet(t, ns, "nodeless")
	deployment(t, ns, "pending-deadline", 1, deadline(1))
	deployment(t, ns, "pending", 1)
	statefulSet(t, ns, "ondelete", 1, func(s *appsv1.StatefulSet) {
		s.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType
	})
	for _, tc := range []struct {
		kind, name string
		want       kube.Rollout
		why        string
	}{
		{"Deployment", "empty", kube.RolloutComplete, "0 replicas updated and available"},
		{"StatefulSet", "empty", kube.RolloutComplete, "0 pods updated and ready"},
		{"DaemonSet", "nodeless", kube.RolloutComplete, "0 pods updated and available"},
		{"Deployment", "pending-deadline", kube.RolloutFailed, "progress deadline exceeded: "},
		// Why it still waits depends on how far its controller got.
		{"Deployment", "pending", kube.RolloutUnfinished, "stopped waiting: "},
		{"StatefulSet", "ondelete", kube.RolloutManual, "OnDelete update strategy"},
	} {
		t.Run(tc.kind+" "+tc.name, func(t *testing.T) {
			t.Parallel()
			wait := 30 * time.Second
			if tc.want == kube.RolloutUnfinished {
				wait = 2 * time.Second
			}
			got, why := waitRollout(t, c, tc.kind, ns, tc.name, wait)
			if got != tc.want || !strings.HasPrefix(why, tc.why) {
				t.Errorf("= %v (%s), want %v (%s…)", got, why, tc.want, tc.why)
			}
		})
	}
}

// A listed workload is Healthy when its rollout is complete as it is
// listed: a Deployment of no replicas once its controller saw it, not one
// whose pods never become available.
func TestAWorkloadIsHealthyWhenRolledOut(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	deployment(t, ns, "empty", 0)
	deployment(t, ns, "pending", 1)
	settled(t, c, "Deployment", ns, "empty") // fails unless it becomes Healthy
	time.Sleep(time.Second)
	if w := get(t, c, "Deployment", ns, "pending"); w.Healthy {
		t.Errorf("a Deployment whose one pod never runs is Healthy: %+v", w)
	}
}

// A Rollout is judged from the phase the Argo controller wrote for the
// generation it observed (written here as that controller does: it does
// not run on the ground).
func TestWaitRolloutOfARollout(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	dc := rollouts(t)
	for _, tc := range []struct {
		phase, message string
		observed       int64 // relative to the generation
		want           kube.Rollout
		why            string
	}{
		{"Healthy", "", 0, kube.RolloutComplete, "healthy"},
		{"Degraded", "ProgressDeadlineExceeded: timed out", 0, kube.RolloutFailed, "degraded: ProgressDeadlineExceeded: timed out"},
		{"Paused", "CanaryPauseStep", 0, kube.RolloutManual, "paused (CanaryPauseStep): promote it with kubectl argo rollouts promote"},
		{"Healthy", "", -1, kube.RolloutUnfinished, "stopped waiting: waiting for the Argo Rollouts controller to see the new spec"},
		{"Progressing", "more replicas need to be updated", 0, kube.RolloutUnfinished, "stopped waiting: more replicas need to be updated"},
	} {
		name := strings.ToLower(tc.phase) + strconv.FormatInt(-tc.observed, 10)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := rollout(t, metav1.ObjectMeta{Namespace: ns, Name: name}, template(name, "registry.example.com/team/app:1"))
			if err := unstructured.SetNestedField(r.Object, map[string]any{
				"observedGeneration": strconv.FormatInt(r.GetGeneration()+tc.observed, 10), "phase": tc.phase, "message": tc.message,
			}, "status"); err != nil {
				t.Fatal(err)
			}
			if _, err := dc.Resource(rolloutsGVR).Namespace(ns).UpdateStatus(t.Context(), r, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			got, why, err := c.WaitRollout(ctx, get(t, c, "Rollout", ns, name))
			if err != nil || got != tc.want || !strings.HasPrefix(why, tc.why) {
				t.Errorf("= %v (%s), %v; want %v (%s…)", got, why, err, tc.want, tc.why)
			}
		})
	}
}

// pastDeadline is a context at the edge of its deadline: the time has
// passed, its timer has not fired yet (Err is nil), which is when
// client-go's rate limiter refuses to start a request.
type pastDeadline struct{ context.Context }

func (pastDeadline) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// A wait that reaches its deadline is unfinished, not an error, even when
// the request refused is refused before the context says it is done.
func TestWaitRolloutAtItsDeadlineIsUnfinished(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	deployment(t, ns, "web", 0)
	got, why, err := c.WaitRollout(pastDeadline{t.Context()}, get(t, c, "Deployment", ns, "web"))
	if err != nil || got != kube.RolloutUnfinished || !strings.HasPrefix(why, "stopped waiting: ") {
		t.Errorf("= %v (%s), %v; want unfinished, stopped waiting, no error", got, why, err)
	}
}
