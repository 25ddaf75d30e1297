package run

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
)

func replicas(n int32) deployOpt {
	return func(d *appsv1.Deployment) { d.Spec.Replicas = &n }
}

func progressDeadline(s int32) deployOpt {
	return func(d *appsv1.Deployment) { d.Spec.ProgressDeadlineSeconds = &s }
}

// Verified rollouts, judged from the status the real controller manager
// writes. With no kubelet here, a Deployment of 0 replicas completes at
// once and one of 1 replica never gets an available pod, so it passes its
// progress deadline: both outcomes are real.
func TestVerifiedRollouts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		opts     []deployOpt
		rollback bool
		code     int
		log      string
		event    string
	}{
		{"complete", []deployOpt{replicas(0)}, false, 0, "rollout complete", "RolloutComplete"},
		{"deadline exceeded", []deployOpt{replicas(1), progressDeadline(2)}, false, 1, "rollout failed", "RolloutFailed"},
		{"deadline exceeded, rolled back", []deployOpt{replicas(1), progressDeadline(2)}, true, 1, "rolled back to what it ran before", "RolloutFailed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGround(t, testground.RegistryOptions{})
			g.setenv("URUNNER_CONF_VERIFY_ROLLOUT", "true")
			g.setenv("URUNNER_CONF_ROLLOUT_TIMEOUT", "45s")
			if tc.rollback {
				g.setenv("URUNNER_CONF_ROLLBACK", "true")
			}
			old := g.push("team/app:latest", "v1")
			ns := g.namespace(true)
			g.deploy(ns, "web", g.image("team/app:latest"), tc.opts...)
			g.mustRun()
			before := g.deployment(ns, "web").Spec.Template.Annotations
			moved := g.push("team/app:latest", "v2")
			o := g.run()
			if o.code != tc.code || !strings.Contains(o.logs, tc.log) {
				t.Fatalf("exit %d, want %d and %q:\n%s", o.code, tc.code, tc.log, o.logs)
			}
			web := g.deployment(ns, "web")
			found := false
			for _, e := range g.events(ns, string(web.UID)) {
				found = found || e.Reason == tc.event
			}
			if !found {
				t.Errorf("no %s event", tc.event)
			}
			ann := web.Spec.Template.Annotations
			if tc.rollback {
				if ann[kube.RestartedAtAnnotation] != before[kube.RestartedAtAnnotation] {
					t.Errorf("not rolled back: restartedAt %q, was %q", ann[kube.RestartedAtAnnotation], before[kube.RestartedAtAnnotation])
				}
			} else if ann[kube.RestartedAtAnnotation] == "" {
				t.Error("the restart itself is gone")
			}
			// Rolled back, it is believed to run what it ran before; not
			// rolled back, the new digest it now runs.
			want := moved
			if tc.rollback {
				want = old
			}
			if got := g.believes(ns, "web", "app"); got != want {
				t.Errorf("web believed to run %s, want %s", got, want)
			}
			if tc.code == 0 {
				return
			}
			// A failed digest is quarantined, not retried every run...
			gen := g.deployment(ns, "web").Generation
			o = g.run()
			if g.deployment(ns, "web").Generation != gen {
				t.Errorf("restarted again onto the failed digest:\n%s", o.logs)
			}
			if tc.rollback && !strings.Contains(o.logs, "is quarantined") {
				t.Errorf("no line says the rolled-back workload waits for a digest not quarantined:\n%s", o.logs)
			}
			// ...while a new digest restarts.
			g.push("team/app:latest", "v3")
			o = g.run()
			if g.deployment(ns, "web").Generation == gen {
				t.Errorf("a new digest after a quarantined one did not restart:\n%s", o.logs)
			}
		})
	}
}

// A rollback whose API call hangs gives up within its own deadline, and
// the state, with the failed digest's quarantine, is still saved: a call
// that outlived the pod's grace period would lose both.
func TestAHangingRollbackGivesUpAndTheStateIsSaved(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_VERIFY_ROLLOUT", "true")
	g.setenv("URUNNER_CONF_ROLLOUT_TIMEOUT", "45s")
	g.setenv("URUNNER_CONF_ROLLBACK", "true")
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"), replicas(1), progressDeadline(2))
	g.mustRun()
	moved := g.push("team/app:latest", "v2")
	// The restart's PATCH goes through; the rollback's hangs until the
	// caller gives up, as behind a stalled proxy or webhook.
	var patches atomic.Int32
	g.api.setFault(func(req *http.Request) *http.Response {
		if req.Method != http.MethodPatch || resourceOf(req.URL.Path) != "deployments" || patches.Add(1) == 1 {
			return nil
		}
		<-req.Context().Done()
		return apiStatus(req, http.StatusGatewayTimeout, "Timeout")
	})
	t.Cleanup(func() { g.api.setFault(nil) })
	start := time.Now()
	o := g.run()
	if elapsed := time.Since(start); elapsed > rollbackTimeout+20*time.Second {
		t.Errorf("the run took %s with a hanging rollback, want within the rollback's %s and the wait", elapsed, rollbackTimeout)
	}
	if o.code != 1 || !strings.Contains(o.logs, "rollout failed and the rollback too") || patches.Load() < 2 {
		t.Errorf("exit %d after %d PATCHes, want 1, the rollback tried and its failure logged:\n%s", o.code, patches.Load(), o.logs)
	}
	if q := g.stored().Refs[g.image("team/app:latest")].Quarantine; q[moved] == "" {
		t.Errorf("state saved without the quarantine of %s: %v", moved, q)
	}
}
