package kube

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
)

// A Rollout with spec.workloadRef runs the pod template of a Deployment
// (https://argoproj.github.io/argo-rollouts/migrating/#reference-deployment-from-rollout),
// which Argo keeps at zero replicas (scaleDown) and watches: a change of
// that template is a new revision of the Rollout. urunner takes it as the
// Rollout it is:
//   - found: the Rollout's containers are the Deployment's template's,
//     read with one GET of each Deployment named (listed Rollouts come
//     before Deployments, so that the Deployment is known when listed);
//     its labels, annotations, selector and status are the Rollout's;
//   - restarted: spec.restartAt on the Rollout, as any Rollout; in pin
//     mode the images are set in the Deployment's template, where the
//     template lives, and the records still go to the Rollout;
//   - the Deployment itself is never restarted on its own (Workload
//     TemplateOf): that would be a second revision of the Rollout.

// workloadGenerationAnnotation is where the Argo controller writes, on the
// Rollout, the generation of its workloadRef object it resolved.
const workloadGenerationAnnotation = "rollout.argoproj.io/workload-generation"

// workloadRef is a Rollout's spec.workloadRef.
type workloadRef struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name,omitempty"`
	// ScaleDown (never, onsuccess, progressively) is Argo's business.
	ScaleDown string `json:"scaleDown,omitempty"`
}

// TemplateSource is the object a Rollout takes its pod template from.
type TemplateSource struct {
	APIVersion, Kind, Name string
	// ResourceVersion and Generation of the Deployment as read: the
	// precondition of a pin, and what a rollback checks.
	ResourceVersion string
	Generation      int64
}

func (s *TemplateSource) String() string { return s.Kind + " " + s.Name }

// ErrTemplateUnread is a Rollout whose pod template could not be read from
// the object its spec.workloadRef names: missing, forbidden, or of a kind
// urunner does not read templates from. The Rollout is not restarted.
var ErrTemplateUnread = errors.New("pod template not read")

// templates reads each Deployment Rollouts take their templates from once
// per listing (two Rollouts may name one).
type templates struct {
	mu   sync.Mutex
	read map[string]templateRead // "namespace/name"
}

type templateRead struct {
	d   *appsv1.Deployment
	err error
}

func (t *templates) deployment(ctx context.Context, c *Client, ns, name string) (*appsv1.Deployment, error) {
	key := ns + "/" + name
	t.mu.Lock()
	r, ok := t.read[key]
	t.mu.Unlock()
	if ok {
		return r.d, r.err
	}
	d, err := c.api.Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.read == nil {
		t.read = map[string]templateRead{}
	}
	t.read[key] = templateRead{d, err}
	return d, err
}

// withTemplate returns w, the Rollout obj as read, with the pod template
// of the Deployment its spec.workloadRef names. An error names the
// Rollout and the object, and wraps ErrTemplateUnread.
func (c *Client) withTemplate(ctx context.Context, obj runtime.Object, w Workload, t *templates) (Workload, error) {
	r, err := toArgoRollout(obj)
	if err != nil {
		return w, fmt.Errorf("%w: %w", ErrTemplateUnread, err)
	}
	ref := r.Spec.WorkloadRef
	where := fmt.Sprintf("Rollout %s/%s: spec.workloadRef", r.Namespace, r.Name)
	if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
		return w, fmt.Errorf("%s names %s %s %s/%s: %w: urunner reads templates from apps/v1 Deployments only", where, ref.APIVersion, ref.Kind, r.Namespace, ref.Name, ErrTemplateUnread)
	}
	d, err := t.deployment(ctx, c, r.Namespace, ref.Name)
	if err != nil {
		return w, fmt.Errorf("%s names Deployment %s/%s: %w: %w", where, r.Namespace, ref.Name, ErrTemplateUnread, err)
	}
	if r.Spec.Selector == nil {
		// As Argo does: the Deployment's selector, when the Rollout has none.
		r.Spec.Selector = d.Spec.Selector
	}
	// The Rollout's own annotations (ignore-containers) apply to the
	// Deployment's containers.
	out := rolloutWorkload(r, &d.Spec.Template)
	out.Healthy = w.Healthy
	if out.GitOps == "" {
		// A pin writes the Deployment: a GitOps controller managing it
		// would revert the image, or see it drift.
		out.GitOps = gitOpsOwner(&d.ObjectMeta)
	}
	out.TemplateFrom = &TemplateSource{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: d.Name, ResourceVersion: d.ResourceVersion, Generation: d.Generation}
	return out, nil
}

