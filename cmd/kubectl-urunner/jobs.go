package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

// What a Job started here carries, as `kubectl create job --from=cronjob/…`
// and urunner's push receiver make theirs.
const (
	instantiateAnnotation = "cronjob.kubernetes.io/instantiate"
	// triggerAnnotation says what started a Job: "plan" or "run" here,
	// "push" from the receiver (webhook.TriggerAnnotation).
	triggerAnnotation = "urunner.io/trigger"
	runContainerName  = "urunner"
	dryRunEnv         = "URUNNER_CONF_DRY_RUN"
)

// pollInterval paces the waits for a pod and a Job: what a person waits
// on, so short, and two small requests each.
const pollInterval = 500 * time.Millisecond

// start creates a Job from the CronJob, a dry run for plan (of target
// alone, when it names a reference), prints the log of its run, and
// returns the run's exit code as an exitCodeError.
func (c *cli) start(ctx context.Context, out io.Writer, dryRun bool, target planTarget) error {
	cj, err := c.cs.BatchV1().CronJobs(c.namespace).Get(ctx, c.cronJob, metav1.GetOptions{})
	if err != nil {
		return c.notFoundHint(err, "CronJob "+c.cronJob)
	}
	trigger := "run"
	if dryRun {
		trigger = "plan"
	}
	job, err := jobFromCronJob(cj, trigger, dryRun, target)
	if err != nil {
		return err
	}
	job, err = c.cs.BatchV1().Jobs(c.namespace).Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create a Job from CronJob %s/%s: %w", c.namespace, cj.Name, err)
	}
	fmt.Fprintf(c.err, "job.batch/%s created in namespace %s\n", job.Name, job.Namespace)
	code, err := c.follow(ctx, job, out)
	if err != nil {
		return fmt.Errorf("%w (the Job goes on: kubectl logs -f job/%s -n %s)", err, job.Name, job.Namespace)
	}
	if code != 0 {
		fmt.Fprintf(c.err, "job.batch/%s: the run exited %d\n", job.Name, code)
		return &exitCodeError{code}
	}
	return nil
}

// jobFromCronJob builds the Job `kubectl create job --from=cronjob/NAME`
// builds: the CronJob's job template, its annotations with
// cronjob.kubernetes.io/instantiate=manual, its labels, and the CronJob as
// controller (so that its history limits and `kubectl get jobs` count it).
// The name is generated: CRONJOB-plan-xxxxx or CRONJOB-run-xxxxx.
// urunner's container gets the CronJob's own schedule (the chart's value
// may be older than a `kubectl edit`), and a dry run for plan; target
// narrows a dry run to one reference, and to a digest as if just pushed.
// The variables replace the CronJob's values.
func jobFromCronJob(cj *batchv1.CronJob, trigger string, dryRun bool, target planTarget) (*batchv1.Job, error) {
	annotations := map[string]string{instantiateAnnotation: "manual"}
	for k, v := range cj.Spec.JobTemplate.Annotations {
		annotations[k] = v
	}
	annotations[triggerAnnotation] = trigger
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: generateName(cj.Name, trigger),
			Namespace:    cj.Namespace,
			Annotations:  annotations,
			Labels:       cj.Spec.JobTemplate.Labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID, Controller: ptr.To(true),
			}},
		},
		Spec: *cj.Spec.JobTemplate.Spec.DeepCopy(),
	}
	i := runContainer(job.Spec.Template.Spec.Containers)
	switch {
	case i < 0 && !dryRun:
		// A run is what the CronJob runs, now: without urunner's
		// container to tell its schedule, its forecasts give the earliest
		// time instead of a scheduled run.
		return job, nil
	case i < 0:
		return nil, fmt.Errorf("CronJob %s/%s: its job template has no container named %s and more than one container", cj.Namespace, cj.Name, runContainerName)
	}
	ctr := &job.Spec.Template.Spec.Containers[i]
	setEnv(ctr, scheduleEnv, scheduleOf(cj))
	unsetEnv(ctr, planDigestEnv) // only ever a plan's
	if !dryRun {
		return job, nil
	}
	setEnv(ctr, dryRunEnv, "true")
	if target.ref != "" {
		setEnv(ctr, referencesEnv, target.ref)
	}
	if target.digest != "" {
		setEnv(ctr, planDigestEnv, target.digest)
	}
	return job, nil
}

