package kube

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// A Rollout with a workloadRef is judged, as Argo's GetRolloutPhase judges
// it, once the controller observed the generation of the Deployment it
// resolved; after a pin, once it resolved the pin's generation.
func TestWorkloadObserved(t *testing.T) {
	for _, tc := range []struct {
		name               string
		ref                bool
		resolved, observed string
		want               int64
		ok                 bool
	}{
		{"no workloadRef", false, "", "", 5, true},
		{"observed what it resolved", true, "4", "4", 0, true},
		{"resolved a newer generation, not yet observed", true, "5", "4", 0, false},
		{"nothing resolved yet, no generation wanted (as Argo)", true, "", "", 0, true},
		{"nothing resolved yet after a pin", true, "", "", 5, false},
		{"the generation before the pin", true, "4", "4", 5, false},
		{"the pin's generation, observed", true, "5", "5", 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &argoRollout{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}
			if tc.ref {
				r.Spec.WorkloadRef = &workloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}
			}
			if tc.resolved != "" {
				r.Annotations = map[string]string{workloadGenerationAnnotation: tc.resolved}
			}
			r.Status.WorkloadObservedGeneration = tc.observed
			if got := workloadObserved(r, tc.want); got != tc.ok {
				t.Errorf("workloadObserved(%d) = %v, want %v", tc.want, got, tc.ok)
			}
		})
	}
}

// A Rollout with a workloadRef has no template of its own: its patches
// never address one, and the Deployment's patch sets images alone (no
// restart annotations in the template Argo watches).
func TestPatchesOfARolloutWithWorkloadRef(t *testing.T) {
	w := Workload{Kind: "Rollout", Namespace: "shop", Name: "web", annotated: true,
		Containers:   []Container{{Name: "app", Image: "r/app:1"}},
		TemplateFrom: &TemplateSource{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", ResourceVersion: "7"}}
	p, _, err := rolloutPatch(w, "3", map[string]*string{RestartedForAnnotation: new("{}")}, map[string]string{"app": "r/app:1@sha256:1"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(p), "/spec/template") {
		t.Errorf("the Rollout's patch addresses a template of its own: %s", p)
	}
	d, pt, err := templatePatch(w, "7", nil, map[string]string{"app": "r/app:1@sha256:1"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"resourceVersion":"7"},"spec":{"template":{"spec":{"containers":[{"image":"r/app:1@sha256:1","name":"app"}]}}}}`
	if string(d) != want || pt != types.StrategicMergePatchType {
		t.Errorf("the Deployment's patch = %s (%s), want %s (strategic merge)", d, pt, want)
	}
}
