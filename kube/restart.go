package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

const (
	// RestartedAtAnnotation is the pod-template annotation `kubectl rollout
	// restart` sets; changing it rolls the workload.
	RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"
	// RestartedForAnnotation records, as a JSON object container →
	// "registry/repository:tag@sha256:…", what urunner restarted each
	// container for. It is the workload's own memory: a run that finds the
	// digest it wants recorded for the container's current image does not
	// restart again, which keeps overlapping runs and a run that crashed
	// after patching from rolling a workload twice.
	RestartedForAnnotation = "urunner.io/restarted-for"
)

// ErrConflict is a workload that changed since it was read: read it again
// and decide again; never re-send a patch decided on the old version.
var ErrConflict = errors.New("changed since it was read")

// ErrChangedSinceRestart is a workload whose spec changed after urunner
// restarted it: a rollback would revert someone's edit, so it is not made.
var ErrChangedSinceRestart = errors.New("its spec changed after the restart")

// Restart is what a restart writes to a workload's pod template.
type Restart struct {
	// At is the restartedAt time; set in pin mode too, for cooldowns.
	At time.Time
	// Records are container → "reference@digest" added to restarted-for.
	Records map[string]string
	// Pins are container → image to set (pin mode); none by annotation.
	Pins map[string]string
}

// Restart patches w's pod template once, with the resourceVersion w was
// read at as a precondition, so that it applies only to the object urunner
// decided on. A workload changed since answers an error wrapping
// ErrConflict. It returns the workload's generation after the patch.
func (c *Client) Restart(ctx context.Context, w Workload, r Restart) (int64, error) {
	k, err := kindOf(w.Kind)
	if err != nil {
		return 0, err
	}
	records := maps.Clone(w.RestartedFor)
	if records == nil {
		records = map[string]string{}
	}
	maps.Copy(records, r.Records)
	rf, err := json.Marshal(records)
	if err != nil {
		return 0, err
	}
	if w.TemplateFrom != nil && len(r.Pins) > 0 {
		return c.pinTemplateRef(ctx, k, w, r, string(rf))
	}
	patch, pt, err := k.restart(w, r, string(rf))
	if err != nil {
		return 0, err
	}
	obj, err := k.patch(ctx, c, w.Namespace, w.Name, pt, patch)
	if apierrors.IsConflict(err) {
		return 0, fmt.Errorf("restart %s %s/%s: %w", w.Kind, w.Namespace, w.Name, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("restart %s %s/%s: %w", w.Kind, w.Namespace, w.Name, err)
	}
	m, err := metaOf(obj)
	if err != nil {
		return 0, err
	}
	return m.GetGeneration(), nil
}

// restartTemplate is the restart of a kind whose pod template's annotations
// roll it: restartedAt and restarted-for in the template, and the pinned
// images.
func restartTemplate(w Workload, r Restart, restartedFor string) ([]byte, types.PatchType, error) {
	at := r.At.UTC().Format(time.RFC3339)
	if at == w.RestartedAt {
		// Restarted in this same second already (runs in quick succession:
		// a push burst, a delivery checked right after its restart): the
		// same value would change nothing and roll nothing, though the
		// PATCH succeeds. RFC 3339 with fractions reads as well.
		at = r.At.UTC().Format(time.RFC3339Nano)
	}
	annotations := map[string]any{
		RestartedAtAnnotation:  at,
		RestartedForAnnotation: restartedFor,
	}
	return templatePatch(w, w.ResourceVersion, annotations, r.Pins)
}

// rollbackTemplate restores before's restart annotations and images in
// the template of fresh, the workload as it is now.
func rollbackTemplate(before, fresh Workload) ([]byte, types.PatchType, error) {
	annotations := map[string]any{RestartedAtAnnotation: nil, RestartedForAnnotation: nil}
	if before.RestartedAt != "" {
		annotations[RestartedAtAnnotation] = before.RestartedAt
	}
	if len(before.RestartedFor) > 0 {
		b, err := json.Marshal(before.RestartedFor)
		if err != nil {
			return nil, "", err
		}
		annotations[RestartedForAnnotation] = string(b)
	}
	return templatePatch(before, fresh.ResourceVersion, annotations, changedImages(before, fresh))
}

// changedImages are the images of before's containers that fresh changed.
func changedImages(before, fresh Workload) map[string]string {
	images := map[string]string{}
	now := map[string]string{}
	for _, c := range fresh.Containers {
		now[c.Name] = c.Image
	}
	for _, c := range before.Containers {
		if img, ok := now[c.Name]; ok && img != c.Image {
			images[c.Name] = c.Image
		}
	}
	return images
}

// templatePatch builds one patch of w's pod template annotations and, when
// images is set, of its containers' images. metadata.resourceVersion in a
// patch is a precondition: the API server answers 409 if the object
// changed since it was read.
func templatePatch(w Workload, resourceVersion string, annotations map[string]any, images map[string]string) ([]byte, types.PatchType, error) {
	template := map[string]any{}
	if annotations != nil {
		template["metadata"] = map[string]any{"annotations": annotations}
	}
	pt := types.MergePatchType
	if len(images) > 0 {
		// A strategic merge patch merges containers by name, so only the
		// named containers' images change.
		var containers, inits []map[string]string
		for _, c := range w.Containers {
			img, ok := images[c.Name]
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
		spec := map[string]any{}
		if len(containers) > 0 {
			spec["containers"] = containers
		}
		if len(inits) > 0 {
			spec["initContainers"] = inits
		}
		template["spec"] = spec
		pt = types.StrategicMergePatchType
	}
	p, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": resourceVersion},
		"spec":     map[string]any{"template": template},
	})
	return p, pt, err
}

