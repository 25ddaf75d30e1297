package kube_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/urunner/urunner/kube"
)

var workloadKinds = []string{"Deployment", "StatefulSet", "DaemonSet"}

// list lists scope's workloads of kinds with c, as "Kind namespace/name",
// sorted.
func list(t *testing.T, c *kube.Client, scope kube.Scope, kinds ...string) ([]string, kube.Listed, error) {
	t.Helper()
	var got []string
	listed, err := c.List(t.Context(), scope, kinds, func(w kube.Workload) {
		got = append(got, w.Kind+" "+w.Namespace+"/"+w.Name)
	})
	slices.Sort(got)
	return got, listed, err
}

// disabled labels a workload urunner=disable.
func disabled(d *appsv1.Deployment) { d.Labels = map[string]string{kube.Label: kube.LabelDisable} }

// deleting creates a Deployment that a finalizer keeps while it is deleted.
func deleting(t *testing.T, ns, name string) {
	t.Helper()
	deployment(t, ns, name, 0, func(d *appsv1.Deployment) { d.Finalizers = []string{"example.com/hold"} })
	if err := admin(t).AppsV1().Deployments(ns).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin(t).AppsV1().Deployments(ns).Patch(t.Context(), name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
}

// Listed cluster-wide, each kind is listed once and only the watched
// namespaces' workloads are handed on, less those labelled
// urunner=disable and those being deleted; Listed.Cluster counts every
// workload listed, watched or not. Count counts them all from one LIST of
// one object per kind. Not parallel: it counts the whole cluster.
func TestListClusterWide(t *testing.T) {
	c := newClient(t, nil)
	watched, other := namespace(t, nil), namespace(t, nil)
	scope := kube.Scope{Namespaces: []string{watched}}
	_, before, err := list(t, c, scope, workloadKinds...)
	if err != nil {
		t.Fatal(err)
	}
	counted, ok := c.Count(t.Context(), workloadKinds)
	if !ok {
		t.Fatal("Count: the API server did not say")
	}

	deployment(t, watched, "web", 0)
	statefulSet(t, watched, "db", 0)
	daemonSet(t, watched, "agent")
	deployment(t, watched, "off", 0, disabled)
	deleting(t, watched, "going")
	deployment(t, other, "web", 0)

	got, after, err := list(t, c, scope, workloadKinds...)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"DaemonSet " + watched + "/agent", "Deployment " + watched + "/web", "StatefulSet " + watched + "/db"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}
	if after.Cluster-before.Cluster != 4 || after.Failed != nil {
		t.Errorf("Listed.Cluster went from %d to %d, want 4 more (the other namespace's web too); Failed %v, want none", before.Cluster, after.Cluster, after.Failed)
	}
	if n, ok := c.Count(t.Context(), workloadKinds); !ok || n-counted != 6 {
		t.Errorf("Count went from %d to %d (%v), want 6 more: every object, disabled and deleting ones too", counted, n, ok)
	}
	if got, listed, err := list(t, c, kube.Scope{}, workloadKinds...); err != nil || got != nil || listed.Cluster != -1 {
		t.Errorf("no namespace watched: listed %v, Cluster %d, err %v; want nothing listed, -1", got, listed.Cluster, err)
	}
	if _, _, err := list(t, c, scope, "Deployment", "CronJob"); !errors.Is(err, kube.ErrUnsupportedKind) {
		t.Errorf("list of a CronJob: err = %v, want ErrUnsupportedKind", err)
	}
}

// reader is a ServiceAccount that may list workloads and get the namespace
// in the namespaces named, and nothing else: the chart's Role per
// namespace.
func reader(t *testing.T, home string, namespaces ...string) *rest.Config {
	t.Helper()
	cs := admin(t)
	for _, ns := range namespaces {
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}, Verbs: []string{"list"}},
				{APIGroups: []string{""}, Resources: []string{"namespaces"}, ResourceNames: []string{ns}, Verbs: []string{"get"}},
			},
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: home, Name: "reader"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "reader"},
		}
		if _, err := cs.RbacV1().Roles(ns).Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.RbacV1().RoleBindings(ns).Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := cluster.ServiceAccountConfig(t.Context(), home, "reader")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Listed per namespace, a namespace that does not exist, or whose listing