// workloadObserved reports whether the Argo controller judged r with the
// template of its workloadRef object it last resolved, as Argo's
// GetRolloutPhase does, and resolved at least generation want of it (0:
// any). A Rollout without a workloadRef is always observed.
func workloadObserved(r *argoRollout, want int64) bool {
	if r.Spec.WorkloadRef == nil {
		return true
	}
	resolved, err := strconv.ParseInt(r.Annotations[workloadGenerationAnnotation], 10, 64)
	if err != nil {
		return want == 0
	}
	observed, err := strconv.ParseInt(r.Status.WorkloadObservedGeneration, 10, 64)
	if err != nil {
		return want == 0
	}
	return observed == resolved && resolved >= want
}

// templateObserved is a Rollout's judgment (r, msg) held until the Argo
// controller has resolved generation want of its template's Deployment.
func templateObserved(obj runtime.Object, want int64, r Rollout, msg string) (Rollout, string, bool) {
	ro, err := toArgoRollout(obj)
	if err != nil {
		return RolloutFailed, err.Error(), true
	}
	if !workloadObserved(ro, want) {
		return 0, fmt.Sprintf("waiting for the Argo Rollouts controller to see generation %d of Deployment %s", want, ro.Spec.WorkloadRef.Name), false
	}
	return r, msg, true
}

// templateGeneration reads the generation of the Deployment w takes its
// template from, for WaitRollout: the Argo controller must have seen it.
func (c *Client) templateGeneration(ctx context.Context, w Workload) (int64, error) {
	d, err := c.api.Deployments(w.Namespace).Get(ctx, w.TemplateFrom.Name, metav1.GetOptions{})
	if err != nil {
		return 0, fmt.Errorf("Rollout %s/%s: read its template's Deployment %s: %w", w.Namespace, w.Name, w.TemplateFrom.Name, err)
	}
	return d.Generation, nil
}

// pinTemplateRef pins images in the Deployment w takes its template from:
// first the records on the Rollout (with its resourceVersion as read),
// then the images in the Deployment (with its own). Argo writes the
// Rollout as soon as the Deployment changes, so the Rollout comes first.
// If the Deployment's patch fails, the Rollout's records are put back: a
// record of a pin that was not made would stop the next run's. It returns
// the Rollout's generation.
func (c *Client) pinTemplateRef(ctx context.Context, k kind, w Workload, r Restart, restartedFor string) (int64, error) {
	at := r.At.UTC().Format(time.RFC3339)
	p, pt, err := rolloutPatch(w, w.ResourceVersion, map[string]*string{
		RestartedForAnnotation:       &restartedFor,
		RolloutRestartedAtAnnotation: &at,
	}, nil)
	if err != nil {
		return 0, err
	}
	obj, err := k.patch(ctx, c, w.Namespace, w.Name, pt, p)
	if err != nil {
		return 0, patchError("restart", w, err)
	}
	m, err := metaOf(obj)
	if err != nil {
		return 0, err
	}
	dp, dpt, err := templatePatch(w, w.TemplateFrom.ResourceVersion, nil, r.Pins)
	if err == nil {
		_, err = c.api.Deployments(w.Namespace).Patch(ctx, w.TemplateFrom.Name, dpt, dp, patchOptions)
	}
	if err != nil {
		err = fmt.Errorf("pin images in Deployment %s/%s, the template of Rollout %s/%s: %w", w.Namespace, w.TemplateFrom.Name, w.Namespace, w.Name, conflictAs(err))
		if uerr := c.restoreRecords(ctx, k, w); uerr != nil {
			err = fmt.Errorf("%w; and its records on the Rollout could not be put back: %w", err, uerr)
		}
		return 0, err
	}
	return m.GetGeneration(), nil
}

