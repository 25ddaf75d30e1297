package main

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
)

// why for an Argo Rollout whose template lives in a Deployment
// (spec.workloadRef): the Rollout's own labels and records, and the
// containers of the Deployment's template, as a run sees them.
func TestWhyARolloutWithWorkloadRef(t *testing.T) {
	in := newInstall(t, "wref", "wref")
	if err := testground.InstallCRD(t.Context(), cluster.AdminConfig(), filepath.Join(root, ".cache", "crds", "argoproj.io_rollouts.yaml")); err != nil {
		t.Fatal(err)
	}
	web := in.image("shop/web:latest")
	v1 := in.push("shop/web:latest", "v1")
	zero := int32(0)
	tpl := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web-template", Namespace: in.app},
		Spec:       appsv1.DeploymentSpec{Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: template("web", web)},
	}
	if _, err := in.cs.AppsV1().Deployments(in.app).Create(t.Context(), tpl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dc, err := dynamic.NewForConfig(cluster.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": "web", "namespace": in.app,
			"annotations": map[string]any{kube.RestartedForAnnotation: `{"app":"` + web + "@" + v1 + `"}`}},
		"spec": map[string]any{
			"replicas":    int64(0),
			"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-template"},
		},
	}}
	gvr := schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	if _, err := dc.Resource(gvr).Namespace(in.app).Create(t.Context(), r, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := why(t, in, "rollout/web")
	got := []string{d.Kind, d.Name, d.Containers[0].Name, d.Containers[0].Image, d.Containers[0].RestartedFor, d.Containers[0].Believed}
	if diff := cmp.Diff([]string{"Rollout", "web", "app", web, web + "@" + v1, v1}, got); diff != "" || d.OptedOut {
		t.Errorf("why rollout/web (-want +got):\n%s\nopted out: %v", diff, d.OptedOut)
	}
}
