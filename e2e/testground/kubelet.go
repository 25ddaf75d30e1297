package testground

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The test ground has no kubelet: a Job's pod is created by the real job
// controller and stays Pending. These helpers do the kubelet's part
// honestly, through the API: the caller runs the container's command with
// the environment the kubelet would give it (ContainerEnv), then
// FinishJobPod reports the container's exit as the kubelet does, in the
// pod's status, and the real job controller marks the Job finished.

// ContainerEnv returns the environment the kubelet gives the container
// named name of a pod template in namespace: plain values, fieldRef
// metadata.namespace and metadata.name (podName), secretKeyRef,
// configMapKeyRef, and envFrom Secrets and ConfigMaps, later entries
// winning as in a pod.
func ContainerEnv(ctx context.Context, cs kubernetes.Interface, namespace, podName string, spec corev1.PodSpec, name string) (map[string]string, error) {
	var c *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			c = &spec.Containers[i]
		}
	}
	if c == nil {
		return nil, fmt.Errorf("no container %q", name)
	}
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.SecretRef != nil:
			s, err := cs.CoreV1().Secrets(namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("envFrom secret %s: %w", from.SecretRef.Name, err)
			}
			for k, v := range s.Data {
				env[from.Prefix+k] = string(v)
			}
		case from.ConfigMapRef != nil:
			cm, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("envFrom configmap %s: %w", from.ConfigMapRef.Name, err)
			}
			for k, v := range cm.Data {
				env[from.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = namespace
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = podName
		case e.ValueFrom.SecretKeyRef != nil:
			s, err := cs.CoreV1().Secrets(namespace).Get(ctx, e.ValueFrom.SecretKeyRef.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			env[e.Name] = string(s.Data[e.ValueFrom.SecretKeyRef.Key])
		case e.ValueFrom.ConfigMapKeyRef != nil:
			cm, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, e.ValueFrom.ConfigMapKeyRef.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			env[e.Name] = cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
		default:
			return nil, fmt.Errorf("env %s: a valueFrom the test ground does not emulate", e.Name)
		}
	}
	return env, nil
}

// JobPod waits for the job controller to create the Job's pod and
// returns it.
func JobPod(ctx context.Context, cs kubernetes.Interface, job *batchv1.Job) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		pods, err := cs.CoreV1().Pods(job.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/controller-uid=" + string(job.UID)})
		if err == nil && len(pods.Items) > 0 {
			return &pods.Items[0], nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the pod of Job %s/%s: %w (last: %v)", job.Namespace, job.Name, ctx.Err(), err)
		case <-time.After(pollInterval):
		}
	}
}

// FinishJobPod reports, as the kubelet would, that every container of
// the Job's pod exited with exitCode: phase Succeeded for 0, else Failed.
// The job controller then marks the Job Complete or Failed.
func FinishJobPod(ctx context.Context, cs kubernetes.Interface, job *batchv1.Job, exitCode int32) error {
	pod, err := JobPod(ctx, cs, job)
	if err != nil {
		return err
	}
	now := metav1.Now()
	pod.Status.Phase = corev1.PodSucceeded
	reason := "Completed"
	if exitCode != 0 {
		pod.Status.Phase, reason = corev1.PodFailed, "Error"
	}
	pod.Status.StartTime = &now
	pod.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name:  c.Name,
			Image: c.Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: exitCode, Reason: reason, StartedAt: now, FinishedAt: now,
			}},
		})
	}
	if _, err := cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("report the exit of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// WaitJobFinished waits for the job controller to mark the Job Complete
// or Failed and returns it.
func WaitJobFinished(ctx context.Context, cs kubernetes.Interface, namespace, name string, timeout time.Duration) (*batchv1.Job, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		j, err := cs.BatchV1().Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, c := range j.Status.Conditions {
				if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
					return j, nil
				}
			}
		} else if apierrors.IsNotFound(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for Job %s/%s to finish: %w", namespace, name, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}
