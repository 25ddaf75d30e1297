package run

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/report"
	"github.com/urunner/urunner/state"
)

// A gate judges one digest; the pods must run that digest, not the tag as
// it is when each pod starts. Approval is the gate here: the approved
// digest is what the restart sets, and a push after the approval reaches
// no pod.
func TestAGatedRestartDeliversTheDigestItJudged(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_APPROVAL", "approve")
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.deploy(ns, "argo", g.image("team/app:latest"), func(d *appsv1Deployment) {
		d.Annotations = map[string]string{"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:" + ns + "/argo"}
	})
	g.mustRun()

	v2 := g.push("team/app:latest", "v2")
	for _, name := range []string{"web", "argo"} {
		g.annotate(ns, name, "urunner.io/approve", v2)
	}
	g.mustRun()
	if got, want := g.deployment(ns, "web").Spec.Template.Spec.Containers[0].Image, g.image("team/app:latest")+"@"+v2; got != want {
		t.Fatalf("web's image after an approved restart = %q, want the approved digest pinned %q", got, want)
	}
	if got := g.deployment(ns, "argo").Spec.Template.Spec.Containers[0].Image; got != g.image("team/app:latest") {
		t.Errorf("a GitOps-managed workload's image = %q; its image string must stay the controller's", got)
	}
	if g.restartedAt(ns, "argo") == "" {
		t.Error("the approved GitOps-managed workload was not restarted")
	}

	// Pushed after the approval: it reaches no pod until approved, and the
	// pin keeps following the tag once it is.
	v3 := g.push("team/app:latest", "v3")
	o := g.mustRun()
	if got := g.deployment(ns, "web").Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(got, "@"+v2) {
		t.Errorf("web's image after an unapproved push = %q, want it still on %s", got, v2)
	}
	if !strings.Contains(o.logs, "waiting for approval") {
		t.Errorf("no hold for the unapproved digest:\n%s", o.logs)
	}
	g.annotate(ns, "web", "urunner.io/approve", v3)
	g.mustRun()
	if got, want := g.deployment(ns, "web").Spec.Template.Spec.Containers[0].Image, g.image("team/app:latest")+"@"+v3; got != want {
		t.Errorf("web's image once v3 is approved = %q, want %q", got, want)
	}
}

// After a restart, the pods must run what it was for. With the pods read,
// the run after a restart whose pods came up on another digest says so
// (log, Warning Event, report, metric) and does not believe it delivered:
// the restart is due again.
func TestARestartWhosePodsRunAnotherDigestIsNotDelivered(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_RUNNING_PODS", "true")
	old := g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.mustRun()

	moved := g.push("team/app:latest", "v2")
	g.mustRun()
	first := g.restartedAt(ns, "web")
	if first == "" {
		t.Fatal("web was not restarted for the moved tag")
	}
	// A stale mirror: the new pod starts, ready, on the old digest.
	g.rolloutReadyOn(ns, "web", map[string]string{"app": g.image("team/app") + "@" + old})

	g.afterTheListing()
	o := g.mustRun()
	if !strings.Contains(o.logs, "not delivered") || !strings.Contains(o.logs, "restarted_for="+moved) {
		t.Errorf("no line saying web's pods do not run %s:\n%s", moved, o.logs)
	}
	web := g.deployment(ns, "web")
	found := false
	for _, e := range g.events(ns, string(web.UID)) {
		found = found || e.Reason == kube.ReasonNotDelivered && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "run "+short(old))
	}
	if !found {
		t.Errorf("no Warning Event %s on web", kube.ReasonNotDelivered)
	}
	var rep report.Run
	cm, err := g.cs.CoreV1().ConfigMaps("default").Get(t.Context(), g.state, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(cm.Data[state.ReportKey]), &rep); err != nil {
		t.Fatalf("the report kept in the state: %v", err)
	}
	if len(rep.Undelivered) != 1 || rep.Undelivered[0].Name != "web" || rep.Undelivered[0].RestartedFor != moved {
		t.Errorf("report's undelivered = %+v, want web restarted for %s", rep.Undelivered, moved)
	}
	if rep.ExitCode != 0 {
		t.Errorf("exit code %d; with no gate on, an undelivered restart is told, not a failure", rep.ExitCode)
	}
	if g.restartedAt(ns, "web") == first {
		t.Error("web was not restarted again: a restart its pods did not take must stay due")
	}
}

