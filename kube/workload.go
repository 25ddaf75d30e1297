package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/pager"
)

// The label model of the original urunner, kept for compatibility.
const (
	Label        = "urunner"
	LabelEnable  = "enable"
	LabelDisable = "disable"
)

// PageSize is the LIST page size. 500 is client-go's pager default and what
// kubectl uses; larger pages cost the API server memory per request.
const PageSize = 500

// IgnoreContainersAnnotation, on a workload, lists containers (comma
// separated) urunner does not track: a sidecar on a moving tag that must
// not roll the workload.
const IgnoreContainersAnnotation = "urunner.io/ignore-containers"

// Per-workload policy annotations: a cooldown (a duration such as 30m) and
// a maintenance window (see the README's syntax).
const (
	CooldownAnnotation = "urunner.io/cooldown"
	WindowAnnotation   = "urunner.io/window"
)

// Container is one container of a pod template.
type Container struct {
	Name  string
	Image string
	Init  bool
	// PullPolicy as written in the template; "" lets the API server's
	// default stand (Always for :latest, IfNotPresent otherwise).
	PullPolicy string
}

// Workload is a workload as urunner needs it, not the API object: a listing
// of thousands of Deployments should not keep thousands of full objects.
type Workload struct {
	Kind            string
	Namespace       string
	Name            string
	UID             types.UID
	ResourceVersion string
	// Paused Deployments are not restarted: the change waits for resume.
	Paused     bool
	Containers []Container
	// RestartedFor is what urunner last restarted this workload for
	// (container → digest), read from its pod template.
	RestartedFor map[string]string
	// RestartedAt is the template's restartedAt annotation as listed, so
	// that a failed rollout can be rolled back to it.
	RestartedAt string
	// PullSecrets and ServiceAccount are the pod template's, for
	// authenticating lookups with the workload's own pull secrets.
	PullSecrets    []string
	ServiceAccount string
	// Annotations are the workload's own urunner.io/ annotations.
	Annotations map[string]string
	// GitOps names the controller that manages the workload ("Argo CD",
	// "Flux"), "" when none is detected.
	GitOps string
	// Selector selects the workload's pods, as a label selector string.
	Selector string
}

// gitOpsOwner detects Argo CD and Flux from the marks they leave. Argo CD's
// default label tracking (app.kubernetes.io/instance) cannot be told from
// Helm's, so only its explicit marks count.
func gitOpsOwner(meta metav1.ObjectMeta) string {
	switch {
	case meta.Annotations["argocd.argoproj.io/tracking-id"] != "", meta.Labels["argocd.argoproj.io/instance"] != "":
		return "Argo CD"
	case meta.Labels["kustomize.toolkit.fluxcd.io/name"] != "", meta.Labels["helm.toolkit.fluxcd.io/name"] != "":
		return "Flux"
	}
	return ""
}

// Client reads and patches workloads.
type Client struct {
	cs kubernetes.Interface
}

// New returns a Client using cs.
func New(cs kubernetes.Interface) *Client { return &Client{cs: cs} }

