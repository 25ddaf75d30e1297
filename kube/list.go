package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/pager"
)

// EnabledNamespaces lists the namespaces labelled urunner=enable, with
// their urunner.io/ annotations (defaults for their workloads).
func (c *Client) EnabledNamespaces(ctx context.Context) ([]string, map[string]map[string]string, error) {
	var names []string
	annotations := map[string]map[string]string{}
	p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return c.api.Namespaces().List(ctx, opts)
	})
	p.PageSize = PageSize
	err := p.EachListItem(ctx, metav1.ListOptions{LabelSelector: Label + "=" + LabelEnable}, func(obj runtime.Object) error {
		ns := obj.(*corev1.Namespace)
		if ns.DeletionTimestamp == nil {
			names = append(names, ns.Name)
			for k, v := range ns.Annotations {
				if strings.HasPrefix(k, "urunner.io/") {
					if annotations[ns.Name] == nil {
						annotations[ns.Name] = map[string]string{}
					}
					annotations[ns.Name][k] = v
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list namespaces labelled %s=%s: %w", Label, LabelEnable, err)
	}
	return names, annotations, nil
}

// NamespaceAnnotations reads the urunner.io/ annotations of the namespaces
// named (namespaced mode: a GET of each, which the chart's Role in it
// allows), in parallel. A namespace that cannot be read has none: its
// listing says why.
func (c *Client) NamespaceAnnotations(ctx context.Context, names []string) map[string]map[string]string {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, namespaceWorkers)
		out = map[string]map[string]string{}
	)
	for _, name := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ns, err := c.api.Namespaces().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return
			}
			for k, v := range ns.Annotations {
				if strings.HasPrefix(k, "urunner.io/") {
					mu.Lock()
					if out[name] == nil {
						out[name] = map[string]string{}
					}
					out[name][k] = v
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return out
}

// Count returns how many objects of the given kinds the cluster holds, from
// one LIST of a single object per kind (the API server's
// remainingItemCount); false when the API server does not say.
func (c *Client) Count(ctx context.Context, kindNames []string) (int, bool) {
	total := 0
	for _, name := range kindNames {
		k, err := kindOf(name)
		if err != nil {
			return 0, false
		}
		obj, err := k.list(ctx, c, metav1.NamespaceAll, metav1.ListOptions{Limit: 1})
		if err != nil {
			return 0, false
		}
		lm, err := listMeta(obj)
		if err != nil {
			return 0, false
		}
		switch {
		case lm.GetRemainingItemCount() != nil:
			total += int(*lm.GetRemainingItemCount()) + 1
		case lm.GetContinue() == "":
			total += itemCount(obj)
		default:
			return 0, false
		}
	}
	return total, true
}

// Scope says which namespaces' workloads are watched and how to list them.
type Scope struct {
	// Namespaces are the watched namespaces.
	Namespaces []string
	// PerNamespace lists each namespace on its own instead of each kind
	// once cluster-wide: the only way with a Role per namespace, and the
	// cheap way when few namespaces of a large cluster are watched.
	PerNamespace bool
	// Annotations are the watched namespaces' urunner.io/ annotations,
	// when known (cluster mode lists the namespaces).
	Annotations map[string]map[string]string
}

// ErrNamespaceMissing is a watched namespace that does not exist.
var ErrNamespaceMissing = errors.New("namespace not found")

// namespaceWorkers bounds the namespaces listed at once.
const namespaceWorkers = 8

// Listed is what a listing saw besides the workloads.
type Listed struct {
	// Failed are the namespaces whose listing was forbidden, or that do
	// not exist (listing per namespace): the others were listed.
	Failed map[string]error
	// Cluster is how many workloads of the kinds the cluster holds (not
	// labelled urunner=disable), known when listed cluster-wide; -1 when
	// not.
	Cluster int
	// Unread are the watched Rollouts, by "namespace/name", whose pod
	// template could not be read from the object their spec.workloadRef
	// names (ErrTemplateUnread): they are not handed on.
	Unread map[string]error
}

// List lists the workloads of kinds in scope, except those labelled
// urunner=disable or being deleted, and hands each to each as its page
// arrives (one call at a time). Listing per namespace, a namespace whose
// listing is forbidden, or that does not exist, is reported in Failed and
// the others are listed; any other error ends the listing.
func (c *Client) List(ctx context.Context, scope Scope, kindNames []string, each func(Workload)) (Listed, error) {
	var ks []kind
	for _, name := range kindNames {
		k, err := kindOf(name)
		if err != nil {
			return Listed{}, err
		}
		ks = append(ks, k)
	}
	// Rollouts first: the Deployments their templates live in are then
	// known when Deployments are listed.
	slices.SortStableFunc(ks, func(a, b kind) int {
		return boolInt(b.name == argoRolloutKind.name) - boolInt(a.name == argoRolloutKind.name)
	})
	var mu sync.Mutex
	emit := func(w Workload) {
		mu.Lock()
		defer mu.Unlock()
		each(w)
	}
	l := &listing{c: c}
	var (
		listed Listed
		err    error
	)
	if !scope.PerNamespace {
		listed, err = c.listCluster(ctx, ks, scope.Namespaces, l, emit)
	} else {
		listed, err = c.listNamespaces(ctx, ks, scope.Namespaces, l, emit)
	}
	listed.Unread = l.unread
	return listed, err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// listCluster lists each kind across the cluster and emits the workloads
// of namespaces, counting every workload seen for Listed.Cluster.
func (c *Client) listCluster(ctx context.Context, ks []kind, namespaces []string, l *listing, emit func(Workload)) (Listed, error) {
	want := make(map[string]bool, len(namespaces))
	for _, ns := range namespaces {
		want[ns] = true
	}
	l.want = want
	if len(want) == 0 {
		return Listed{Cluster: -1}, nil
	}
	seen := 0
	for _, k := range ks {
		// Objects of namespaces not watched are dropped as their page
		// is decoded, never kept.
		if err := c.listKind(ctx, k, metav1.NamespaceAll, l, func(w Workload) {
			seen++
			if want[w.Namespace] {
				emit(w)
			}
		}); err != nil {
			return Listed{}, err
		}
	}
	return Listed{Cluster: seen}, nil
}

// listNamespaces lists namespaces, namespaceWorkers at a time. A forbidden
// or missing namespace goes to Listed.Failed; the first other error
// cancels the listings still running and is returned.
func (c *Client) listNamespaces(ctx context.Context, ks []kind, namespaces []string, l *listing, emit func(Workload)) (Listed, error) {
	failed := map[string]error{}
	var (
		wg           sync.WaitGroup
		sem          = make(chan struct{}, namespaceWorkers)
		mu           sync.Mutex // guards failed and fatal
		fatal        error
		lctx, cancel = context.WithCancel(ctx)
	)
	defer cancel()
	for _, ns := range namespaces {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			err := c.listNamespace(lctx, ks, ns, l, emit)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
			case apierrors.IsForbidden(err) || errors.Is(err, ErrNamespaceMissing):
				failed[ns] = err
			case fatal == nil:
				fatal = err
				cancel()
			}
		})
	}
	wg.Wait()
	if fatal != nil {
		return Listed{}, fatal
	}
	return Listed{Failed: failed, Cluster: -1}, nil
}

