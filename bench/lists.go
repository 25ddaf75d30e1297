package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/urunner/urunner/kube"
)

// listScope is how a run lists, so that the benchmark can make the same
// LISTs itself: the bare LIST time of the lower bound.
type listScope struct {
	// enabled: first LIST the namespaces labelled urunner=enable (cluster
	// mode); false in namespaced mode (URUNNER_CONF_NAMESPACES).
	enabled bool
	// count: the auto list scope's count of the cluster's workloads, one
	// LIST of a single object per kind (made when the state holds no
	// count of the last hour).
	count bool
	// perNamespace lists each kind in each namespace, namespaceWorkers
	// namespaces at a time, as kube.List does; else each kind cluster-wide.
	perNamespace bool
	namespaces   []string
}

func (s listScope) String() string {
	if s.perNamespace {
		return fmt.Sprintf("per namespace (%d namespaces × %d kinds)", len(s.namespaces), len(kindNames))
	}
	return fmt.Sprintf("cluster-wide (%d kinds)", len(kindNames))
}

// namespaceWorkers is kube.List's namespaces listed at once.
const namespaceWorkers = 8

// bareLists is the timing of the LISTs of one run, made by the benchmark.
type bareLists struct {
	took     time.Duration
	requests int
	items    int
	bytes    int64 // response bytes, from the proxy
}

// listClient is a plain client of the API through the counting proxy, as
// urunner's: protobuf, gzip accepted (the API server compresses responses
// above 128 KiB), and no client-side rate limit, since the bound is what
// the API server needs, not what a client allows itself. Without
// compression it measures the pages' uncompressed size.
func listClient(proxyURL string, compression bool) (kubernetes.Interface, error) {
	cfg := &rest.Config{Host: proxyURL, QPS: -1 /* no rate limiter */, UserAgent: "urunner-bench/bare-lists", DisableCompression: !compression}
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return kubernetes.NewForConfig(cfg)
}

// timeLists makes the LISTs a run in scope s makes, in the same order and
// with the same page size, label selectors and concurrency as kube.List,
// decoding every page, and times them.
func timeLists(ctx context.Context, cs kubernetes.Interface, s listScope) (bareLists, error) {
	var (
		mu  sync.Mutex
		out bareLists
	)
	add := func(requests, items int) {
		mu.Lock()
		out.requests += requests
		out.items += items
		mu.Unlock()
	}
	start := time.Now()
	if s.enabled {
		n, items, err := listPages(ctx, func(o metav1.ListOptions) (metav1.ListInterface, int, error) {
			l, err := cs.CoreV1().Namespaces().List(ctx, o)
			if err != nil {
				return nil, 0, err
			}
			return &l.ListMeta, len(l.Items), nil
		}, kube.Label+"="+kube.LabelEnable)
		if err != nil {
			return out, fmt.Errorf("list enabled namespaces: %w", err)
		}
		add(n, items)
	}
	if s.count {
		for _, k := range kindNames {
			if _, _, err := listKind(ctx, cs, k, metav1.NamespaceAll, metav1.ListOptions{Limit: 1}); err != nil {
				return out, err
			}
			add(1, 0)
		}
	}
	if !s.perNamespace {
		for _, k := range kindNames {
			n, items, err := listAll(ctx, cs, k, metav1.NamespaceAll)
			if err != nil {
				return out, err
			}
			add(n, items)
		}
		out.took = time.Since(start)
		return out, nil
	}
	err := parallel(ctx, len(s.namespaces), namespaceWorkers, func(ctx context.Context, i int) error {
		ns := s.namespaces[i]
		total := 0
		for _, k := range kindNames {
			n, items, err := listAll(ctx, cs, k, ns)
			if err != nil {
				return err
			}
			add(n, items)
			total += items
		}
		if total == 0 {
			// kube.List tells a missing namespace from an empty one.
			_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			add(1, 0)
		}
		return nil
	})
	out.took = time.Since(start)
	return out, err
}

// listAll pages through kind in ns as kube.List does: 500 a page,
// urunner=disable left out by the API server.
func listAll(ctx context.Context, cs kubernetes.Interface, kind, ns string) (requests, items int, err error) {
	return listPages(ctx, func(o metav1.ListOptions) (metav1.ListInterface, int, error) {
		return listKind(ctx, cs, kind, ns, o)
	}, kube.Label+"!="+kube.LabelDisable)
}

func listPages(ctx context.Context, list func(metav1.ListOptions) (metav1.ListInterface, int, error), selector string) (requests, items int, err error) {
	o := metav1.ListOptions{Limit: kube.PageSize, LabelSelector: selector}
	for {
		l, n, err := list(o)
		if err != nil {
			return requests, items, err
		}
		requests++
		items += n
		if l.GetContinue() == "" {
			return requests, items, nil
		}
		o.Continue = l.GetContinue()
		if err := ctx.Err(); err != nil {
			return requests, items, err
		}
	}
}

func listKind(ctx context.Context, cs kubernetes.Interface, kind, ns string, o metav1.ListOptions) (metav1.ListInterface, int, error) {
	var (
		l   metav1.ListInterface
		n   int
		err error
	)
	switch kind {
	case kindDeployment:
		var d *appsv1.DeploymentList
		if d, err = cs.AppsV1().Deployments(ns).List(ctx, o); err == nil {
			l, n = &d.ListMeta, len(d.Items)
		}
	case kindStatefulSet:
		var s *appsv1.StatefulSetList
		if s, err = cs.AppsV1().StatefulSets(ns).List(ctx, o); err == nil {
			l, n = &s.ListMeta, len(s.Items)
		}
	case kindDaemonSet:
		var d *appsv1.DaemonSetList
		if d, err = cs.AppsV1().DaemonSets(ns).List(ctx, o); err == nil {
			l, n = &d.ListMeta, len(d.Items)
		}
	default:
		return nil, 0, fmt.Errorf("unknown kind %q", kind)
	}
	if err != nil {
		where := "cluster-wide"
		if ns != "" {
			where = "in namespace " + ns
		}
		return nil, 0, fmt.Errorf("list %s %s: %w", kind, where, err)
	}
	return l, n, nil
}