// generateName keeps the generated Job name within the 63 characters a
// label value may have (the Job's name labels its pods): the API server
// appends 5 random characters.
func generateName(cronJob, trigger string) string {
	suffix := "-" + trigger + "-"
	prefix := cronJob
	if max := 63 - 5 - len(suffix); len(prefix) > max {
		prefix = strings.TrimRight(prefix[:max], "-.")
	}
	return prefix + suffix
}

// runContainer is the index of the container that runs urunner: the one
// named urunner, or the only one; -1 for none.
func runContainer(cs []corev1.Container) int {
	for i := range cs {
		if cs[i].Name == runContainerName {
			return i
		}
	}
	if len(cs) == 1 {
		return 0
	}
	return -1
}

// follow prints the log of each pod the Job runs, in turn (a Job with a
// backoffLimit may retry), until the Job has finished, and returns the
// exit code of the last run: 0 for a Job that completed, the last pod's
// code (or 1 without one) for a Job that failed.
func (c *cli) follow(ctx context.Context, job *batchv1.Job, out io.Writer) (int, error) {
	sel, err := metav1.LabelSelectorAsSelector(job.Spec.Selector)
	if err != nil {
		return 0, fmt.Errorf("Job %s: selector: %w", job.Name, err)
	}
	followed := map[string]bool{}
	code := -1
	for {
		pod, finished, err := c.nextPod(ctx, job, sel, followed)
		if err != nil {
			return 0, err
		}
		if pod == nil {
			return exitOf(finished, code), nil
		}
		followed[pod.Name] = true
		c.copyLog(ctx, pod, out)
		if code, err = c.waitTerminated(ctx, pod); err != nil {
			return 0, err
		}
	}
}

// exitOf is the exit code of a finished Job whose last pod exited code
// (-1 when none was seen to).
func exitOf(j *batchv1.Job, code int) int {
	if finishedAs(j) == batchv1.JobComplete {
		return 0
	}
	if code > 0 {
		return code
	}
	return 1
}

// finishedAs returns JobComplete or JobFailed once the Job controller has
// judged j, "" before.
func finishedAs(j *batchv1.Job) batchv1.JobConditionType {
	for _, cond := range j.Status.Conditions {
		if (cond.Type == batchv1.JobComplete || cond.Type == batchv1.JobFailed) && cond.Status == corev1.ConditionTrue {
			return cond.Type
		}
	}
	return ""
}