// EnabledNamespaces lists the namespaces labelled urunner=enable.
func (c *Client) EnabledNamespaces(ctx context.Context) ([]string, error) {
	var names []string
	p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return c.cs.CoreV1().Namespaces().List(ctx, opts)
	})
	p.PageSize = PageSize
	err := p.EachListItem(ctx, metav1.ListOptions{LabelSelector: Label + "=" + LabelEnable}, func(obj runtime.Object) error {
		ns := obj.(*corev1.Namespace)
		if ns.DeletionTimestamp == nil {
			names = append(names, ns.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list namespaces labelled %s=%s: %w", Label, LabelEnable, err)
	}
	return names, nil
}

// Kinds are the workload kinds urunner can restart, in listing order.
var Kinds = []string{"Deployment", "StatefulSet", "DaemonSet"}

// Workloads lists the workloads of the given kinds in the given
// namespaces, except those labelled urunner=disable.
//
// It makes one paginated cluster-wide LIST per kind rather than one per
// namespace: a cluster with thousands of enabled namespaces then costs
// ceil(workloads/PageSize) calls per kind instead of one call per
// namespace. It needs list on those kinds cluster-wide, which the chart
// grants.
func (c *Client) Workloads(ctx context.Context, namespaces []string, kinds []string) ([]Workload, error) {
	want := make(map[string]bool, len(namespaces))
	for _, ns := range namespaces {
		want[ns] = true
	}
	var out []Workload
	if len(want) == 0 {
		return out, nil
	}
	keep := func(meta metav1.ObjectMeta) bool { return want[meta.Namespace] && meta.DeletionTimestamp == nil }
	for _, kind := range kinds {
		var list pager.ListPageFunc
		var convert func(runtime.Object) (Workload, bool)
		switch kind {
		case "Deployment":
			list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return c.cs.AppsV1().Deployments(metav1.NamespaceAll).List(ctx, o)
			}
			convert = func(obj runtime.Object) (Workload, bool) {
				d := obj.(*appsv1.Deployment)
				w := fromTemplate(kind, d.ObjectMeta, &d.Spec.Template)
				w.Paused = d.Spec.Paused
				w.Selector = selectorString(d.Spec.Selector)
				return w, keep(d.ObjectMeta)
			}
		case "StatefulSet":
			list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return c.cs.AppsV1().StatefulSets(metav1.NamespaceAll).List(ctx, o)
			}
			convert = func(obj runtime.Object) (Workload, bool) {
				s := obj.(*appsv1.StatefulSet)
				w := fromTemplate(kind, s.ObjectMeta, &s.Spec.Template)
				w.Selector = selectorString(s.Spec.Selector)
				return w, keep(s.ObjectMeta)
			}
		case "DaemonSet":
			list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return c.cs.AppsV1().DaemonSets(metav1.NamespaceAll).List(ctx, o)
			}
			convert = func(obj runtime.Object) (Workload, bool) {
				d := obj.(*appsv1.DaemonSet)
				w := fromTemplate(kind, d.ObjectMeta, &d.Spec.Template)
				w.Selector = selectorString(d.Spec.Selector)
				return w, keep(d.ObjectMeta)
			}
		default:
			return nil, fmt.Errorf("list %s: %w", kind, ErrUnsupportedKind)
		}
		p := pager.New(list)
		p.PageSize = PageSize
		// One page decoded ahead, not client-go's ten: at 50,000
		// Deployments the buffered pages dominate the run's memory.
		p.PageBufferSize = 1
		// Never fall back to an unpaginated list: on thousands of objects
		// it is the one call that can time out or exhaust the API server.
		p.FullListIfExpired = false
		err := p.EachListItem(ctx, metav1.ListOptions{LabelSelector: Label + "!=" + LabelDisable}, func(obj runtime.Object) error {
			if w, ok := convert(obj); ok {
				out = append(out, w)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %ss: %w", strings.ToLower(kind), err)
		}
	}
	return out, nil
}

func fromTemplate(kind string, meta metav1.ObjectMeta, tpl *corev1.PodTemplateSpec) Workload {
	w := Workload{
		Kind:            kind,
		Namespace:       meta.Namespace,
		Name:            meta.Name,
		UID:             meta.UID,
		ResourceVersion: meta.ResourceVersion,
	}
	w.GitOps = gitOpsOwner(meta)
	for k, v := range meta.Annotations {
		if strings.HasPrefix(k, "urunner.io/") {
			if w.Annotations == nil {
				w.Annotations = map[string]string{}
			}
			w.Annotations[k] = v
		}
	}
	for _, r := range tpl.Spec.ImagePullSecrets {
		w.PullSecrets = append(w.PullSecrets, r.Name)
	}
	w.ServiceAccount = tpl.Spec.ServiceAccountName
	ignored := map[string]bool{}
	for _, n := range strings.Split(meta.Annotations[IgnoreContainersAnnotation], ",") {
		if n = strings.TrimSpace(n); n != "" {
			ignored[n] = true
		}
	}
	for _, c := range tpl.Spec.InitContainers {
		if !ignored[c.Name] {
			w.Containers = append(w.Containers, Container{Name: c.Name, Image: c.Image, Init: true, PullPolicy: string(c.ImagePullPolicy)})
		}
	}
	for _, c := range tpl.Spec.Containers {
		if !ignored[c.Name] {
			w.Containers = append(w.Containers, Container{Name: c.Name, Image: c.Image, PullPolicy: string(c.ImagePullPolicy)})
		}
	}
	rf, err := restartedFor(tpl.Annotations)
	if err != nil {
		// A hand-edited annotation must not stop the run: the state still
		// guards against double restarts, this is only a second guard.
		rf = nil
	}
	w.RestartedFor = rf
	w.RestartedAt = tpl.Annotations[RestartedAtAnnotation]
	return w
}

func restartedFor(annotations map[string]string) (map[string]string, error) {
	v, ok := annotations[RestartedForAnnotation]
	if !ok {
		return nil, nil
	}
	m := map[string]string{}
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", RestartedForAnnotation, err)
	}
	return m, nil
}

// mergeRestartedFor returns the annotation value recording digests on top
// of what the template already records.
func mergeRestartedFor(current, digests map[string]string) (string, error) {
	m := maps.Clone(current)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, digests)
	b, err := json.Marshal(m)
	return string(b), err
}

// selectorString renders a workload's selector; "" selects nothing (an
// invalid selector, which the API server would not have accepted).
func selectorString(ls *metav1.LabelSelector) string {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil || sel.Empty() {
		return ""
	}
	return sel.String()
}
