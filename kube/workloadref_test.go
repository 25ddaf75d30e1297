package kube_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/kube"
)

// withRef makes a Rollout run the template of Deployment name instead of
// its own, with no selector of its own (Argo then takes the Deployment's).
func withRef(name string) func(spec map[string]any) {
	return func(spec map[string]any) {
		delete(spec, "template")
		delete(spec, "selector")
		spec["workloadRef"] = map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "scaleDown": "onsuccess"}
	}
}

// A Rollout with a workloadRef is listed with the containers, pull secrets
// and selector of the Deployment it names, and its own annotations
// (ignore-containers); the Deployment is listed as the template of its
// Rollouts, a disabled Rollout's too. Two Rollouts naming one Deployment
// cost one GET of it, a disabled Rollout none; listed per namespace or
// cluster-wide alike.
func TestListRolloutsWithWorkloadRef(t *testing.T) {
	t.Parallel()
	rollouts(t)
	ns := namespace(t, nil)
	sidecar := func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "sidecar", Image: "registry.example.com/sidecar:1"})
		d.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	}
	deployment(t, ns, "tpl", 0, sidecar)
	deployment(t, ns, "tpl-off", 0)
	deployment(t, ns, "plain", 0)
	rollout(t, metav1.ObjectMeta{Namespace: ns, Name: "a", Annotations: map[string]string{kube.IgnoreContainersAnnotation: "sidecar"}}, corev1.PodTemplateSpec{}, withRef("tpl"))
	rollout(t, metav1.ObjectMeta{Namespace: ns, Name: "b"}, corev1.PodTemplateSpec{}, withRef("tpl"))
	rollout(t, metav1.ObjectMeta{Namespace: ns, Name: "off", Labels: map[string]string{kube.Label: kube.LabelDisable}}, corev1.PodTemplateSpec{}, withRef("tpl-off"))

	for _, scope := range []kube.Scope{{Namespaces: []string{ns}, PerNamespace: true}, {Namespaces: []string{ns}}} {
		cfg, gets := counting(func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/namespaces/"+ns+"/deployments/")
		})
		got := map[string]string{}
		listed, err := newClient(t, cfg).List(t.Context(), scope, []string{"Deployment", "Rollout"}, func(w kube.Workload) {
			var cs []string
			for _, c := range w.Containers {
				cs = append(cs, c.Name)
			}
			line := strings.Join(cs, ",") + " selector=" + w.Selector + " secrets=" + strings.Join(w.PullSecrets, ",")
			if w.TemplateFrom != nil {
				line += " from=" + w.TemplateFrom.Name
			}
			got[w.Kind+" "+w.Name] = line + " of=" + w.TemplateOf
		})
		if err != nil || len(listed.Unread) > 0 {
			t.Fatal(err, listed.Unread)
		}
		want := map[string]string{
			"Deployment tpl":     "app,sidecar selector=app=tpl secrets=regcred of=" + ns + "/a, " + ns + "/b",
			"Deployment tpl-off": "app selector=app=tpl-off secrets= of=" + ns + "/off",
			"Deployment plain":   "app selector=app=plain secrets= of=",
			"Rollout a":          "app selector=app=tpl secrets=regcred from=tpl of=",
			"Rollout b":          "app,sidecar selector=app=tpl secrets=regcred from=tpl of=",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("per namespace %v: listed (-want +got):\n%s", scope.PerNamespace, diff)
		}
		if n := gets.Load(); n != 1 {
			t.Errorf("per namespace %v: %d GETs of Deployments, want 1 (tpl, once for both Rollouts)", scope.PerNamespace, n)
		}
	}
}
