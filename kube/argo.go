package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Argo Rollouts' Rollout, read and patched through the dynamic client so
// that urunner does not depend on Argo's Go module.
//
// A Rollout restarts the way `kubectl argo rollouts restart` does it: by
// setting spec.restartAt, which makes the Argo controller replace the
// pods older than that time, without a new revision (no canary steps, no
// analysis: the same template, pulled again). What urunner restarted it
// for goes to the Rollout's own metadata annotations, not its template,
// for the same reason. In pin mode the template's images change, which is
// a new revision: Argo then takes it through the Rollout's strategy
// (canary steps, analysis), as for any image update, and spec.restartAt
// is left alone.
//
// A Rollout whose template lives in a Deployment (spec.workloadRef, the
// Deployment scaled to zero) is the same workload with that Deployment's
// template: see workloadref.go.

// RolloutRestartedAtAnnotation records, on a Rollout's metadata, when
// urunner last restarted or pinned it (for cooldowns: a pin sets no
// restartAt).
const RolloutRestartedAtAnnotation = "urunner.io/restarted-at"

var rolloutsResource = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// argoRollout is the part of an argoproj.io/v1alpha1 Rollout urunner reads.
type argoRollout struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Replicas  *int32                 `json:"replicas,omitempty"`
		Paused    bool                   `json:"paused,omitempty"`
		RestartAt *metav1.Time           `json:"restartAt,omitempty"`
		Selector  *metav1.LabelSelector  `json:"selector,omitempty"`
		Template  corev1.PodTemplateSpec `json:"template"`
		// WorkloadRef names the object whose pod template the Rollout
		// runs, instead of its own.
		WorkloadRef *workloadRef `json:"workloadRef,omitempty"`
	} `json:"spec"`
	Status struct {
		// ObservedGeneration is a string in Argo's API ("7").
		ObservedGeneration string `json:"observedGeneration,omitempty"`
		// Phase is what the Argo controller judges the rollout to be:
		// Healthy, Progressing, Paused or Degraded.
		Phase   string `json:"phase,omitempty"`
		Message string `json:"message,omitempty"`
		// WorkloadObservedGeneration is the generation of the
		// spec.workloadRef object the phase is of (a string too).
		WorkloadObservedGeneration string `json:"workloadObservedGeneration,omitempty"`
	} `json:"status"`
}

