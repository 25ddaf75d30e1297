package testground

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// InstallCRD applies the CustomResourceDefinition in the YAML file path (one
// of those hack/tools.sh crds fetches into .cache/crds) and waits until the
// API server serves its resource, so that objects of its kind can be made.
func InstallCRD(ctx context.Context, cfg *rest.Config, path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: run hack/tools.sh crds (make test does)", err)
	}
	var crd unstructured.Unstructured
	if err := yaml.Unmarshal(doc, &crd.Object); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	body, err := crd.MarshalJSON()
	if err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crds := dc.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Patch(ctx, crd.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "testground"}); err != nil {
		return fmt.Errorf("apply CRD %s: %w", crd.GetName(), err)
	}
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	for _, v := range versions {
		gv := group + "/" + v.(map[string]any)["name"].(string)
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			list, err := disco.ServerResourcesForGroupVersion(gv)
			if err != nil {
				return false, nil // not served yet
			}
			return slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == plural }), nil
		})
		if err != nil {
			return fmt.Errorf("%s of CRD %s not served: %w", gv, crd.GetName(), err)
		}
	}
	return nil
}
