package webhook

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func cronJob() *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "urunner", Namespace: "urunner", UID: "cj-uid"},
		Spec: batchv1.CronJobSpec{
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "urunner"}, Annotations: map[string]string{"team": "platform"}},
				Spec: batchv1.JobSpec{
					BackoffLimit: ptr.To[int32](0),
					Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
						{Name: "sidecar"},
						{Name: "urunner", Env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: ReferencesEnv, Value: "stale"}}},
					}}},
				},
			},
		},
	}
}

// The Job is the one kubectl create job --from=cronjob makes, plus the
// references in the urunner container's environment and annotations.
func TestJobFromCronJobIsKubectls(t *testing.T) {
	cj := cronJob()
	job, err := jobFromCronJob(cj, "urunner-push-1", []string{"r.example.com/a:1", "r.example.com/b:2"})
	if err != nil {
		t.Fatal(err)
	}
	want := batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "urunner-push-1", Namespace: "urunner",
			Labels: map[string]string{"app": "urunner"},
			Annotations: map[string]string{
				"cronjob.kubernetes.io/instantiate": "manual", "team": "platform",
				TriggerAnnotation: "push", ReferencesAnnotation: "r.example.com/a:1,r.example.com/b:2",
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "urunner", UID: "cj-uid", Controller: ptr.To(true)}},
		},
		Spec: *cj.Spec.JobTemplate.Spec.DeepCopy(),
	}
	want.Spec.Template.Spec.Containers[1].Env = []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: ReferencesEnv, Value: "r.example.com/a:1,r.example.com/b:2"}}
	if diff := cmp.Diff(want, *job); diff != "" {
		t.Errorf("job (-want +got):\n%s", diff)
	}
	if got := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[1].Env[1].Value; got != "stale" {
		t.Errorf("the CronJob's template was changed: %q", got)
	}

	full, err := jobFromCronJob(cj, "urunner-push-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if env := full.Spec.Template.Spec.Containers[1].Env; len(env) != 1 || env[0].Name != "A" {
		t.Errorf("a full run's environment %v, want A only", env)
	}
}

func TestJobFromCronJobWithoutTheContainer(t *testing.T) {
	cj := cronJob()
	cj.Spec.JobTemplate.Spec.Template.Spec.Containers[1].Name = "other"
	if _, err := jobFromCronJob(cj, "x", nil); err == nil || !strings.Contains(err.Error(), "CronJob urunner/urunner") {
		t.Errorf("error %v, want one naming the CronJob", err)
	}
}

// Job names stay within the 63 characters their pods' job-name label
// allows, and two runs within a second get different names.
func TestJobNamesAreShortAndUnique(t *testing.T) {
	c := &cronRuns{}
	long := strings.Repeat("u", 52)
	a, b := c.jobName(long), c.jobName(long)
	if a == b || len(a) > 63 || len(b) > 63 || !strings.Contains(a, "-push-") {
		t.Errorf("names %q and %q", a, b)
	}
}