// appsv1Deployment keeps this file's deploy options short.
type appsv1Deployment = appsv1.Deployment

// annotate sets an annotation on Deployment name.
func (g *ground) annotate(ns, name, key, value string) {
	g.t.Helper()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if _, err := g.cs.AppsV1().Deployments(ns).Patch(g.t.Context(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		g.t.Fatal(err)
	}
}

// rolloutReadyOn stands in for the kubelet until Deployment name's rollout
// is complete: each active pod reports ready, running imageIDs.
func (g *ground) rolloutReadyOn(ns, name string, imageIDs map[string]string) {
	g.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, p := range g.activePods(ns, name) {
			if !podReadyOn(p, imageIDs) {
				g.kubeletReports(p, corev1.PodRunning, true, imageIDs)
			}
		}
		d := g.deployment(ns, name)
		if d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == *d.Spec.Replicas &&
			d.Status.Replicas == *d.Spec.Replicas && d.Status.AvailableReplicas == *d.Spec.Replicas {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("deployment %s/%s did not complete its rollout: %+v", ns, name, d.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (g *ground) activePods(ns, name string) []corev1.Pod {
	l, err := g.cs.CoreV1().Pods(ns).List(g.t.Context(), metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		g.t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func podReadyOn(p corev1.Pod, imageIDs map[string]string) bool {
	for _, s := range p.Status.ContainerStatuses {
		if !s.Ready || s.ImageID != imageIDs[s.Name] {
			return false
		}
	}
	return len(p.Status.ContainerStatuses) > 0
}

// A verified rollout is checked from the pods as soon as it completes:
// with verified rollouts (a gate: their quarantine), pods that came up on
// another digest fail the run, are reported "undelivered", and do not
// quarantine the digest they were restarted for (it was not the one that
// ran).
func TestAVerifiedRolloutWhosePodsRunAnotherDigestFailsTheRun(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_VERIFY_ROLLOUT", "true")
	g.setenv("URUNNER_CONF_ROLLOUT_TIMEOUT", "45s")
	old := g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"), replicas(1))
	g.rolloutReadyOn(ns, "web", map[string]string{"app": g.image("team/app") + "@" + old})
	g.mustRun()

	moved := g.push("team/app:latest", "v2")
	// The kubelet, while urunner waits: the new pod starts on the old digest.
	stop := make(chan struct{})
	kubelet := make(chan error, 1)
	go func() {
		kubelet <- g.kubeletUntil(stop, ns, "web", map[string]string{"app": g.image("team/app") + "@" + old})
	}()
	o := g.run()
	close(stop)
	if err := <-kubelet; err != nil {
		t.Fatal(err)
	}
	if o.code != 1 || !strings.Contains(o.logs, "not delivered") {
		t.Fatalf("exit %d, want 1 and a line saying web's pods do not run %s:\n%s", o.code, moved, o.logs)
	}
	if strings.Contains(o.logs, "digest quarantined") {
		t.Errorf("the digest restarted for was quarantined, but it is not what ran:\n%s", o.logs)
	}
	if got := g.believes(ns, "web", "app"); got != old {
		t.Errorf("web believed to run %s after an undelivered restart, want what its pods run (%s)", short(got), short(old))
	}
}

// kubeletUntil stands in for the kubelet until stop: every active pod of
// Deployment name reports ready, running imageIDs.
func (g *ground) kubeletUntil(stop <-chan struct{}, ns, name string, imageIDs map[string]string) error {
	for {
		select {
		case <-stop:
			return nil
		case <-time.After(200 * time.Millisecond):
		}
		l, err := g.cs.CoreV1().Pods(ns).List(g.t.Context(), metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return err
		}
		for _, p := range l.Items {
			if p.DeletionTimestamp != nil || podReadyOn(p, imageIDs) {
				continue
			}
			if err := g.reportStatus(p, imageIDs); err != nil {
				return err
			}
		}
	}
}

// Runtimes other than containerd report a platform's manifest digest, not
// the index's: that is delivered, told apart from another image by one GET
// of the index, and only when a pod reports another digest than the index.
func TestPodsOnAPlatformManifestOfTheIndexAreDelivered(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_RUNNING_PODS", "true")
	ctx := t.Context()
	if _, _, err := g.reg.PushIndex(ctx, "team/multi:latest", map[string]string{"linux/amd64": "a1", "linux/arm64": "b1"}); err != nil {
		t.Fatal(err)
	}
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/multi:latest"))
	g.mustRun()
	idx, children, err := g.reg.PushIndex(ctx, "team/multi:latest", map[string]string{"linux/amd64": "a2", "linux/arm64": "b2"})
	if err != nil {
		t.Fatal(err)
	}
	g.mustRun()
	first := g.restartedAt(ns, "web")
	g.rolloutReadyOn(ns, "web", map[string]string{"app": g.image("team/multi") + "@" + children["linux/amd64"]})

	g.reg.ResetRequests()
	o := g.mustRun()
	if strings.Contains(o.logs, "not delivered") || g.restartedAt(ns, "web") != first {
		t.Errorf("pods on the index's linux/amd64 manifest were judged not delivered:\n%s", o.logs)
	}
	if got := g.reg.Requests()["GET manifest"]; got != 1 {
		t.Errorf("manifest GETs = %d, want 1 (the index, to list its manifests)", got)
	}
	if got := g.believes(ns, "web", "app"); got != idx {
		t.Errorf("web believed to run %s, want the index %s", short(got), short(idx))
	}
}

// Pods that already run a digest no gate let through (someone restarted
// them by hand after a push) are not recorded as running it: the move is
// held like any other until every gate lets the digest through, then only
// recorded, since the pods run it.
func TestPodsAheadOfAGateAreNotRecordedUntilItLetsTheDigestThrough(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_RUNNING_PODS", "true")
	g.setenv("URUNNER_CONF_APPROVAL", "approve")
	old := g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.mustRun()
	moved := g.push("team/app:latest", "v2")
	for _, p := range g.waitActivePods(ns, "web", 1, 1) {
		g.kubeletReports(p, corev1.PodRunning, true, map[string]string{"app": g.image("team/app") + "@" + moved})
	}
	o := g.mustRun()
	if !strings.Contains(o.logs, "its pods already run a digest a gate has not let through") {
		t.Errorf("no line saying web's pods run an unapproved digest:\n%s", o.logs)
	}
	if got := g.believes(ns, "web", "app"); got != old {
		t.Errorf("web believed to run %s; an unapproved digest its pods run must not be recorded (want %s)", short(got), short(old))
	}
	g.annotate(ns, "web", "urunner.io/approve", moved)
	g.mustRun()
	if got := g.believes(ns, "web", "app"); got != moved {
		t.Errorf("once approved, web believed to run %s, want %s", short(got), short(moved))
	}
	if g.restartedAt(ns, "web") != "" {
		t.Error("web was restarted although its pods run the approved digest")
	}
}

// A delivery that cannot be checked (the pods cannot be read) is no
// delivery: the rings do not count the workload healthy on its new digest
// in that run, and nothing is reported undelivered either.
func TestAnUncheckedDeliveryIsNotCountedHealthy(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_VERIFY_ROLLOUT", "true")
	g.setenv("URUNNER_CONF_ROLLOUT_TIMEOUT", "45s")
	g.push("team/app:latest", "v1")
	canary, main := g.namespace(true), g.namespace(true)
	g.deploy(canary, "web", g.image("team/app:latest"), replicas(0))
	g.deploy(main, "web", g.image("team/app:latest"), replicas(0), func(d *appsv1Deployment) {
		d.Labels = map[string]string{policy.RingAnnotation: "1"}
	})
	g.mustRun()
	g.push("team/app:latest", "v2")
	g.api.setFault(func(r *http.Request) *http.Response {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/pods") {
			return apiStatus(r, http.StatusForbidden, "Forbidden")
		}
		return nil
	})
	t.Cleanup(func() { g.api.setFault(nil) })
	o := g.mustRun()
	if !strings.Contains(o.logs, "delivery not checked") || strings.Contains(o.logs, "not delivered:") {
		t.Fatalf("want the delivery reported unchecked, not undelivered:\n%s", o.logs)
	}
	if g.restartedAt(canary, "web") == "" {
		t.Fatal("ring 0 was not restarted")
	}
	if rings := g.stored().Refs[g.image("team/app:latest")].Rings; len(rings) != 0 {
		t.Errorf("rings healthy on the new digest after an unchecked delivery: %v, want none", rings)
	}
}
