package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Rollout is how a restarted workload's rollout ended.
type Rollout int

const (
	// RolloutComplete: every replica runs the new template and is available.
	RolloutComplete Rollout = iota
	// RolloutFailed: the Deployment passed its progressDeadlineSeconds.
	RolloutFailed
	// RolloutUnfinished: still rolling when the wait ended (run deadline).
	RolloutUnfinished
)

func (r Rollout) String() string {
	return [...]string{"complete", "failed", "unfinished"}[r]
}

// rolloutPoll is how often a rollout is looked at: each look is one GET.
const rolloutPoll = time.Second

// WaitRollout polls w until its rollout completes or fails, as `kubectl
// rollout status` judges it, or until ctx ends (RolloutUnfinished, no
// error). The message says why.
func (c *Client) WaitRollout(ctx context.Context, w Workload) (Rollout, string, error) {
	for {
		r, msg, done, err := c.rolloutStatus(ctx, w)
		if err != nil {
			if ctx.Err() != nil {
				return RolloutUnfinished, "stopped waiting: " + ctx.Err().Error(), nil
			}
			return 0, "", fmt.Errorf("rollout status of %s %s/%s: %w", w.Kind, w.Namespace, w.Name, err)
		}
		if done {
			return r, msg, nil
		}
		select {
		case <-ctx.Done():
			return RolloutUnfinished, "stopped waiting: " + msg, nil
		case <-time.After(rolloutPoll):
		}
	}
}

func (c *Client) rolloutStatus(ctx context.Context, w Workload) (Rollout, string, bool, error) {
	get := metav1.GetOptions{}
	switch w.Kind {
	case "Deployment":
		d, err := c.cs.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, get)
		if err != nil {
			return 0, "", false, err
		}
		return deploymentRollout(d)
	case "StatefulSet":
		s, err := c.cs.AppsV1().StatefulSets(w.Namespace).Get(ctx, w.Name, get)
		if err != nil {
			return 0, "", false, err
		}
		want := int32(1)
		if s.Spec.Replicas != nil {
			want = *s.Spec.Replicas
		}
		switch {
		case s.Status.ObservedGeneration < s.Generation:
			return 0, "waiting for the controller to see the new template", false, nil
		case s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType:
			return RolloutComplete, "OnDelete strategy: pods take the new template when deleted", true, nil
		case s.Status.UpdatedReplicas < want || s.Status.ReadyReplicas < want:
			return 0, fmt.Sprintf("%d of %d pods updated, %d ready", s.Status.UpdatedReplicas, want, s.Status.ReadyReplicas), false, nil
		case s.Status.UpdateRevision != s.Status.CurrentRevision && want > 0:
			return 0, "waiting for the current revision to become the update revision", false, nil
		}
		return RolloutComplete, fmt.Sprintf("%d pods updated and ready", want), true, nil
	case "DaemonSet":
		d, err := c.cs.AppsV1().DaemonSets(w.Namespace).Get(ctx, w.Name, get)
		if err != nil {
			return 0, "", false, err
		}
		st := d.Status
		switch {
		case st.ObservedGeneration < d.Generation:
			return 0, "waiting for the controller to see the new template", false, nil
		case st.UpdatedNumberScheduled < st.DesiredNumberScheduled || st.NumberAvailable < st.DesiredNumberScheduled:
			return 0, fmt.Sprintf("%d of %d pods updated, %d available", st.UpdatedNumberScheduled, st.DesiredNumberScheduled, st.NumberAvailable), false, nil
		}
		return RolloutComplete, fmt.Sprintf("%d pods updated and available", st.DesiredNumberScheduled), true, nil
	}
	return 0, "", false, ErrUnsupportedKind
}

// deploymentRollout follows kubectl's rollout status for Deployments.
func deploymentRollout(d *appsv1.Deployment) (Rollout, string, bool, error) {
	if d.Status.ObservedGeneration < d.Generation {
		return 0, "waiting for the controller to see the new template", false, nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return RolloutFailed, "progress deadline exceeded: " + c.Message, true, nil
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	switch {
	case d.Status.UpdatedReplicas < want:
		return 0, fmt.Sprintf("%d of %d replicas updated", d.Status.UpdatedReplicas, want), false, nil
	case d.Status.Replicas > d.Status.UpdatedReplicas:
		return 0, fmt.Sprintf("%d old replicas pending termination", d.Status.Replicas-d.Status.UpdatedReplicas), false, nil
	case d.Status.AvailableReplicas < d.Status.UpdatedReplicas:
		return 0, fmt.Sprintf("%d of %d updated replicas available", d.Status.AvailableReplicas, d.Status.UpdatedReplicas), false, nil
	}
	return RolloutComplete, fmt.Sprintf("%d replicas updated and available", want), true, nil
}

// Rollback restores the pod-template annotations w had when it was listed,
// before urunner's restart: the template is then the previous one again, so
// the controller brings back the previous ReplicaSet (or revision).
func (c *Client) Rollback(ctx context.Context, w Workload) error {
	ann := map[string]any{RestartedAtAnnotation: nil, RestartedForAnnotation: nil}
	if w.RestartedAt != "" {
		ann[RestartedAtAnnotation] = w.RestartedAt
	}
	if len(w.RestartedFor) > 0 {
		b, err := json.Marshal(w.RestartedFor)
		if err != nil {
			return err
		}
		ann[RestartedForAnnotation] = string(b)
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{"annotations": ann}}}})
	if err != nil {
		return err
	}
	if err := c.patch(ctx, w, patch); err != nil {
		return fmt.Errorf("roll back %s %s/%s: %w", w.Kind, w.Namespace, w.Name, err)
	}
	return nil
}