// listNamespace lists every kind in one namespace. A namespace with no
// workloads at all is checked to exist: a LIST in a missing namespace is
// an empty list, not an error.
func (c *Client) listNamespace(ctx context.Context, ks []kind, ns string, l *listing, emit func(Workload)) error {
	n := 0
	for _, k := range ks {
		if err := c.listKind(ctx, k, ns, l, func(w Workload) { n++; emit(w) }); err != nil {
			return err
		}
	}
	if n > 0 {
		return nil
	}
	// The chart's Role in the namespace grants get on the namespace
	// itself; without it (403) the check is skipped.
	_, err := c.api.Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("namespace %s: %w", ns, ErrNamespaceMissing)
	}
	return nil
}

// listKind pages through one kind in ns ("" for all namespaces).
// Rollouts are listed with those labelled urunner=disable: the Deployment
// a disabled Rollout runs the template of is still not restarted alone.
func (c *Client) listKind(ctx context.Context, k kind, ns string, l *listing, each func(Workload)) error {
	p := pager.New(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return k.list(ctx, c, ns, o)
	})
	p.PageSize = PageSize
	// One page decoded ahead, not client-go's ten: at 50,000 workloads the
	// buffered pages dominate the run's memory.
	p.PageBufferSize = 1
	// Never fall back to an unpaginated list: on thousands of objects it
	// is the one call that can time out or exhaust the API server.
	p.FullListIfExpired = false
	selector := Label + "!=" + LabelDisable
	if k.name == argoRolloutKind.name {
		selector = ""
	}
	err := p.EachListItem(ctx, metav1.ListOptions{LabelSelector: selector}, func(obj runtime.Object) error {
		m, err := metaOf(obj)
		if err != nil || m.GetDeletionTimestamp() != nil {
			return nil
		}
		if w, ok := l.read(ctx, k, obj, m.GetLabels()[Label] == LabelDisable); ok {
			each(w)
		}
		return nil
	})
	if err != nil {
		where := "cluster-wide"
		if ns != "" {
			where = "in namespace " + ns
		}
		return fmt.Errorf("list %s %s: %w", k.resource, where, err)
	}
	return nil
}
