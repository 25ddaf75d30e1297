package main

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/state"
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
		{"deadline exceeded, rolled back", []deployOpt{replicas(1), progressDeadline(2)}, true, 1, "rolled back to the previous template", "RolloutFailed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGround(t, testground.RegistryOptions{})
			t.Setenv("URUNNER_CONF_VERIFY_ROLLOUT", "true")
			t.Setenv("URUNNER_CONF_ROLLOUT_TIMEOUT", "45s")
			if tc.rollback {
				t.Setenv("URUNNER_CONF_ROLLBACK", "true")
			}
			g.push("team/app:latest", "v1")
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
			// Either way the new digest is recorded: a failed digest is
			// not retried every run.
			if got := g.stored()[state.Key{Namespace: ns, Kind: "Deployment", Name: "web"}]["app"].Digest; got != moved {
				t.Errorf("stored digest %s, want %s", got, moved)
			}
		})
	}
}