func toArgoRollout(obj runtime.Object) (*argoRollout, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("rollout: got %T", obj)
	}
	var r argoRollout
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r); err != nil {
		return nil, fmt.Errorf("rollout %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return &r, nil
}

// errNoDynamicClient is a Rollout asked of a Client made without one.
var errNoDynamicClient = errors.New("Rollout needs the Kubernetes dynamic client")

var argoRolloutKind = kind{
	name: "Rollout", group: "argoproj.io", apiVersion: "argoproj.io/v1alpha1", resource: "rollouts",
	list: func(ctx context.Context, c *Client, ns string, o metav1.ListOptions) (runtime.Object, error) {
		if c.dyn == nil {
			return nil, errNoDynamicClient
		}
		l, err := c.dyn.Resource(rolloutsResource).Namespace(ns).List(ctx, o)
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: this cluster does not serve argoproj.io/v1alpha1 rollouts: install Argo Rollouts, or remove Rollout from URUNNER_CONF_WORKLOAD_KINDS", err)
		}
		return l, err
	},
	get: func(ctx context.Context, c *Client, ns, name string) (runtime.Object, error) {
		if c.dyn == nil {
			return nil, errNoDynamicClient
		}
		return c.dyn.Resource(rolloutsResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	},
	patch: func(ctx context.Context, c *Client, ns, name string, pt types.PatchType, data []byte) (runtime.Object, error) {
		if c.dyn == nil {
			return nil, errNoDynamicClient
		}
		return c.dyn.Resource(rolloutsResource).Namespace(ns).Patch(ctx, name, pt, data, patchOptions)
	},
	workload: func(obj runtime.Object) Workload {
		r, err := toArgoRollout(obj)
		if err != nil {
			// Unreadable: no containers, so nothing is tracked or patched.
			m, _ := metaOf(obj)
			return Workload{Kind: "Rollout", Namespace: m.GetNamespace(), Name: m.GetName()}
		}
		tpl := &r.Spec.Template
		if r.Spec.WorkloadRef != nil {
			// Argo runs the referenced object's template, read later
			// (withTemplate), never one beside the reference.
			tpl = &corev1.PodTemplateSpec{}
		}
		return rolloutWorkload(r, tpl)
	},
	rollout: func(obj runtime.Object, _ time.Time) (Rollout, string, bool) {
		r, err := toArgoRollout(obj)
		if err != nil {
			return RolloutFailed, err.Error(), true
		}
		return argoRolloutStatus(r)
	},
	restart:  restartArgoRollout,
	rollback: rollbackArgoRollout,
}

// rolloutWorkload is what urunner keeps of a Rollout running the pod
// template tpl: its own, or that of the object its workloadRef names.
func rolloutWorkload(r *argoRollout, tpl *corev1.PodTemplateSpec) Workload {
	w := fromTemplate("Rollout", &r.ObjectMeta, tpl)
	w.Paused = r.Spec.Paused
	w.Selector = selectorString(r.Spec.Selector)
	w.annotated = len(r.Annotations) > 0
	// Its records live on the Rollout, not in its template.
	w.RestartedFor, _ = parseRestartedFor(r.Annotations)
	w.RestartedAt = latest(r.Annotations[RolloutRestartedAtAnnotation], r.Spec.RestartAt)
	if ref := r.Spec.WorkloadRef; ref != nil {
		w.TemplateFrom = &TemplateSource{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name}
	}
	return w
}

// latest is the later of an RFC 3339 annotation and a time, as RFC 3339.
func latest(annotation string, t *metav1.Time) string {
	a, err := time.Parse(time.RFC3339, annotation)
	switch {
	case t == nil && err != nil:
		return ""
	case t == nil || err == nil && a.After(t.Time):
		return annotation
	}
	return t.UTC().Format(time.RFC3339)
}

// argoRolloutStatus judges a Rollout as `kubectl argo rollouts status`
// does: from the phase the Argo controller computed for the generation it
// observed. A Rollout paused at a canary step waits for a person (or its
// analysis) to promote it: that is not a failure, and not urunner's to
// wait for.
func argoRolloutStatus(r *argoRollout) (Rollout, string, bool) {
	// Rollouts before v1.0 wrote a hash there: not a generation to compare.
	if og, err := strconv.ParseInt(r.Status.ObservedGeneration, 10, 64); err == nil && og < r.Generation {
		return 0, "waiting for the Argo Rollouts controller to see the new spec", false
	}
	if !workloadObserved(r, 0) {
		return 0, "waiting for the Argo Rollouts controller to see the new template of " + r.Spec.WorkloadRef.Kind + " " + r.Spec.WorkloadRef.Name, false
	}
	why := strings.TrimSpace(r.Status.Message)
	switch r.Status.Phase {
	case "Healthy":
		return RolloutComplete, "healthy", true
	case "Degraded":
		return RolloutFailed, "degraded: " + why, true
	case "Paused":
		return RolloutManual, fmt.Sprintf("paused (%s): promote it with kubectl argo rollouts promote %s -n %s", why, r.Name, r.Namespace), true
	}
	if why == "" {
		why = "progressing"
	}
	return 0, why, false
}

// jsonPatchOp is one RFC 6902 operation.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// A JSON patch, because a custom resource takes no strategic merge patch:
// a merge patch would replace the whole container list to change one
// image. Its first operation sets metadata.resourceVersion to the one
// read, the same precondition as the other kinds' patches (409 when the
// Rollout changed since).
func rolloutPatch(w Workload, resourceVersion string, annotations map[string]*string, images map[string]string) ([]byte, types.PatchType, error) {
	ops := []jsonPatchOp{{Op: "replace", Path: "/metadata/resourceVersion", Value: resourceVersion}}
	if !w.annotated {
		set := map[string]string{}
		for k, v := range annotations {
			if v != nil {
				set[k] = *v
			}
		}
		if len(set) > 0 {
			ops = append(ops, jsonPatchOp{Op: "add", Path: "/metadata/annotations", Value: set})
		}
	} else {
		for k, v := range annotations {
			path := "/metadata/annotations/" + strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
			switch {
			case v != nil:
				ops = append(ops, jsonPatchOp{Op: "add", Path: path, Value: *v})
			case w.hasAnnotation(k):
				ops = append(ops, jsonPatchOp{Op: "remove", Path: path})
			}
		}
	}
	for _, c := range w.Containers {
		img, ok := images[c.Name]
		// A Rollout with a workloadRef has no template of its own: its
		// images are set in the Deployment (pinTemplateRef).
		if !ok || w.TemplateFrom != nil {
			continue
		}
		list := "containers"
		if c.Init {
			list = "initContainers"
		}
		base := fmt.Sprintf("/spec/template/spec/%s/%d", list, c.Index)
		// The name is tested too: the patch never sets another
		// container's image.
		ops = append(ops, jsonPatchOp{Op: "test", Path: base + "/name", Value: c.Name}, jsonPatchOp{Op: "replace", Path: base + "/image", Value: img})
	}
	b, err := json.Marshal(ops)
	return b, types.JSONPatchType, err
}

// hasAnnotation reports whether w carries one of urunner's annotations.
func (w Workload) hasAnnotation(k string) bool {
	_, ok := w.Annotations[k]
	return ok
}

func restartArgoRollout(w Workload, r Restart, restartedFor string) ([]byte, types.PatchType, error) {
	at := r.At.UTC().Format(time.RFC3339)
	p, pt, err := rolloutPatch(w, w.ResourceVersion, map[string]*string{
		RestartedForAnnotation:       &restartedFor,
		RolloutRestartedAtAnnotation: &at,
	}, r.Pins)
	if err != nil || len(r.Pins) > 0 {
		return p, pt, err
	}
	// By annotation: restart its pods, as kubectl argo rollouts restart.
	var ops []jsonPatchOp
	if err := json.Unmarshal(p, &ops); err != nil {
		return nil, "", err
	}
	ops = append(ops, jsonPatchOp{Op: "add", Path: "/spec/restartAt", Value: at})
	b, err := json.Marshal(ops)
	return b, types.JSONPatchType, err
}

// rollbackArgoRollout restores the records and, in pin mode, the images;
// a restart of its pods cannot be taken back, and spec.restartAt stays.
func rollbackArgoRollout(before, fresh Workload) ([]byte, types.PatchType, error) {
	annotations := map[string]*string{RestartedForAnnotation: nil, RolloutRestartedAtAnnotation: nil}
	if len(before.RestartedFor) > 0 {
		b, err := json.Marshal(before.RestartedFor)
		if err != nil {
			return nil, "", err
		}
		v := string(b)
		annotations[RestartedForAnnotation] = &v
	}
	if v, ok := before.Annotations[RolloutRestartedAtAnnotation]; ok {
		annotations[RolloutRestartedAtAnnotation] = &v
	}
	return rolloutPatch(fresh, fresh.ResourceVersion, annotations, changedImages(before, fresh))
}
