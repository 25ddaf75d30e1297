package kube_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

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
		d.Labels = map[string]string{"argocd.argoproj.io/instance": "shop"}
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
			got[w.Kind+" "+w.Name] = line + " of=" + w.TemplateOf + " gitops=" + w.GitOps
		})
		if err != nil || len(listed.Unread) > 0 {
			t.Fatal(err, listed.Unread)
		}
		want := map[string]string{
			"Deployment tpl":     "app,sidecar selector=app=tpl secrets=regcred of=" + ns + "/a, " + ns + "/b gitops=Argo CD",
			"Deployment tpl-off": "app selector=app=tpl-off secrets= of=" + ns + "/off gitops=",
			"Deployment plain":   "app selector=app=plain secrets= of= gitops=",
			// The Deployment a pin writes is managed by Argo CD.
			"Rollout a": "app selector=app=tpl secrets=regcred from=tpl of= gitops=Argo CD",
			"Rollout b": "app,sidecar selector=app=tpl secrets=regcred from=tpl of= gitops=Argo CD",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("per namespace %v: listed (-want +got):\n%s", scope.PerNamespace, diff)
		}
		if n := gets.Load(); n != 1 {
			t.Errorf("per namespace %v: %d GETs of Deployments, want 1 (tpl, once for both Rollouts)", scope.PerNamespace, n)
		}
	}
}

// observed waits until the controller manager has written the
// Deployment's status for its generation: its last write, at no replicas.
func observed(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := admin(t).AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Status.ObservedGeneration == d.Generation {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("Deployment %s/%s not observed in 30s", ns, name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A pin of a Rollout with a workloadRef sets the image in the Deployment
// (nothing else in its template) and the records on the Rollout; when the
// Deployment changed since it was read, nothing is pinned, the Rollout's
// records are put back and the error is a conflict (read again, decide
// again). A rollback restores the Deployment's image and the Rollout's
// records, unless the Deployment changed since the pin.
func TestPinAndRollBackARolloutWithWorkloadRef(t *testing.T) {
	t.Parallel()
	rollouts(t)
	ns := namespace(t, nil)
	c := newClient(t, nil)
	deployment(t, ns, "tpl", 0)
	rollout(t, metav1.ObjectMeta{Namespace: ns, Name: "web"}, corev1.PodTemplateSpec{}, withRef("tpl"))
	tag := "registry.example.com/team/tpl:1"
	restart := kube.Restart{At: time.Now(), Records: map[string]string{"app": tag + "@" + digestB}, Pins: map[string]string{"app": tag + "@" + digestB}}
	imageOf := func() (string, *appsv1.Deployment) {
		d := observed(t, ns, "tpl")
		return d.Spec.Template.Spec.Containers[0].Image, d
	}
	observed(t, ns, "tpl")

	stale := get(t, c, "Rollout", ns, "web")
	if _, err := admin(t).AppsV1().Deployments(ns).Patch(t.Context(), "tpl", types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"shop"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Restart(t.Context(), stale, restart); !errors.Is(err, kube.ErrConflict) {
		t.Errorf("pin with the Deployment changed since read: err = %v, want ErrConflict", err)
	}
	if img, _ := imageOf(); img != tag {
		t.Errorf("pinned from a stale read: %s", img)
	}
	if got := get(t, c, "Rollout", ns, "web"); got.RestartedFor != nil || got.Annotations[kube.RolloutRestartedAtAnnotation] != "" {
		t.Errorf("records left on the Rollout after the failed pin: %v", got.Annotations)
	}

	before := get(t, c, "Rollout", ns, "web")
	gen, err := c.Restart(t.Context(), before, restart)
	if err != nil {
		t.Fatal(err)
	}
	img, d := imageOf()
	if img != tag+"@"+digestB || len(d.Spec.Template.Annotations) > 0 {
		t.Errorf("the Deployment after the pin: image %s, template annotations %v; want %s and none", img, d.Spec.Template.Annotations, tag+"@"+digestB)
	}
	if got := get(t, c, "Rollout", ns, "web"); got.RestartedFor["app"] != tag+"@"+digestB || got.Generation != gen {
		t.Errorf("Rollout after the pin: records %v, generation %d (Restart returned %d)", got.RestartedFor, got.Generation, gen)
	}
	if err := c.Rollback(t.Context(), before, gen); err != nil {
		t.Fatal(err)
	}
	if img, _ := imageOf(); img != tag {
		t.Errorf("the Deployment's image after the rollback = %s, want %s", img, tag)
	}
	if got := get(t, c, "Rollout", ns, "web"); got.RestartedFor != nil {
		t.Errorf("records on the Rollout after the rollback: %v", got.RestartedFor)
	}

	before = get(t, c, "Rollout", ns, "web")
	if gen, err = c.Restart(t.Context(), before, restart); err != nil {
		t.Fatal(err)
	}
	person := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example.com/team/tpl:2"}]}}}}`
	if _, err := admin(t).AppsV1().Deployments(ns).Patch(t.Context(), "tpl", types.StrategicMergePatchType, []byte(person), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rollback(t.Context(), before, gen); !errors.Is(err, kube.ErrChangedSinceRestart) {
		t.Errorf("rollback after a person's edit of the Deployment: err = %v, want ErrChangedSinceRestart", err)
	}
	if img, _ := imageOf(); img != "registry.example.com/team/tpl:2" {
		t.Errorf("the person's image was rolled back to %s", img)
	}
}
