package kube

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The judges of the apps/v1 kinds follow `kubectl rollout status`
// (k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go): the cases
// the controllers on the ground do not reach without a kubelet.
func TestRolloutJudges(t *testing.T) {
	three := int32(3)
	deployment := func(gen, observed int64, status appsv1.DeploymentStatus) *appsv1.Deployment {
		status.ObservedGeneration = observed
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: gen}, Spec: appsv1.DeploymentSpec{Replicas: &three}, Status: status}
	}
	statefulSet := func(status appsv1.StatefulSetStatus) *appsv1.StatefulSet {
		status.ObservedGeneration = 2
		return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Spec: appsv1.StatefulSetSpec{Replicas: &three}, Status: status}
	}
	daemonSet := func(status appsv1.DaemonSetStatus) *appsv1.DaemonSet {
		status.ObservedGeneration = 2
		return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Status: status}
	}
	noted := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	deadline := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet web-1 has timed out progressing.",
		LastUpdateTime: metav1.NewTime(noted)}
	for _, tc := range []struct {
		name  string
		judge func() (Rollout, string, bool)
		want  Rollout
		done  bool
	}{
		{"deployment not yet observed", func() (Rollout, string, bool) {
			return deploymentRollout(deployment(3, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}), time.Time{})
		}, 0, false},
		{"deployment past its progress deadline", func() (Rollout, string, bool) {
			return deploymentRollout(deployment(2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, Conditions: []appsv1.DeploymentCondition{deadline}}), time.Time{})
		}, RolloutFailed, true},
		// A scaling sync took the restart in with the old rollout's missed
		// deadline (noted at 12:00:00): not this rollout's failure.
		{"deployment past the deadline of the rollout before its restart", func() (Rollout, string, bool) {
			return deploymentRollout(deployment(2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, Conditions: []appsv1.DeploymentCondition{deadline}}), noted.Add(time.Second))
		}, 0, false},
		{"deployment past its deadline in the second of its restart", func() (Rollout, string, bool) {
			return deploymentRollout(deployment(2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, Conditions: []appsv1.DeploymentCondition{deadline}}), noted.Add(900*time.Millisecond))
		}, RolloutFailed, true},
		{"deployment past its deadline after its restart", func() (Rollout, string, bool) {
			return deploymentRollout(deployment(2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, Conditions: []appsv1.DeploymentCondition{deadline}}), noted.Add(-5*time.Second))
		}, RolloutFailed, true},
		{"deployment with replicas still to update", func() (Rollout, string, bool) {
			return deploymentRollout(deployment(2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 2, AvailableReplicas: 3}), time.Time{})
		}, 0, false},
		{"deployment with old replicas terminating", func() (Rollout, string, bool) {
			return deploymentRollout(deployment(2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 3, AvailableReplicas: 3}), time.Time{})
		}, 0, false},
		{"deployment with updated replicas not yet available", func() (Rollout, string, bool) {
			return deploymentRollout(deployment(2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 2}), time.Time{})
		}, 0, false},
		{"deployment complete", func() (Rollout, string, bool) {
			return deploymentRollout(deployment(2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}), time.Time{})
		}, RolloutComplete, true},
		{"statefulset with pods not ready", func() (Rollout, string, bool) {
			return statefulSetRollout(statefulSet(appsv1.StatefulSetStatus{UpdatedReplicas: 3, ReadyReplicas: 2, CurrentRevision: "b", UpdateRevision: "b"}))
		}, 0, false},
		{"statefulset whose revision has not turned over", func() (Rollout, string, bool) {
			return statefulSetRollout(statefulSet(appsv1.StatefulSetStatus{UpdatedReplicas: 3, ReadyReplicas: 3, CurrentRevision: "a", UpdateRevision: "b"}))
		}, 0, false},
		{"statefulset complete", func() (Rollout, string, bool) {
			return statefulSetRollout(statefulSet(appsv1.StatefulSetStatus{UpdatedReplicas: 3, ReadyReplicas: 3, CurrentRevision: "b", UpdateRevision: "b"}))
		}, RolloutComplete, true},
		{"daemonset with pods not available", func() (Rollout, string, bool) {
			return daemonSetRollout(daemonSet(appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberAvailable: 2}))
		}, 0, false},
		{"daemonset complete", func() (Rollout, string, bool) {
			return daemonSetRollout(daemonSet(appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberAvailable: 3}))
		}, RolloutComplete, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why, done := tc.judge()
			if got != tc.want || done != tc.done {
				t.Errorf("= %v, %v (%s); want %v, %v", got, done, why, tc.want, tc.done)
			}
		})
	}
}