// Get reads a workload again, after a conflict.
func (c *Client) Get(ctx context.Context, kindName, namespace, name string) (Workload, error) {
	k, err := kindOf(kindName)
	if err != nil {
		return Workload{}, err
	}
	obj, err := k.get(ctx, c, namespace, name)
	if err != nil {
		return Workload{}, fmt.Errorf("read %s %s/%s: %w", kindName, namespace, name, err)
	}
	w := k.read(obj)
	if w.TemplateFrom != nil {
		return c.withTemplate(ctx, obj, w, &templates{})
	}
	return w, nil
}

// Rollback restores the pod template before, the workload as read before
// urunner restarted it, to what it was: its restart annotations and, in pin
// mode, its images, so that the controller brings the previous pods back
// and urunner keeps following the workload. It does so only if nothing else
// changed the spec since the restart (generation is what the restart's
// patch returned): a rollback never reverts someone's edit. A conflict is
// any write since the read, the controller's status updates included: the
// workload is read again, and its generation says whether its spec changed.
func (c *Client) Rollback(ctx context.Context, before Workload, generation int64) error {
	k, err := kindOf(before.Kind)
	if err != nil {
		return err
	}
	if before.TemplateFrom != nil {
		err = c.rollbackTemplateRef(ctx, k, before, generation)
	} else {
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error { return c.rollbackOnce(ctx, k, before, generation) })
	}
	switch {
	case err == nil:
		return nil
	case apierrors.IsConflict(err): // conflicts every time: written to more than the retries last
		err = fmt.Errorf("%w: %w", ErrChangedSinceRestart, err)
	}
	return fmt.Errorf("roll back %s %s/%s: %w", before.Kind, before.Namespace, before.Name, err)
}

// rollbackOnce reads the workload again and patches its rollback.
func (c *Client) rollbackOnce(ctx context.Context, k kind, before Workload, generation int64) error {
	fresh, err := c.Get(ctx, before.Kind, before.Namespace, before.Name)
	if err != nil {
		return err
	}
	if fresh.Generation != generation {
		return fmt.Errorf("%w (generation %d, the restart left %d)", ErrChangedSinceRestart, fresh.Generation, generation)
	}
	patch, pt, err := k.rollback(before, fresh)
	if err != nil {
		return err
	}
	_, err = k.patch(ctx, c, before.Namespace, before.Name, pt, patch)
	return err
}

// RemoveAnnotation removes the workload's own (metadata) annotation key
// if it still has value: a metadata-only patch, which rolls nothing. The
// workload is read first and the patch carries its resourceVersion, so an
// annotation a person changed meanwhile is left as they set it; a conflict
// is read and tried again, a few times.
func (c *Client) RemoveAnnotation(ctx context.Context, kindName, namespace, name, key, value string) error {
	k, err := kindOf(kindName)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		w, err := c.Get(ctx, kindName, namespace, name)
		if err != nil {
			return err
		}
		if v, ok := w.Annotations[key]; !ok || v != value {
			return nil
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": w.ResourceVersion, "annotations": map[string]any{key: nil},
		}})
		if err != nil {
			return err
		}
		_, err = k.patch(ctx, c, namespace, name, types.MergePatchType, patch)
		if apierrors.IsConflict(err) && attempt < 3 {
			continue
		}
		if err != nil {
			return fmt.Errorf("remove annotation %s of %s %s/%s: %w", key, kindName, namespace, name, err)
		}
		return nil
	}
}
