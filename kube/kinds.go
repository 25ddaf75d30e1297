package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// ErrUnsupportedKind is returned for a workload kind urunner cannot handle.
var ErrUnsupportedKind = errors.New("unsupported workload kind")

// kind is everything urunner does with one workload kind. The pager hands
// each listed item to workload, which keeps a small Workload and drops the
// object.
type kind struct {
	name       string // as in the state and the configuration: "Deployment"
	group      string
	apiVersion string // "apps/v1"
	resource   string // "deployments"
	list       func(ctx context.Context, c *Client, ns string, o metav1.ListOptions) (runtime.Object, error)
	get        func(ctx context.Context, c *Client, ns, name string) (runtime.Object, error)
	patch      func(ctx context.Context, c *Client, ns, name string, pt types.PatchType, data []byte) (runtime.Object, error)
	workload   func(obj runtime.Object) Workload
	// rollout judges an object's rollout as `kubectl rollout status` does:
	// its state, why, and whether the wait is over.
	rollout func(obj runtime.Object, restarted time.Time) (Rollout, string, bool)
	// restart builds the patch restarting w (restartedFor is the new
	// restarted-for record, JSON), with w's resourceVersion as a
	// precondition; rollback the patch undoing it on fresh, the workload
	// as it is now.
	restart  func(w Workload, r Restart, restartedFor string) ([]byte, types.PatchType, error)
	rollback func(before, fresh Workload) ([]byte, types.PatchType, error)
}

// kinds is the table of workload kinds, in listing order.
var kinds = []kind{
	{
		name: "Deployment", group: "apps", apiVersion: "apps/v1", resource: "deployments",
		restart: restartTemplate, rollback: rollbackTemplate,
		list: func(ctx context.Context, c *Client, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return c.api.Deployments(ns).List(ctx, o)
		},
		get: func(ctx context.Context, c *Client, ns, name string) (runtime.Object, error) {
			return c.api.Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		},
		patch: func(ctx context.Context, c *Client, ns, name string, pt types.PatchType, data []byte) (runtime.Object, error) {
			return c.api.Deployments(ns).Patch(ctx, name, pt, data, patchOptions)
		},
		workload: func(obj runtime.Object) Workload {
			d := obj.(*appsv1.Deployment)
			w := fromTemplate("Deployment", &d.ObjectMeta, &d.Spec.Template)
			w.Paused = d.Spec.Paused
			w.Selector = selectorString(d.Spec.Selector)
			return w
		},
		rollout: func(obj runtime.Object, restarted time.Time) (Rollout, string, bool) {
			return deploymentRollout(obj.(*appsv1.Deployment), restarted)
		},
	},
	{
		name: "StatefulSet", group: "apps", apiVersion: "apps/v1", resource: "statefulsets",
		restart: restartTemplate, rollback: rollbackTemplate,
		list: func(ctx context.Context, c *Client, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return c.api.StatefulSets(ns).List(ctx, o)
		},
		get: func(ctx context.Context, c *Client, ns, name string) (runtime.Object, error) {
			return c.api.StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		},
		patch: func(ctx context.Context, c *Client, ns, name string, pt types.PatchType, data []byte) (runtime.Object, error) {
			return c.api.StatefulSets(ns).Patch(ctx, name, pt, data, patchOptions)
		},
		workload: func(obj runtime.Object) Workload {
			s := obj.(*appsv1.StatefulSet)
			w := fromTemplate("StatefulSet", &s.ObjectMeta, &s.Spec.Template)
			w.Selector = selectorString(s.Spec.Selector)
			w.OnDelete = s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType
			return w
		},
		rollout: func(obj runtime.Object, _ time.Time) (Rollout, string, bool) {
			return statefulSetRollout(obj.(*appsv1.StatefulSet))
		},
	},
	{
		name: "DaemonSet", group: "apps", apiVersion: "apps/v1", resource: "daemonsets",
		restart: restartTemplate, rollback: rollbackTemplate,
		list: func(ctx context.Context, c *Client, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return c.api.DaemonSets(ns).List(ctx, o)
		},
		get: func(ctx context.Context, c *Client, ns, name string) (runtime.Object, error) {
			return c.api.DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		},
		patch: func(ctx context.Context, c *Client, ns, name string, pt types.PatchType, data []byte) (runtime.Object, error) {
			return c.api.DaemonSets(ns).Patch(ctx, name, pt, data, patchOptions)
		},
		workload: func(obj runtime.Object) Workload {
			d := obj.(*appsv1.DaemonSet)
			w := fromTemplate("DaemonSet", &d.ObjectMeta, &d.Spec.Template)
			w.Selector = selectorString(d.Spec.Selector)
			w.OnDelete = d.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType
			return w
		},
		rollout: func(obj runtime.Object, _ time.Time) (Rollout, string, bool) {
			return daemonSetRollout(obj.(*appsv1.DaemonSet))
		},
	},
	argoRolloutKind,
}

// patchOptions name urunner as the field manager, so that server-side
// appliers (Flux) see whose the restart annotations are.
var patchOptions = metav1.PatchOptions{FieldManager: "urunner"}

// Kinds returns the names of the kinds urunner handles, in listing order.
func Kinds() []string {
	var names []string
	for _, k := range kinds {
		names = append(names, k.name)
	}
	return names
}

func kindOf(name string) (kind, error) {
	for _, k := range kinds {
		if k.name == name {
			return k, nil
		}
	}
	return kind{}, fmt.Errorf("%s: %w (want one of %s)", name, ErrUnsupportedKind, strings.Join(Kinds(), ", "))
}

// APIVersion returns the API version of a kind ("apps/v1").
func APIVersion(kindName string) string {
	k, err := kindOf(kindName)
	if err != nil {
		return "apps/v1"
	}
	return k.apiVersion
}

// Group returns the API group of a kind ("apps"), for RBAC and messages.
func Group(kindName string) string {
	k, err := kindOf(kindName)
	if err != nil {
		return "apps"
	}
	return k.group
}

// Resource returns the API resource of a kind ("deployments"), for RBAC
// and messages.
func Resource(kindName string) string {
	k, err := kindOf(kindName)
	if err != nil {
		return strings.ToLower(kindName) + "s"
	}
	return k.resource
}

// read is what urunner knows of a listed or fetched object: the workload,
// and whether its rollout is complete.
func (k kind) read(obj runtime.Object) Workload {
	w := k.workload(obj)
	r, _, done := k.rollout(obj, time.Time{})
	w.Healthy = done && r == RolloutComplete
	return w
}