// nextPod waits, up to the --timeout, for a pod of the Job not yet
// followed whose urunner container has started, and returns it; or, once
// the Job has finished and no such pod is left, nil and the Job. While it
// waits it says why the pod is not running, each time that changes.
func (c *cli) nextPod(ctx context.Context, job *batchv1.Job, sel labels.Selector, followed map[string]bool) (*corev1.Pod, *batchv1.Job, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	said := ""
	for {
		j, err := c.cs.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil, nil, fmt.Errorf("Job %s/%s was deleted", job.Namespace, job.Name)
		case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
			return nil, nil, fmt.Errorf("read Job %s/%s: %w", job.Namespace, job.Name, err)
		}
		if err == nil {
			pods, err := c.cs.CoreV1().Pods(job.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
			if err != nil {
				return nil, nil, fmt.Errorf("list the pods of Job %s: %w", job.Name, err)
			}
			pending := ""
			for _, p := range oldestFirst(pods.Items) {
				if followed[p.Name] {
					continue
				}
				if started(&p) {
					return &p, nil, nil
				}
				if pending == "" {
					pending = "pod " + p.Name + ": " + waitingReason(&p)
				}
			}
			if finishedAs(j) != "" {
				return nil, j, nil
			}
			if pending != "" && pending != said {
				fmt.Fprintln(c.err, pending)
				said = pending
			}
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded && said != "" {
				return nil, nil, fmt.Errorf("Job %s: no pod started within %s; last: %s", job.Name, c.timeout, said)
			}
			if ctx.Err() == context.DeadlineExceeded {
				return nil, nil, fmt.Errorf("Job %s: no pod started within %s (last error: %v)", job.Name, c.timeout, err)
			}
			return nil, nil, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// oldestFirst orders pods as the Job created them: retries follow in turn.
func oldestFirst(pods []corev1.Pod) []corev1.Pod {
	slices.SortFunc(pods, func(a, b corev1.Pod) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	return pods
}

// runStatus is the status of the pod's urunner container, nil before the
// kubelet reports one.
func runStatus(p *corev1.Pod) *corev1.ContainerStatus {
	i := runContainer(p.Spec.Containers)
	if i < 0 {
		return nil
	}
	for k := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[k].Name == p.Spec.Containers[i].Name {
			return &p.Status.ContainerStatuses[k]
		}
	}
	return nil
}

// started reports whether the pod's urunner container runs or has run:
// its log can be read.
func started(p *corev1.Pod) bool {
	s := runStatus(p)
	return s != nil && (s.State.Running != nil || s.State.Terminated != nil)
}

// waitingReason says why a pod is not running yet, as kubectl get pods
// would: not scheduled, or its container waiting (ImagePullBackOff, …).
func waitingReason(p *corev1.Pod) string {
	if s := runStatus(p); s != nil && s.State.Waiting != nil {
		return join(string(p.Status.Phase), s.State.Waiting.Reason, s.State.Waiting.Message)
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse {
			return join(string(p.Status.Phase), cond.Reason, cond.Message)
		}
	}
	if p.Spec.NodeName == "" {
		return join(string(p.Status.Phase), "not scheduled yet", "")
	}
	return join(string(p.Status.Phase), "", "")
}

func join(phase, reason, message string) string {
	if phase == "" {
		phase = "Pending"
	}
	switch {
	case reason != "" && message != "":
		return phase + " (" + reason + ": " + message + ")"
	case reason != "":
		return phase + " (" + reason + ")"
	}
	return phase
}

// copyLog prints the container's log as it comes, until the container
// ends. A log that cannot be read is a warning: the run's end and exit
// code still tell what happened.
func (c *cli) copyLog(ctx context.Context, pod *corev1.Pod, out io.Writer) {
	name := pod.Spec.Containers[runContainer(pod.Spec.Containers)].Name
	rc, err := c.logs.Stream(ctx, pod.Namespace, pod.Name, name)
	if err != nil {
		fmt.Fprintf(c.err, "warning: cannot read the log of pod %s: %v\n", pod.Name, err)
		return
	}
	defer rc.Close()
	if _, err := io.Copy(out, rc); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(c.err, "warning: the log of pod %s broke off: %v\n", pod.Name, err)
	}
}

// waitTerminated waits for the pod's urunner container to end (its log
// can end a little before the kubelet reports it) and returns its exit
// code; -1 when the pod is gone.
func (c *cli) waitTerminated(ctx context.Context, pod *corev1.Pod) (int, error) {
	warned := false
	began := time.Now()
	for {
		p, err := c.cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return -1, nil
		case err == nil:
			if s := runStatus(p); s != nil && s.State.Terminated != nil {
				return int(s.State.Terminated.ExitCode), nil
			}
		}
		if !warned && time.Since(began) > 10*time.Second {
			fmt.Fprintf(c.err, "the log of pod %s ended while its container runs: waiting for it to end\n", pod.Name)
			warned = true
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}
