package kube

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/urunner/urunner/kube/apiclient"
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

// Container is one container of a pod template.
type Container struct {
	Name  string
	Image string
	Init  bool
	// Index is its position in the template's containers (or init
	// containers), for patches that address it by position.
	Index int
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
	Generation      int64
	Created         time.Time
	// Paused Deployments are not restarted: the change waits for resume.
	Paused bool
	// OnDelete StatefulSets take a new template only as pods are deleted.
	OnDelete   bool
	Containers []Container
	// RestartedFor is the template's urunner.io/restarted-for annotation:
	// container → "registry/repository:tag@sha256:…" (or the digest alone,
	// as urunner before 0.3 wrote it).
	RestartedFor map[string]string
	// RestartedAt is the template's restartedAt annotation as listed.
	RestartedAt string
	// Restarted is the API server's time when urunner's restart of it was
	// answered, for WaitRollout (zero: not restarted, or not known).
	Restarted time.Time
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
	// Ring is its urunner.io/ring label or annotation, "" for none.
	Ring string
	// Healthy is whether its rollout is complete, as `kubectl rollout
	// status` judges it from the listed object.
	Healthy bool
	// TemplateFrom is, for a Rollout that runs the pod template of a
	// Deployment (spec.workloadRef), that Deployment as read: Containers,
	// PullSecrets and ServiceAccount are its template's, and pin mode sets
	// its images. Nil for every other workload.
	TemplateFrom *TemplateSource
	// TemplateOf names, for a Deployment whose pod template watched
	// Rollouts run, those Rollouts ("namespace/name", comma separated).
	TemplateOf string

	// annotated says the object has metadata annotations at all (a JSON
	// patch adds to the map or creates it).
	annotated bool
}

// RingKey is the label (or annotation) that puts a workload in a ring.
const RingKey = "urunner.io/ring"

// gitOpsOwner detects Argo CD and Flux from the marks they leave. Argo CD's
// default label tracking (app.kubernetes.io/instance) cannot be told from
// Helm's, so only its explicit marks count.
func gitOpsOwner(meta *metav1.ObjectMeta) string {
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
	api *apiclient.Clients
	dyn dynamic.Interface // for kinds of other projects (Argo Rollouts)
}

// New returns a Client using api, the REST clients of the built-in groups
// (whose rate limiter it shares). Kinds defined by custom resources need
// WithDynamic too.
func New(api *apiclient.Clients) *Client { return &Client{api: api} }

// WithDynamic gives c the dynamic client custom resources are read with.
func (c *Client) WithDynamic(d dynamic.Interface) *Client {
	c.dyn = d
	return c
}

// fromTemplate keeps what urunner needs of a workload's metadata and pod
// template, and nothing else: the object is dropped as soon as it is read.
func fromTemplate(kind string, meta *metav1.ObjectMeta, tpl *corev1.PodTemplateSpec) Workload {
	w := Workload{
		Kind:            kind,
		Namespace:       meta.Namespace,
		Name:            meta.Name,
		UID:             meta.UID,
		ResourceVersion: meta.ResourceVersion,
		Generation:      meta.Generation,
		Created:         meta.CreationTimestamp.Time,
		GitOps:          gitOpsOwner(meta),
		ServiceAccount:  tpl.Spec.ServiceAccountName,
		RestartedAt:     tpl.Annotations[RestartedAtAnnotation],
	}
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
	var ignored map[string]bool
	if v := meta.Annotations[IgnoreContainersAnnotation]; v != "" {
		ignored = map[string]bool{}
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				ignored[n] = true
			}
		}
	}
	// Sized once: every listed workload is kept for the whole run.
	if n := len(tpl.Spec.InitContainers) + len(tpl.Spec.Containers); n > 0 {
		w.Containers = make([]Container, 0, n)
	}
	for i, c := range tpl.Spec.InitContainers {
		if !ignored[c.Name] {
			w.Containers = append(w.Containers, Container{Name: c.Name, Image: c.Image, Init: true, Index: i, PullPolicy: string(c.ImagePullPolicy)})
		}
	}
	for i, c := range tpl.Spec.Containers {
		if !ignored[c.Name] {
			w.Containers = append(w.Containers, Container{Name: c.Name, Image: c.Image, Index: i, PullPolicy: string(c.ImagePullPolicy)})
		}
	}
	if len(w.Containers) == 0 {
		w.Containers = nil // every container ignored
	}
	// A hand-edited annotation must not stop the run: it is only read as
	// a record of what urunner did, and an unreadable one records nothing.
	w.RestartedFor, _ = parseRestartedFor(tpl.Annotations)
	w.Ring = meta.Labels[RingKey]
	if v, ok := meta.Annotations[RingKey]; ok {
		w.Ring = v
	}
	return w
}

func parseRestartedFor(annotations map[string]string) (map[string]string, error) {
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

// selectorString renders a workload's selector; "" selects nothing (an
// invalid selector, which the API server would not have accepted).
func selectorString(ls *metav1.LabelSelector) string {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil || sel.Empty() {
		return ""
	}
	return sel.String()
}
