package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

const (
	// RestartedAtAnnotation is the pod-template annotation `kubectl rollout
	// restart` sets; changing it rolls the workload.
	RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"
	// RestartedForAnnotation records, as a JSON object container → digest,
	// the digests urunner restarted the workload for. A run that finds the
	// digest it wants already recorded does not restart again: this is what
	// keeps two overlapping runs from rolling a workload twice.
	RestartedForAnnotation = "urunner.io/restarted-for"
)

// RestartOutcome says what Restart did.
type RestartOutcome int

const (
	// Restarted: the pod template was patched.
	Restarted RestartOutcome = iota
	// AlreadyRestarted: another run restarted the workload for these
	// digests since it was listed; nothing was patched.
	AlreadyRestarted
	// NowPaused: the Deployment was paused since it was listed.
	// (StatefulSets and DaemonSets cannot be paused.)
	NowPaused
)

// ErrUnsupportedKind is returned for a workload kind urunner cannot patch.
var ErrUnsupportedKind = errors.New("unsupported workload kind")

// Restart patches w's pod template with the restartedAt annotation and the
// digests it restarts for (container → digest), in one PATCH.
//
// The patch carries the resourceVersion w was listed at, so it applies only
// to the object urunner decided on. On a conflict Restart reads the
// workload again: if another run has already recorded these digests it
// returns AlreadyRestarted, otherwise it patches the fresh version.
//
// With pins (container → image to set, "repo:tag@sha256:…"), Restart pins
// instead: it sets those container images, and the restarted-for record,
// but no restartedAt; the new image rolls the workload.
func (c *Client) Restart(ctx context.Context, w Workload, at time.Time, digests, pins map[string]string) (RestartOutcome, error) {
	outcome := Restarted
	rv, recorded := w.ResourceVersion, w.RestartedFor
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if covers(recorded, digests) {
			outcome = AlreadyRestarted
			return nil
		}
		patch, pt, err := restartPatch(rv, recorded, digests, at, pins, w)
		if err != nil {
			return err
		}
		if err := c.patchType(ctx, w, pt, patch); !apierrors.IsConflict(err) {
			return err
		}
		fresh, err := c.get(ctx, w)
		if err != nil {
			return err
		}
		if fresh.Paused {
			outcome = NowPaused
			return nil
		}
		rv, recorded = fresh.ResourceVersion, fresh.RestartedFor
		return apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: strings.ToLower(w.Kind) + "s"}, w.Name, errors.New("changed since listed"))
	})
	if err != nil {
		return 0, fmt.Errorf("restart %s %s/%s: %w", w.Kind, w.Namespace, w.Name, err)
	}
	return outcome, nil
}

func covers(recorded, digests map[string]string) bool {
	for c, d := range digests {
		if recorded[c] != d {
			return false
		}
	}
	return true
}

func restartPatch(resourceVersion string, recorded, digests map[string]string, at time.Time, pins map[string]string, w Workload) ([]byte, types.PatchType, error) {
	rf, err := mergeRestartedFor(recorded, digests)
	if err != nil {
		return nil, "", err
	}
	// metadata.resourceVersion in a patch is a precondition: the API
	// server answers 409 if the object changed since it was read.
	meta := map[string]any{"resourceVersion": resourceVersion}
	if len(pins) == 0 {
		p, err := json.Marshal(map[string]any{
			"metadata": meta,
			"spec": map[string]any{"template": map[string]any{
				"metadata": map[string]any{"annotations": map[string]string{
					RestartedAtAnnotation:  at.UTC().Format(time.RFC3339),
					RestartedForAnnotation: rf,
				}},
			}},
		})
		return p, types.MergePatchType, err
	}
	// A strategic merge patch merges containers by name, so only the
	// pinned images change.
	var containers, inits []map[string]string
	for _, c := range w.Containers {
		img, ok := pins[c.Name]
		if !ok {
			continue
		}
		entry := map[string]string{"name": c.Name, "image": img}
		if c.Init {
			inits = append(inits, entry)
		} else {
			containers = append(containers, entry)
		}
	}
	podSpec := map[string]any{}
	if len(containers) > 0 {
		podSpec["containers"] = containers
	}
	if len(inits) > 0 {
		podSpec["initContainers"] = inits
	}
	p, err := json.Marshal(map[string]any{
		"metadata": meta,
		"spec": map[string]any{"template": map[string]any{
			"metadata": map[string]any{"annotations": map[string]string{RestartedForAnnotation: rf}},
			"spec":     podSpec,
		}},
	})
	return p, types.StrategicMergePatchType, err
}

func (c *Client) patch(ctx context.Context, w Workload, patch []byte) error {
	return c.patchType(ctx, w, types.MergePatchType, patch)
}

func (c *Client) patchType(ctx context.Context, w Workload, pt types.PatchType, patch []byte) error {
	opts := metav1.PatchOptions{FieldManager: "urunner"}
	var err error
	switch w.Kind {
	case "Deployment":
		_, err = c.cs.AppsV1().Deployments(w.Namespace).Patch(ctx, w.Name, pt, patch, opts)
	case "StatefulSet":
		_, err = c.cs.AppsV1().StatefulSets(w.Namespace).Patch(ctx, w.Name, pt, patch, opts)
	case "DaemonSet":
		_, err = c.cs.AppsV1().DaemonSets(w.Namespace).Patch(ctx, w.Name, pt, patch, opts)
	default:
		err = ErrUnsupportedKind
	}
	return err
}

// get reads a workload again, after a conflict.
func (c *Client) get(ctx context.Context, w Workload) (Workload, error) {
	opts := metav1.GetOptions{}
	switch w.Kind {
	case "Deployment":
		d, err := c.cs.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, opts)
		if err != nil {
			return Workload{}, err
		}
		fresh := fromTemplate(w.Kind, d.ObjectMeta, &d.Spec.Template)
		fresh.Paused = d.Spec.Paused
		return fresh, nil
	case "StatefulSet":
		s, err := c.cs.AppsV1().StatefulSets(w.Namespace).Get(ctx, w.Name, opts)
		if err != nil {
			return Workload{}, err
		}
		return fromTemplate(w.Kind, s.ObjectMeta, &s.Spec.Template), nil
	case "DaemonSet":
		d, err := c.cs.AppsV1().DaemonSets(w.Namespace).Get(ctx, w.Name, opts)
		if err != nil {
			return Workload{}, err
		}
		return fromTemplate(w.Kind, d.ObjectMeta, &d.Spec.Template), nil
	}
	return Workload{}, ErrUnsupportedKind
}