// is forbidden, is reported in Listed.Failed and the others are listed; an
// existing namespace with no workloads is no failure. Cluster-wide, a
// forbidden listing is an error that ends the listing.
func TestListPerNamespace(t *testing.T) {
	t.Parallel()
	watched, empty, forbidden := namespace(t, nil), namespace(t, nil), namespace(t, nil)
	missing := watched + "-missing"
	deployment(t, watched, "web", 0)
	deployment(t, watched, "off", 0, disabled)
	deleting(t, watched, "going")
	daemonSet(t, watched, "agent")
	deployment(t, forbidden, "web", 0)
	want := []string{"DaemonSet " + watched + "/agent", "Deployment " + watched + "/web"}

	got, listed, err := list(t, newClient(t, nil), kube.Scope{Namespaces: []string{watched, empty, missing}, PerNamespace: true}, workloadKinds...)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}
	if len(listed.Failed) != 1 || !errors.Is(listed.Failed[missing], kube.ErrNamespaceMissing) || listed.Cluster != -1 {
		t.Errorf("Failed %v, Cluster %d; want only %s, missing, and -1", listed.Failed, listed.Cluster, missing)
	}

	restricted := newClient(t, reader(t, watched, watched, empty))
	got, listed, err = list(t, restricted, kube.Scope{Namespaces: []string{watched, empty, forbidden}, PerNamespace: true}, workloadKinds...)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed with a Role per namespace (-want +got):\n%s", diff)
	}
	if len(listed.Failed) != 1 || !apierrors.IsForbidden(listed.Failed[forbidden]) {
		t.Errorf("Failed %v; want only %s, forbidden", listed.Failed, forbidden)
	}

	_, _, err = list(t, restricted, kube.Scope{Namespaces: []string{watched}}, workloadKinds...)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "list deployments cluster-wide") {
		t.Errorf("cluster-wide listing without the right: err = %v, want forbidden, naming what was listed", err)
	}
}

// A kind is listed in pages of kube.PageSize, so that a large cluster is
// never asked for one unpaginated list; every object of every page is
// handed on once.
func TestListPages(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	n := kube.PageSize + 1
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 8)
		errs = make(chan error, n)
		dc   = rollouts(t)
	)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			// Rollouts: no controller runs for them on the ground, so
			// 501 of them keep no controller busy while the other tests
			// wait for theirs. Every kind pages the same way (listKind).
			r := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
				"metadata": map[string]any{"name": fmt.Sprintf("r%03d", i), "namespace": ns},
				"spec":     map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "r"}}},
			}}
			if _, err := dc.Resource(rolloutsGVR).Namespace(ns).Create(t.Context(), r, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var pages []string
	var mu sync.Mutex
	cfg, _ := counting(func(r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/namespaces/"+ns+"/rollouts") {
			mu.Lock()
			pages = append(pages, r.URL.Query().Get("limit")+" continued="+fmt.Sprint(r.URL.Query().Get("continue") != ""))
			mu.Unlock()
		}
		return false
	})
	got, _, err := list(t, newClient(t, cfg), kube.Scope{Namespaces: []string{ns}, PerNamespace: true}, "Rollout")
	if err != nil {
		t.Fatal(err)
	}
	if distinct := len(slices.Compact(slices.Clone(got))); len(got) != n || distinct != n {
		t.Errorf("listed %d Rollouts (%d distinct), want %d", len(got), distinct, n)
	}
	limit := fmt.Sprint(kube.PageSize)
	if diff := cmp.Diff([]string{limit + " continued=false", limit + " continued=true"}, pages); diff != "" {
		t.Errorf("LIST requests (-want +got):\n%s", diff)
	}
}

// EnabledNamespaces are those labelled urunner=enable, not being deleted,
// with their urunner.io/ annotations; NamespaceAnnotations reads those of
// the namespaces named, and a namespace it cannot read has none.
func TestEnabledNamespaces(t *testing.T) {
	t.Parallel()
	cs := admin(t)
	enabled := namespace(t, map[string]string{kube.Label: kube.LabelEnable})
	annotate := func(ns string, a map[string]string) {
		n, err := cs.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Annotations = a
		if _, err := cs.CoreV1().Namespaces().Update(t.Context(), n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	annotate(enabled, map[string]string{"urunner.io/cooldown": "1h", "team.example.com/owner": "shop"})
	plain := namespace(t, map[string]string{kube.Label: kube.LabelEnable})
	off := namespace(t, map[string]string{kube.Label: kube.LabelDisable})
	unlabelled := namespace(t, nil)
	annotate(unlabelled, map[string]string{"urunner.io/cooldown": "2h"})
	// A namespace being deleted: a ConfigMap's finalizer keeps it.
	leaving := namespace(t, map[string]string{kube.Label: kube.LabelEnable})
	if _, err := cs.CoreV1().ConfigMaps(leaving).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Namespaces().Delete(t.Context(), leaving, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cs.CoreV1().ConfigMaps(leaving).Patch(t.Context(), "held", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})

	c := newClient(t, nil)
	names, annotations, err := c.EnabledNamespaces(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, enabled) || !slices.Contains(names, plain) {
		t.Errorf("EnabledNamespaces = %v, want %s and %s among them", names, enabled, plain)
	}
	for _, ns := range []string{off, unlabelled, leaving} {
		if slices.Contains(names, ns) {
			t.Errorf("EnabledNamespaces = %v, want %s not among them", names, ns)
		}
	}
	if diff := cmp.Diff(map[string]string{"urunner.io/cooldown": "1h"}, annotations[enabled]); diff != "" {
		t.Errorf("annotations of %s (-want +got):\n%s", enabled, diff)
	}
	if a, ok := annotations[plain]; ok {
		t.Errorf("annotations of %s = %v, want no entry", plain, a)
	}

	got := c.NamespaceAnnotations(t.Context(), []string{enabled, plain, unlabelled, enabled + "-missing"})
	want := map[string]map[string]string{enabled: {"urunner.io/cooldown": "1h"}, unlabelled: {"urunner.io/cooldown": "2h"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NamespaceAnnotations (-want +got):\n%s", diff)
	}
}
