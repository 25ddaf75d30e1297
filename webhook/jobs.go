package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/urunner/urunner/kube/apiclient"
)

// Annotations and the variable a pushed run carries.
const (
	// ReferencesEnv is the urunner container's variable naming the
	// references a run looks up, comma-separated; the run leaves all other
	// state as it is.
	ReferencesEnv = "URUNNER_CONF_REFERENCES"
	// ReferencesAnnotation repeats them on the Job, for kubectl.
	ReferencesAnnotation = "urunner.io/references"
	// TriggerAnnotation says what started the Job: "push".
	TriggerAnnotation = "urunner.io/trigger"
	// instantiateAnnotation is what kubectl create job --from=cronjob sets.
	instantiateAnnotation = "cronjob.kubernetes.io/instantiate"
	// containerName is the chart's container of the run.
	containerName = "urunner"
)

// createdGrace is how long a Job this receiver created counts as a run in
// progress before the informer has shown it.
const createdGrace = time.Minute

// cronRuns starts runs as Jobs of the CronJob and tells whether one is in
// progress, from an informer's view of the namespace's Jobs.
type cronRuns struct {
	cs        *apiclient.Clients
	namespace string
	cronJob   string
	jobs      batchlisters.JobNamespaceLister
	log       *slog.Logger
	suspended *suspension

	mu      sync.Mutex
	created map[string]time.Time // Jobs created here, until the informer has them
	lastID  int64
}

// Active reports whether a Job of the CronJob (scheduled, manual or
// pushed) has not finished, or one this receiver created is not yet in
// the informer's cache.
func (c *cronRuns) Active() bool {
	all, err := c.jobs.List(labels.Everything())
	if err != nil {
		// A cache list does not fail; should it, assume a run rather than
		// risk two.
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	active := false
	for _, j := range all {
		delete(c.created, j.Name)
		if ownedBy(j, c.cronJob) && !finished(j) {
			active = true
		}
	}
	for name, at := range c.created {
		if time.Since(at) > createdGrace {
			delete(c.created, name)
			continue
		}
		active = true
	}
	return active
}

// ownedBy reports whether the CronJob named cronJob controls j, as it
// controls the Jobs it schedules and kubectl create job --from makes.
func ownedBy(j *batchv1.Job, cronJob string) bool {
	ref := metav1.GetControllerOf(j)
	return ref != nil && ref.Kind == "CronJob" && ref.Name == cronJob
}

// finished reports whether j has its Complete or Failed condition, as the
// CronJob controller judges it.
func finished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// Start creates a Job from the CronJob for refs (nil: a full run) and adds
// it to the CronJob's active list, so that with concurrencyPolicy Forbid
// the next scheduled run waits for it.
func (c *cronRuns) Start(ctx context.Context, refs []string) (string, error) {
	cj, err := c.cs.CronJobs(c.namespace).Get(ctx, c.cronJob, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("get CronJob %s/%s: %w", c.namespace, c.cronJob, err)
	}
	// Read here, just before the Job would be created, whatever the
	// poll last saw: suspending urunner stops pushed runs too.
	c.suspended.set(ptr.Deref(cj.Spec.Suspend, false))
	if ptr.Deref(cj.Spec.Suspend, false) {
		return "", errSuspended
	}
	job, err := jobFromCronJob(cj, c.jobName(cj.Name), refs)
	if err != nil {
		return "", err
	}
	created, err := c.cs.Jobs(c.namespace).Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create Job %s/%s from CronJob %s: %w", c.namespace, job.Name, cj.Name, err)
	}
	c.mu.Lock()
	c.created[created.Name] = time.Now()
	c.mu.Unlock()
	if err := c.adopt(ctx, created); err != nil {
		// The Job runs all the same; only a scheduled run may now overlap it.
		c.log.Warn("could not add the Job to the CronJob's active runs: a scheduled run may overlap it", "job", created.Name, "err", err)
	}
	return created.Name, nil
}

// jobName returns "<cronjob>-push-<unix seconds>", unique even for two
// runs started within a second, and within the 63 characters a Job's
// name may have (it becomes a label value of its pods).
func (c *cronRuns) jobName(cronJob string) string {
	c.mu.Lock()
	id := max(time.Now().Unix(), c.lastID+1)
	c.lastID = id
	c.mu.Unlock()
	suffix := "-push-" + strconv.FormatInt(id, 10)
	prefix := cronJob
	if len(prefix) > 63-len(suffix) {
		prefix = strings.TrimRight(prefix[:63-len(suffix)], "-.")
	}
	return prefix + suffix
}

