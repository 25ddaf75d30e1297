package kube

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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
	// RolloutManual: a person takes it from here: an OnDelete workload,
	// whose pods take the new template only when someone deletes them, or
	// an Argo Rollout paused at a step until someone promotes it.
	RolloutManual
)

func (r Rollout) String() string {
	return [...]string{"complete", "failed", "unfinished", "manual"}[r]
}

// rolloutPoll is how often a rollout is looked at: each look is one GET.
const rolloutPoll = time.Second

// WaitRollout polls w until its rollout completes or fails, as `kubectl
// rollout status` judges it, or until ctx ends (RolloutUnfinished, no
// error). The message says why.
func (c *Client) WaitRollout(ctx context.Context, w Workload) (Rollout, string, error) {
	k, err := kindOf(w.Kind)
	if err != nil {
		return 0, "", err
	}
	if w.OnDelete {
		return RolloutManual, "OnDelete update strategy: the pods take the new template only when they are deleted", nil
	}
	// A Rollout whose template lives in a Deployment is judged once the
	// Argo controller has seen that Deployment as it is now (after a pin:
	// its new generation), not from a phase of the template before.
	var template int64
	if w.TemplateFrom != nil {
		if template, err = c.templateGeneration(ctx, w); err != nil {
			return 0, "", err
		}
	}
	for {
		obj, err := k.get(ctx, c, w.Namespace, w.Name)
		if err != nil {
			if err := ended(ctx); err != nil {
				return RolloutUnfinished, "stopped waiting: " + err.Error(), nil
			}
			return 0, "", fmt.Errorf("rollout status of %s %s/%s: %w", w.Kind, w.Namespace, w.Name, err)
		}
		r, msg, done := k.rollout(obj, w.Restarted)
		if done && template > 0 {
			r, msg, done = templateObserved(obj, template, r, msg)
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

// ended returns why ctx is over, nil while it is not. Past its deadline
// counts as over before ctx's timer fires: client-go's rate limiter
// already refuses a request it cannot start before the deadline.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// deploymentRollout follows kubectl's rollout status for Deployments,
// restarted at the API server's time restarted (zero: unknown). A missed
// progress deadline noted before then is the last rollout's, not this
// one's: a scaling sync that takes in the restart with a change of replicas
// marks the new generation observed, and carries the old conditions over,
// before the controller has taken up the new template. Counting it would
// roll back, and quarantine, a digest that never had its chance. A deadline
// missed by the new template is noted at least progressDeadlineSeconds
// after the restart, so it is never taken for an old one.
func deploymentRollout(d *appsv1.Deployment, restarted time.Time) (Rollout, string, bool) {
	if d.Status.ObservedGeneration < d.Generation {
		return 0, "waiting for the controller to see the new template", false
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			if c.LastUpdateTime.Time.Before(restarted.Truncate(time.Second)) {
				return 0, "waiting for the controller to take up the new template (the missed deadline is the last rollout's)", false
			}
			return RolloutFailed, "progress deadline exceeded: " + c.Message, true
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	switch {
	case d.Status.UpdatedReplicas < want:
		return 0, fmt.Sprintf("%d of %d replicas updated", d.Status.UpdatedReplicas, want), false
	case d.Status.Replicas > d.Status.UpdatedReplicas:
		return 0, fmt.Sprintf("%d old replicas pending termination", d.Status.Replicas-d.Status.UpdatedReplicas), false
	case d.Status.AvailableReplicas < d.Status.UpdatedReplicas:
		return 0, fmt.Sprintf("%d of %d updated replicas available", d.Status.AvailableReplicas, d.Status.UpdatedReplicas), false
	}
	return RolloutComplete, fmt.Sprintf("%d replicas updated and available", want), true
}

func statefulSetRollout(s *appsv1.StatefulSet) (Rollout, string, bool) {
	want := int32(1)
	if s.Spec.Replicas != nil {
		want = *s.Spec.Replicas
	}
	switch {
	case s.Status.ObservedGeneration < s.Generation:
		return 0, "waiting for the controller to see the new template", false
	case s.Status.UpdatedReplicas < want || s.Status.ReadyReplicas < want:
		return 0, fmt.Sprintf("%d of %d pods updated, %d ready", s.Status.UpdatedReplicas, want, s.Status.ReadyReplicas), false
	case s.Status.UpdateRevision != s.Status.CurrentRevision && want > 0:
		return 0, "waiting for the current revision to become the update revision", false
	}
	return RolloutComplete, fmt.Sprintf("%d pods updated and ready", want), true
}

func daemonSetRollout(d *appsv1.DaemonSet) (Rollout, string, bool) {
	st := d.Status
	switch {
	case st.ObservedGeneration < d.Generation:
		return 0, "waiting for the controller to see the new template", false
	case st.UpdatedNumberScheduled < st.DesiredNumberScheduled || st.NumberAvailable < st.DesiredNumberScheduled:
		return 0, fmt.Sprintf("%d of %d pods updated, %d available", st.UpdatedNumberScheduled, st.DesiredNumberScheduled, st.NumberAvailable), false
	}
	return RolloutComplete, fmt.Sprintf("%d pods updated and available", st.DesiredNumberScheduled), true
}