// restoreRecords puts back the Rollout's records as before had them.
func (c *Client) restoreRecords(ctx context.Context, k kind, before Workload) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj, err := k.get(ctx, c, before.Namespace, before.Name)
		if err != nil {
			return err
		}
		p, pt, err := rollbackArgoRollout(before, k.workload(obj))
		if err != nil {
			return err
		}
		_, err = k.patch(ctx, c, before.Namespace, before.Name, pt, p)
		return err
	})
}

// rollbackTemplateRef is Rollback for a Rollout with a workloadRef: the
// Deployment's images as before had them (unless the Deployment changed
// since the pin: its generation then moved by more than the pin's one),
// then the Rollout's records.
func (c *Client) rollbackTemplateRef(ctx context.Context, k kind, before Workload, generation int64) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh, err := c.Get(ctx, before.Kind, before.Namespace, before.Name)
		if err != nil {
			return err
		}
		if fresh.Generation != generation {
			return fmt.Errorf("%w (generation %d, the restart left %d)", ErrChangedSinceRestart, fresh.Generation, generation)
		}
		if fresh.TemplateFrom == nil || fresh.TemplateFrom.Name != before.TemplateFrom.Name {
			return fmt.Errorf("%w (its spec.workloadRef no longer names Deployment %s)", ErrChangedSinceRestart, before.TemplateFrom.Name)
		}
		if images := changedImages(before, fresh); len(images) > 0 {
			if g := fresh.TemplateFrom.Generation; g != before.TemplateFrom.Generation+1 {
				return fmt.Errorf("%w (Deployment %s is at generation %d, the pin left %d)", ErrChangedSinceRestart, before.TemplateFrom.Name, g, before.TemplateFrom.Generation+1)
			}
			p, pt, err := templatePatch(before, fresh.TemplateFrom.ResourceVersion, nil, images)
			if err != nil {
				return err
			}
			if _, err := c.api.Deployments(before.Namespace).Patch(ctx, before.TemplateFrom.Name, pt, p, patchOptions); err != nil {
				return err
			}
		}
		p, pt, err := rollbackArgoRollout(before, fresh)
		if err != nil {
			return err
		}
		_, err = k.patch(ctx, c, before.Namespace, before.Name, pt, p)
		return err
	})
}

// conflictAs turns a 409 into ErrConflict: read again, decide again.
func conflictAs(err error) error {
	if apierrors.IsConflict(err) {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// patchError is the error of a patch of w.
func patchError(what string, w Workload, err error) error {
	return fmt.Errorf("%s %s %s/%s: %w", what, w.Kind, w.Namespace, w.Name, conflictAs(err))
}

// listing is one List call's view of Rollouts and the Deployments their
// templates live in.
type listing struct {
	c *Client
	// want are the namespaces whose workloads are handed on; nil: all
	// those listed (per namespace).
	want map[string]bool

	templates templates
	mu        sync.Mutex
	of        map[string][]string // "namespace/deployment" → its Rollouts "namespace/name"
	unread    map[string]error    // Rollout "namespace/name" → why its template was not read
}

// read is what the listing hands on of obj, of kind k, and whether it
// does: a disabled workload only counts as a Rollout naming its template;
// a Rollout whose template cannot be read is in unread instead.
func (l *listing) read(ctx context.Context, k kind, obj runtime.Object, disabled bool) (Workload, bool) {
	w := k.read(obj)
	if w.Kind == "Deployment" {
		w.TemplateOf = l.templateOf(w.Namespace, w.Name)
	}
	if w.TemplateFrom == nil || l.want != nil && !l.want[w.Namespace] {
		return w, !disabled
	}
	key := w.Namespace + "/" + w.Name
	if w.TemplateFrom.Kind == "Deployment" {
		l.mu.Lock()
		if l.of == nil {
			l.of = map[string][]string{}
		}
		dkey := w.Namespace + "/" + w.TemplateFrom.Name
		l.of[dkey] = append(l.of[dkey], key)
		l.mu.Unlock()
	}
	if disabled {
		return w, false
	}
	w, err := l.c.withTemplate(ctx, obj, w, &l.templates)
	if err != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.unread == nil {
			l.unread = map[string]error{}
		}
		l.unread[key] = err
		return w, false
	}
	return w, true
}

// templateOf names the listed Rollouts whose template Deployment
// namespace/name is, "" for none.
func (l *listing) templateOf(namespace, name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.of[namespace+"/"+name], ", ")
}
