package kube

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A Rollout is judged from the phase the Argo controller reported for the
// generation it observed, as `kubectl argo rollouts status` judges it.
func TestArgoRolloutStatus(t *testing.T) {
	for _, tc := range []struct {
		name          string
		generation    int64
		observed      string
		phase, reason string
		want          Rollout
		done          bool
	}{
		{"healthy at the current generation", 3, "3", "Healthy", "", RolloutComplete, true},
		{"healthy, but of an older generation", 4, "3", "Healthy", "", 0, false},
		{"no generation observed yet", 1, "", "", "", 0, false},
		{"an observed generation that is a hash (Rollouts before v1.0)", 2, "5f7d9c", "Healthy", "", RolloutComplete, true},
		{"degraded", 3, "3", "Degraded", "ProgressDeadlineExceeded: timed out", RolloutFailed, true},
		{"paused at a canary step", 3, "3", "Paused", "CanaryPauseStep", RolloutManual, true},
		{"progressing", 3, "3", "Progressing", "more replicas need to be updated", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &argoRollout{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Generation: tc.generation}}
			r.Status.ObservedGeneration, r.Status.Phase, r.Status.Message = tc.observed, tc.phase, tc.reason
			got, why, done := argoRolloutStatus(r)
			if got != tc.want || done != tc.done {
				t.Errorf("= %v, %v (%s); want %v, %v", got, done, why, tc.want, tc.done)
			}
		})
	}
}
