package run

import (
	"context"
	"fmt"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
)

// Discovery costs a handful of paginated LISTs however many namespaces are
// enabled: ceil(namespaces/500) + ceil(Deployments/500), not one call per
// namespace. 520 namespaces make the namespace LIST take two pages.
// Serial: it counts the requests of cluster-wide listings, to which other
// tests' namespaces and workloads would add pages.
func TestDiscoveryAPICallsDoNotGrowWithNamespaces(t *testing.T) {
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/app:latest", "v1")
	const n = 520
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("many-%s-%03d", suffix(t), i)
	}
	parallel(t, names, func(ctx context.Context, name string) error {
		_, err := g.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: name, Labels: map[string]string{kube.Label: kube.LabelEnable},
		}}, metav1.CreateOptions{})
		return err
	})
	t.Cleanup(func() {
		parallel(t, names, func(ctx context.Context, name string) error {
			// Unlabel first: a terminating namespace is still listed.
			patch := []byte(`{"metadata":{"labels":{"urunner":null}}}`)
			if _, err := g.cs.CoreV1().Namespaces().Patch(ctx, name, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
				return err
			}
			return g.cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
		})
	})
	for _, ns := range names[:3] {
		g.deploy(ns, "web", g.image("team/app:latest"))
	}
	g.setenv("URUNNER_CONF_LIST_SCOPE", "cluster")

	pages := g.deploymentPages()
	g.mustRun()

	want := map[string]int{
		"GET namespaces":   2, // LIST, two pages of 500
		"GET deployments":  pages,
		"GET statefulsets": 1,
		"GET daemonsets":   1,
		"GET configmaps":   1, // the state
		"POST configmaps":  1, // first run creates it
	}
	for k, v := range want {
		if got := g.api.get(k); got != v {
			t.Errorf("%s = %d, want %d", k, got, v)
		}
	}
	if got, max := g.api.total(), 2+pages+2+2; got > max {
		t.Errorf("API requests = %d (%v), want at most ceil(ns/500) + one page per kind + state read and create = %d", got, g.api.counts, max)
	}
}

// parallel runs f for every name, a few at a time, and fails t on error.
func parallel(t *testing.T, names []string, f func(context.Context, string) error) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 16)
	)
	for _, name := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := f(context.Background(), name); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d calls failed, first: %v", len(errs), len(names), errs[0])
	}
}

// A thousand Deployments on 120 references cost exactly 120 HEADs, no GET,
// and, in steady state, a handful of API calls.
// Serial: it counts the pages of a cluster-wide LIST of Deployments, which
// other tests' Deployments change.
func TestThousandDeploymentsCostOneHeadPerReference(t *testing.T) {
	g := newGround(t, testground.RegistryOptions{})
	const refs, deployments = 120, 1000
	for i := range refs {
		g.push(fmt.Sprintf("team/svc-%03d:latest", i), "v1")
	}
	namespaces := make([]string, 10)
	for i := range namespaces {
		namespaces[i] = g.namespace(true)
	}
	names := make([]string, deployments)
	for i := range names {
		names[i] = fmt.Sprintf("svc-%04d", i)
	}
	idx := map[string]int{}
	for i, n := range names {
		idx[n] = i
	}
	parallel(t, names, func(ctx context.Context, name string) error {
		i := idx[name]
		ns := namespaces[i%len(namespaces)]
		sel := map[string]string{"app": name}
		zero := int32(0)
		_, err := g.cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: appsv1.DeploymentSpec{
				Replicas: &zero,
				Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: sel},
					Spec: corev1.PodSpec{Containers: []corev1.Container{
						{Name: "app", Image: g.image(fmt.Sprintf("team/svc-%03d:latest", i%refs))},
						{Name: "side", Image: g.image(fmt.Sprintf("team/svc-%03d:latest", (i+1)%refs))},
					}},
				},
			},
		}, metav1.CreateOptions{})
		return err
	})

	g.setenv("URUNNER_CONF_LIST_SCOPE", "cluster")
	g.reg.ResetRequests()
	g.mustRun()
	pages := g.deploymentPages()
	g.mustRun()
	if got := g.heads(); got != 2*refs {
		t.Errorf("HEAD requests over two runs = %d, want exactly %d", got, 2*refs)
	}
	if got := g.reg.Requests()["GET manifest"]; got != 0 {
		t.Errorf("GET manifest = %d, want 0", got)
	}
	// Steady state: namespaces LIST, deployments LIST (2 pages), the
	// StatefulSet and DaemonSet LISTs, the state's GET and PUT (each run
	// records when it listed): ceil(ns/500) + ceil(Deployments/500) + 4.
	if got, max := g.api.total(), 1+pages+4; got > max {
		t.Errorf("steady-state API requests = %d (%v), want at most %d", got, g.api.counts, max)
	}
}

// deploymentPages is ceil(Deployments/500) for every Deployment in the
// cluster: the LIST is cluster-wide, so other tests' leftovers count too.
func (g *ground) deploymentPages() int {
	g.t.Helper()
	l, err := g.cs.AppsV1().Deployments("").List(g.t.Context(), metav1.ListOptions{})
	if err != nil {
		g.t.Fatal(err)
	}
	return max(1, (len(l.Items)+499)/500)
}