// adopt adds job to the CronJob's status.active. The CronJob controller
// keeps an active Job it controls there until it finishes, and with
// concurrencyPolicy Forbid starts no scheduled run meanwhile; the run it
// skipped starts when the Job finishes, within startingDeadlineSeconds.
// Without this, the controller would only report the Job as unexpected.
func (c *cronRuns) adopt(ctx context.Context, job *batchv1.Job) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cj, err := c.cs.CronJobs(c.namespace).Get(ctx, c.cronJob, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, a := range cj.Status.Active {
			if a.UID == job.UID {
				return nil
			}
		}
		cj.Status.Active = append(cj.Status.Active, corev1.ObjectReference{
			APIVersion:      "batch/v1",
			Kind:            "Job",
			Namespace:       job.Namespace,
			Name:            job.Name,
			UID:             job.UID,
			ResourceVersion: job.ResourceVersion,
		})
		_, err = c.cs.CronJobs(c.namespace).UpdateStatus(ctx, cj, metav1.UpdateOptions{})
		return err
	})
}

// jobFromCronJob builds the Job `kubectl create job --from=cronjob/NAME`
// builds (same annotations, labels, controller reference without
// blockOwnerDeletion, and spec), with the references in the urunner
// container's environment. refs nil makes a full run.
func jobFromCronJob(cj *batchv1.CronJob, name string, refs []string) (*batchv1.Job, error) {
	annotations := map[string]string{instantiateAnnotation: "manual"}
	for k, v := range cj.Spec.JobTemplate.Annotations {
		annotations[k] = v
	}
	annotations[TriggerAnnotation] = "push"
	if refs == nil {
		annotations[ReferencesAnnotation] = "*"
	} else {
		annotations[ReferencesAnnotation] = strings.Join(refs, ",")
	}
	job := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   cj.Namespace,
			Annotations: annotations,
			Labels:      cj.Spec.JobTemplate.Labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1",
				Kind:       "CronJob",
				Name:       cj.Name,
				UID:        cj.UID,
				Controller: ptr.To(true),
			}},
		},
		Spec: *cj.Spec.JobTemplate.Spec.DeepCopy(),
	}
	c, err := runContainer(&job.Spec.Template.Spec)
	if err != nil {
		return nil, fmt.Errorf("CronJob %s/%s: %w", cj.Namespace, cj.Name, err)
	}
	env := c.Env[:0:0]
	for _, e := range c.Env {
		if e.Name != ReferencesEnv {
			env = append(env, e)
		}
	}
	if refs != nil {
		env = append(env, corev1.EnvVar{Name: ReferencesEnv, Value: strings.Join(refs, ",")})
	}
	c.Env = env
	return job, nil
}

// runContainer returns the container that runs urunner: the one named
// urunner, or the only one.
func runContainer(spec *corev1.PodSpec) (*corev1.Container, error) {
	for i := range spec.Containers {
		if spec.Containers[i].Name == containerName {
			return &spec.Containers[i], nil
		}
	}
	if len(spec.Containers) == 1 {
		return &spec.Containers[0], nil
	}
	return nil, errors.New("its Job template has no container named " + containerName + " and more than one container")
}

// suspendPoll is how often the receiver reads the CronJob's spec.suspend
// for its readiness answer and its notifications' answers.
const suspendPoll = 5 * time.Second

// suspension follows the CronJob's spec.suspend and logs each change once.
type suspension struct {
	on  atomic.Bool
	log *slog.Logger
}

func (s *suspension) get() bool { return s != nil && s.on.Load() }

func (s *suspension) set(on bool) {
	if s == nil || s.on.Swap(on) == on {
		return
	}
	if on {
		s.log.Warn("the CronJob is suspended: pushed runs are not started; their references are dropped, and the next scheduled run after it is resumed catches up")
	} else {
		s.log.Info("the CronJob is resumed: pushed runs start again")
	}
}

// watch reads the CronJob every suspendPoll until ctx ends. A failed read
// keeps the last state: Start reads it again before any Job.
func (s *suspension) watch(ctx context.Context, cs *apiclient.Clients, namespace, name string) {
	tick := time.NewTicker(suspendPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		getCtx, cancel := context.WithTimeout(ctx, suspendPoll)
		cj, err := cs.CronJobs(namespace).Get(getCtx, name, metav1.GetOptions{})
		cancel()
		if err != nil {
			s.log.Debug("could not read the CronJob's spec.suspend", "err", err)
			continue
		}
		s.set(ptr.Deref(cj.Spec.Suspend, false))
	}
}

// checkCronJob fails early, with a message naming it, when the CronJob
// is missing or not readable.
func checkCronJob(ctx context.Context, cs *apiclient.Clients, namespace, name string) (*batchv1.CronJob, error) {
	cj, err := cs.CronJobs(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("CronJob %s/%s not found (URUNNER_CONF_WEBHOOK_CRONJOB, URUNNER_CONF_WEBHOOK_NAMESPACE)", namespace, name)
	case err != nil:
		return nil, fmt.Errorf("get CronJob %s/%s: %w", namespace, name, err)
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		return nil, fmt.Errorf("CronJob %s/%s: concurrencyPolicy is %s; pushed runs need Forbid, so that scheduled ones wait for them", namespace, name, cj.Spec.ConcurrencyPolicy)
	}
	_, err = runContainer(&cj.Spec.JobTemplate.Spec.Template.Spec)
	if err != nil {
		return nil, fmt.Errorf("CronJob %s/%s: %w", namespace, name, err)
	}
	return cj, nil
}
