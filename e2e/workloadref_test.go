package e2e

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/urunner/urunner/e2e/testground"
)

// The chart installed for Argo Rollouts alone (no Deployment among the
// kinds), in pin mode: with the rights it grants and no more, urunner
// reads the template of a Rollout with spec.workloadRef from its
// Deployment and pins the moved image there.
func TestARolloutOnlyInstallPinsTheTemplateDeployment(t *testing.T) {
	cs := clientset(t)
	reg := startRegistry(t, testground.RegistryOptions{})
	installRolloutCRD(t)
	const release, app = "rb-wref", "rb-wref-app"
	newNamespace(t, app, false)
	t.Cleanup(func() { deleteNamespace(t, cs, release) })
	r := install(t, release, release, "namespaces: ["+app+"]\nworkloadKinds: [Rollout]\nevents: false\nconfig:\n  restartMode: pin\n",
		"registry.host=http://"+reg.Host)
	image := reg.Host + "/" + app + "/app:latest"
	push(t, reg, app+"/app:latest", "v1")
	createWorkload(t, cs, "Deployment", app, "web-template", image, 0, "")
	ro := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": "web", "namespace": app},
		"spec": map[string]any{
			"replicas":    int64(0),
			"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-template"},
		},
	}}
	if _, err := dynamic.NewForConfigOrDie(cluster.AdminConfig()).Resource(rolloutsGVR).Namespace(app).Create(t.Context(), ro, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.mustRun("baseline")
	moved := push(t, reg, app+"/app:latest", "v2")
	logs := r.mustRun("pin")
	d, err := cs.AppsV1().Deployments(app).Get(t.Context(), "web-template", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Spec.Template.Spec.Containers[0].Image, image+"@"+moved; got != want {
		t.Errorf("the template Deployment's image = %s, want %s:\n%s", got, want, logs)
	}
}
