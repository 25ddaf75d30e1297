package kube

import (
	"context"
	// digest.Parse accepts an algorithm only when its hash is linked in.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/pager"
)

// Running is what a workload's pods run: the second source of truth, next
// to the registry, for which digest a workload is on.
type Running struct {
	// Digests maps a container name to the distinct digests its Ready pods
	// report, sorted; nil when no Ready pod reports one. A rollout in
	// progress shows the old and the new digest.
	Digests map[string][]string
	// Pods is the number of active pods the workload's selector matches:
	// neither terminating nor finished (phase Succeeded or Failed).
	Pods int
	// Ready is how many of those have the condition Ready=True. Ready ==
	// Pods means every pod of the workload is ready.
	Ready int
}

// activePods leaves out pods that have finished. An evicted pod stays in
// phase Failed until the pod garbage collector removes it, possibly days
// later; the ReplicaSet controller no longer counts it and neither does
// Running, or such a workload would never look fully ready.
var activePods = fields.AndSelectors(
	fields.OneTermNotEqualSelector("status.phase", string(corev1.PodSucceeded)),
	fields.OneTermNotEqualSelector("status.phase", string(corev1.PodFailed)),
).String()

// Running reads what the pods of workloads run, keyed by
// "namespace/Kind/name" (the form of state.Key's String). Every workload
// has an entry; one whose Selector is empty matches no pod.
//
// It LISTs pods as List lists workloads (once cluster-wide, or per watched
// namespace) and matches each pod against the selectors of the workloads
// of its namespace. Pods of a Deployment's older ReplicaSets match too:
// that is intended. Only counts and digests are kept, never the pods. It
// needs list on pods where the workloads are listed.
func (c *Client) Running(ctx context.Context, scope Scope, workloads []Workload) (map[string]Running, error) {
	byNamespace := map[string][]matcher{}
	out := make(map[string]Running, len(workloads))
	for _, w := range workloads {
		key := w.Namespace + "/" + w.Kind + "/" + w.Name
		out[key] = Running{}
		if w.Selector == "" {
			continue
		}
		sel, err := labels.Parse(w.Selector)
		if err != nil {
			return nil, fmt.Errorf("%s: pod selector %q: %w", key, w.Selector, err)
		}
		byNamespace[w.Namespace] = append(byNamespace[w.Namespace], matcher{key, sel})
	}
	if len(byNamespace) == 0 {
		return out, nil
	}

	seen := map[string]map[string]map[string]bool{} // key → container → digest set
	namespaces := []string{metav1.NamespaceAll}
	if scope.PerNamespace {
		namespaces = nil
		for ns := range byNamespace {
			namespaces = append(namespaces, ns)
		}
		slices.Sort(namespaces)
	}
	for _, ns := range namespaces {
		if err := c.listPods(ctx, ns, func(pod *corev1.Pod) { matchPod(pod, byNamespace, out, seen) }); err != nil {
			return nil, err
		}
	}
	for key, byContainer := range seen {
		r := out[key]
		r.Digests = make(map[string][]string, len(byContainer))
		for name, digests := range byContainer {
			r.Digests[name] = slices.Sorted(maps.Keys(digests))
		}
		out[key] = r
	}
	return out, nil
}

type matcher struct {
	key string
	sel labels.Selector
}

func (c *Client) listPods(ctx context.Context, ns string, each func(*corev1.Pod)) error {
	p := pager.New(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return c.api.Pods(ns).List(ctx, o)
	})
	p.PageSize = PageSize
	p.PageBufferSize = 1 // see listKind
	// As in listKind: never fall back to one unpaginated list.
	p.FullListIfExpired = false
	err := p.EachListItem(ctx, metav1.ListOptions{FieldSelector: activePods}, func(obj runtime.Object) error {
		each(obj.(*corev1.Pod))
		return nil
	})
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	return nil
}

// matchPod counts pod for every workload of its namespace that selects it.
func matchPod(pod *corev1.Pod, byNamespace map[string][]matcher, out map[string]Running, seen map[string]map[string]map[string]bool) {
	matchers := byNamespace[pod.Namespace]
	if len(matchers) == 0 || !active(pod) {
		return
	}
	set := labels.Set(pod.Labels)
	var ready, read bool
	var ran []containerDigest
	for _, m := range matchers {
		if !m.sel.Matches(set) {
			continue
		}
		if !read {
			read = true
			if ready = podReady(pod); ready {
				ran = ranDigests(pod)
			}
		}
		r := out[m.key]
		r.Pods++
		if ready {
			r.Ready++
		}
		out[m.key] = r
		for _, cd := range ran {
			byContainer := seen[m.key]
			if byContainer == nil {
				byContainer = map[string]map[string]bool{}
				seen[m.key] = byContainer
			}
			if byContainer[cd.container] == nil {
				byContainer[cd.container] = map[string]bool{}
			}
			byContainer[cd.container][cd.digest] = true
		}
	}
}

// active repeats the server-side field selector, for API servers (and fake
// clientsets) that do not apply it, and leaves out terminating pods.
func active(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

type containerDigest struct{ container, digest string }

// ranDigests returns the digests a pod's containers report. An init
// container counts once it has run (terminated) or runs (a sidecar, or a
// restart); a regular container once the kubelet reports its image.
func ranDigests(pod *corev1.Pod) []containerDigest {
	var out []containerDigest
	add := func(s corev1.ContainerStatus) {
		if d := DigestOf(s.ImageID); d != "" {
			out = append(out, containerDigest{s.Name, d})
		}
	}
	for _, s := range pod.Status.InitContainerStatuses {
		if s.State.Terminated != nil || s.State.Running != nil {
			add(s)
		}
	}
	for _, s := range pod.Status.ContainerStatuses {
		add(s)
	}
	return out
}

// DigestOf returns the digest in a container status imageID, "" when it
// has none that a registry lookup can be compared with.
//
// Container runtimes report the image they ran as a repository digest,
// "reg/repo@sha256:…" (containerd, CRI-O: for a multi-platform image, the
// index digest the tag resolved to), or "docker-pullable://reg/repo@sha256:…"
// (Docker through cri-dockerd). A bare "sha256:…" (or "docker://sha256:…")
// is the digest of the image configuration, reported for images with no
// repository digest, such as locally built ones: it never equals a
// manifest digest, so it yields "".
func DigestOf(imageID string) string {
	ref := imageID
	if _, rest, ok := strings.Cut(imageID, "://"); ok {
		ref = rest
	}
	i := strings.LastIndexByte(ref, '@')
	if i <= 0 {
		return ""
	}
	d, err := digest.Parse(ref[i+1:])
	if err != nil {
		return ""
	}
	return d.String()
}
