package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/urunner/urunner/webhook"
)

func TestWorkloadArgumentsReadAsKubectlReadsThem(t *testing.T) {
	for _, tc := range []struct {
		arg, kind, name, err string
	}{
		{arg: "deploy/web", kind: "Deployment", name: "web"},
		{arg: "deployment/web", kind: "Deployment", name: "web"},
		{arg: "deployments.apps/web", kind: "Deployment", name: "web"},
		{arg: "Deployment/web", kind: "Deployment", name: "web"},
		{arg: "sts/db", kind: "StatefulSet", name: "db"},
		{arg: "statefulset.apps/db", kind: "StatefulSet", name: "db"},
		{arg: "ds/agent", kind: "DaemonSet", name: "agent"},
		{arg: "daemonsets/agent", kind: "DaemonSet", name: "agent"},
		{arg: "web", err: `why: want KIND/NAME (deploy/web, sts/db, ds/agent), got "web"`},
		{arg: "deploy/", err: `why: want KIND/NAME (deploy/web, sts/db, ds/agent), got "deploy/"`},
		{arg: "shop/deploy/web", err: `why: want KIND/NAME (deploy/web, sts/db, ds/agent), got "shop/deploy/web"`},
		{arg: "cronjob/urunner", err: `why: kind "cronjob": urunner handles deploy, sts, ds and rollout (Deployment, StatefulSet, DaemonSet, Rollout)`},
	} {
		kind, name, err := parseWorkload(tc.arg)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if kind != tc.kind || name != tc.name || gotErr != tc.err {
			t.Errorf("parseWorkload(%q) = %q, %q, %q; want %q, %q, %q", tc.arg, kind, name, gotErr, tc.kind, tc.name, tc.err)
		}
	}
}

// --release names the CronJob as the chart's urunner.fullname does.
func TestReleaseNamesTheCronJobAsTheChartDoes(t *testing.T) {
	for release, want := range map[string]string{
		"urunner":               "urunner",
		"urunner-staging":       "urunner-staging",
		"ops":                   "ops-urunner",
		strings.Repeat("a", 60): strings.Repeat("a", 60) + "-ur",
		strings.Repeat("a", 62): strings.Repeat("a", 62),
	} {
		if got := cronJobOf(release); got != want {
			t.Errorf("cronJobOf(%q) = %q, want %q", release, got, want)
		}
	}
}

func TestAJobFromTheCronJobIsWhatKubectlCreateJobMakes(t *testing.T) {
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "urunner", Namespace: "urunner", UID: "cj-uid"},
		Spec: batchv1.CronJobSpec{Schedule: "*/5 * * * *", JobTemplate: batchv1.JobTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/name": "urunner"}, Annotations: map[string]string{"team": "ops"}},
			Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "urunner", Image: "ghcr.io/urunner/urunner:v1", Env: []corev1.EnvVar{
					{Name: "URUNNER_CONF_DRY_RUN", Value: "false"}, {Name: "URUNNER_CONF_EVENTS", Value: "true"},
					// The chart's, from a schedule the CronJob no longer has.
					{Name: "URUNNER_CONF_SCHEDULE", Value: "0 * * * *"},
				}}},
			}}},
		}},
	}
	want := func(trigger string, env ...corev1.EnvVar) *batchv1.Job {
		j := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{
				GenerateName: "urunner-" + trigger + "-", Namespace: "urunner",
				Labels:      map[string]string{"app.kubernetes.io/name": "urunner"},
				Annotations: map[string]string{"cronjob.kubernetes.io/instantiate": "manual", "team": "ops", webhook.TriggerAnnotation: trigger},
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: "batch/v1", Kind: "CronJob", Name: "urunner", UID: "cj-uid", Controller: ptr.To(true),
				}},
			},
			Spec: *cj.Spec.JobTemplate.Spec.DeepCopy(),
		}
		j.Spec.Template.Spec.Containers[0].Env = env
		return j
	}
	env := func(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }
	events, schedule := env("URUNNER_CONF_EVENTS", "true"), env("URUNNER_CONF_SCHEDULE", "*/5 * * * *")
	const web = "registry.example.com/shop/web:latest"
	digest := "sha256:" + strings.Repeat("7c", 32)
	for _, tc := range []struct {
		name    string
		trigger string
		dryRun  bool
		target  planTarget
		want    *batchv1.Job
	}{
		{"run: the CronJob's schedule", "run", false, planTarget{},
			want("run", env("URUNNER_CONF_DRY_RUN", "false"), events, schedule)},
		{"plan: a dry run", "plan", true, planTarget{},
			want("plan", events, schedule, env("URUNNER_CONF_DRY_RUN", "true"))},
		{"plan IMAGE: that reference alone", "plan", true, planTarget{ref: web},
			want("plan", events, schedule, env("URUNNER_CONF_DRY_RUN", "true"), env("URUNNER_CONF_REFERENCES", web))},
		{"plan IMAGE@DIGEST: the digest as just pushed", "plan", true, planTarget{ref: web, digest: digest},
			want("plan", events, schedule, env("URUNNER_CONF_DRY_RUN", "true"), env("URUNNER_CONF_REFERENCES", web), env("URUNNER_CONF_PLAN_DIGEST", digest))},
	} {
		got, err := jobFromCronJob(cj, tc.trigger, tc.dryRun, tc.target)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: Job (-want +got):\n%s", tc.name, diff)
		}
	}
	if cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Env[0].Value != "false" || len(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Env) != 3 {
		t.Error("building the Jobs changed the CronJob")
	}

	// The CronJob's own values of what a plan sets are replaced, and a
	// stray plan digest never reaches a run or a plan of every reference.
	ctr := &cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
	ctr.Env = []corev1.EnvVar{env("URUNNER_CONF_REFERENCES", "registry.example.com/shop/other:v1"), env("URUNNER_CONF_PLAN_DIGEST", digest)}
	cj.Spec.TimeZone = ptr.To("Europe/Rome")
	zoned := env("URUNNER_CONF_SCHEDULE", "CRON_TZ=Europe/Rome */5 * * * *")
	for _, tc := range []struct {
		name    string
		trigger string
		dryRun  bool
		target  planTarget
		env     []corev1.EnvVar
	}{
		{"run in a time zone", "run", false, planTarget{}, []corev1.EnvVar{env("URUNNER_CONF_REFERENCES", "registry.example.com/shop/other:v1"), zoned}},
		{"plan in a time zone", "plan", true, planTarget{}, []corev1.EnvVar{env("URUNNER_CONF_REFERENCES", "registry.example.com/shop/other:v1"), zoned, env("URUNNER_CONF_DRY_RUN", "true")}},
		{"plan IMAGE replaces the CronJob's references", "plan", true, planTarget{ref: web}, []corev1.EnvVar{zoned, env("URUNNER_CONF_DRY_RUN", "true"), env("URUNNER_CONF_REFERENCES", web)}},
	} {
		got, err := jobFromCronJob(cj, tc.trigger, tc.dryRun, tc.target)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.env, got.Spec.Template.Spec.Containers[0].Env); diff != "" {
			t.Errorf("%s: env (-want +got):\n%s", tc.name, diff)
		}
	}

	cj.Spec.JobTemplate.Spec.Template.Spec.Containers = append(cj.Spec.JobTemplate.Spec.Template.Spec.Containers, corev1.Container{Name: "sidecar"})
	cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Name = "main"
	if _, err := jobFromCronJob(cj, "plan", true, planTarget{}); err == nil || err.Error() != "CronJob urunner/urunner: its job template has no container named urunner and more than one container" {
		t.Errorf("plan from a CronJob without an urunner container: %v", err)
	}
	if run, err := jobFromCronJob(cj, "run", false, planTarget{}); err != nil || len(run.Spec.Template.Spec.Containers[0].Env) != 2 {
		t.Errorf("run from a CronJob without an urunner container: %v, want the CronJob's Job as it is", err)
	}
}

// plan's argument is an image as the pods name it, canonical as the run
// reads URUNNER_CONF_REFERENCES, with an optional digest as if pushed.
func TestPlanTakesAnImageAndADigest(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		arg  string
		want planTarget
	}{
		{"registry.example.com/shop/web:v2", planTarget{ref: "registry.example.com/shop/web:v2"}},
		{"registry.example.com:5000/shop/web", planTarget{ref: "registry.example.com:5000/shop/web:latest"}},
		{"nginx", planTarget{ref: "docker.io/library/nginx:latest"}},
		{"registry.example.com/shop/web:v2@" + digest, planTarget{ref: "registry.example.com/shop/web:v2", digest: digest}},
		{"registry.example.com/shop/web@" + digest, planTarget{ref: "registry.example.com/shop/web:latest", digest: digest}},
	} {
		got, err := parsePlanTarget(tc.arg)
		if err != nil || got != tc.want {
			t.Errorf("parsePlanTarget(%q) = %+v, %v; want %+v", tc.arg, got, err, tc.want)
		}
	}
}

// Generated Job names stay label values (63 characters) once the API
// server adds its 5 characters.
func TestJobNamesFitALabelValue(t *testing.T) {
	if got := generateName(strings.Repeat("x", 63), "plan"); len(got)+5 > 63 || !strings.HasSuffix(got, "-plan-") {
		t.Errorf("generateName of a 63-character CronJob = %q (%d characters)", got, len(got))
	}
	if got := generateName("urunner", "run"); got != "urunner-run-" {
		t.Errorf("generateName = %q, want urunner-run-", got)
	}
}

// Mistakes on the command line exit 2 before anything is contacted (no
// kubeconfig is needed to see them).
func TestCommandLineMistakesExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lift"}, "lift takes one quarantined digest: lift sha256:… (or its first 12 hex characters)"},
		{[]string{"lift", "sha256:333"}, `lift: "sha256:333" is not a digest nor at least 12 of its lowercase hex characters`},
		{[]string{"stat"}, `unknown command "stat" (want status, plan, run, why, lift, forget-ring or version)`},
		{[]string{"forget-ring", "registry.example.com/shop/web:latest"}, "forget-ring takes a reference and a ring: forget-ring registry/repository:tag 0"},
		{[]string{"why"}, "why takes one workload: why deploy/NAME, sts/NAME or ds/NAME"},
		{[]string{"status", "extra"}, `status takes no argument, got "extra"`},
		{[]string{"run", "registry.example.com/shop/web:latest"}, `run takes no argument, got "registry.example.com/shop/web:latest"`},
		{[]string{"plan", "registry.example.com/shop/web:latest", "registry.example.com/shop/api:latest"},
			`plan takes at most one image: plan [registry/repository:tag[@sha256:DIGEST]], got "registry.example.com/shop/web:latest registry.example.com/shop/api:latest"`},
		{[]string{"plan", "registry.example.com/shop/web:latest@sha256:7c6d5e82b8fc"},
			`plan: the digest of "registry.example.com/shop/web:latest@sha256:7c6d5e82b8fc": want sha256: and 64 lowercase hex characters, got "sha256:7c6d5e82b8fc"`},
		{[]string{"plan", "registry.example.com/shop/web@sha256:" + strings.Repeat("AB", 32)},
			`plan: the digest of "registry.example.com/shop/web@sha256:` + strings.Repeat("AB", 32) + `": want sha256: and 64 lowercase hex characters, got "sha256:` + strings.Repeat("AB", 32) + `"`},
		{[]string{"plan", "registry.example.com/shop/web:"}, `plan: "registry.example.com/shop/web:" is not an image registry/repository:tag[@sha256:DIGEST]`},
		{[]string{"plan", "ocidir://images/web"}, `plan: "ocidir://images/web" is not an image registry/repository:tag[@sha256:DIGEST]`},
		{[]string{"run", "-o", "json"}, "--output is for status and why, not run"},
		{[]string{"status", "--timeout", "1m"}, "--timeout is for plan and run, not status"},
		{[]string{"status", "-w", "shop"}, "--workload-namespace is for why, not status"},
		{[]string{"status", "-o", "yaml"}, `--output: want json, got "yaml"`},
		{[]string{"plan", "--timeout", "0s"}, "--timeout: want a positive duration, got 0s"},
		{[]string{"status", "--release", "a", "--cronjob", "b"}, "--release and --cronjob both name the CronJob: give one"},
		{[]string{"status", "--no-such-flag"}, "unknown flag: --no-such-flag"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(t.Context(), append(tc.args, "--kubeconfig", "/nonexistent"), &stdout, &stderr, hooks{})
		if code != exitUsage || !strings.Contains(stderr.String(), "kubectl urunner: "+tc.want+"\n") {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 saying %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

func TestHelpAndVersionNeedNoCluster(t *testing.T) {
	for _, args := range [][]string{{}, {"--help"}, {"-h"}, {"status", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := Main(t.Context(), args, &stdout, &stderr, hooks{}); code != 0 || !strings.Contains(stdout.String(), "kubectl urunner why KIND/NAME") || !strings.Contains(stdout.String(), "--state-configmap") {
			t.Errorf("%q: exit %d, stdout %q", args, code, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"version"}, &stdout, &stderr, hooks{}); code != 0 || stdout.String() != "kubectl-urunner dev\n" {
		t.Errorf("version: exit %d, %q", code, stdout.String())
	}
}

// The annotations and variables the plugin shares with urunner and its
// receiver are theirs.
func TestNamesAgreeWithUrunners(t *testing.T) {
	if triggerAnnotation != webhook.TriggerAnnotation {
		t.Errorf("trigger annotation %q, the receiver's %q", triggerAnnotation, webhook.TriggerAnnotation)
	}
}

func TestWhatIsWatchedFollowsTheCronJobsVariables(t *testing.T) {
	yes, no := true, false
	labelMode := scope{known: true}
	listed := scope{known: true, namespaces: []string{"shop", "pay"}}
	stsOnly := scope{known: true, kinds: []string{"StatefulSet"}}
	for _, tc := range []struct {
		name      string
		sc        scope
		optedOut  bool
		nsEnabled *bool
		want      watchedDoc
	}{
		{"labelled namespace", labelMode, false, &yes, watchedDoc{&yes, "namespace shop is labelled urunner=enable"}},
		{"unlabelled namespace", labelMode, false, &no, watchedDoc{&no, "namespace shop is not labelled urunner=enable"}},
		{"namespace not readable", labelMode, false, nil, watchedDoc{nil, "namespace shop could not be read: is it labelled urunner=enable?"}},
		{"listed namespace, no label needed", listed, false, &no, watchedDoc{&yes, "namespace shop is listed in URUNNER_CONF_NAMESPACES"}},
		{"namespace not listed, label ignored", scope{known: true, namespaces: []string{"pay"}}, false, &yes, watchedDoc{&no, "namespace shop is not in URUNNER_CONF_NAMESPACES (pay)"}},
		{"opted out wins", listed, true, &yes, watchedDoc{&no, "the workload is labelled urunner=disable"}},
		{"kind not watched", stsOnly, false, &yes, watchedDoc{&no, "Deployment is not in URUNNER_CONF_WORKLOAD_KINDS (StatefulSet)"}},
		{"CronJob not read", scope{}, false, &yes, watchedDoc{nil, "urunner's CronJob could not be read (is it in namespaced mode?); namespace shop is labelled urunner=enable"}},
	} {
		if diff := cmp.Diff(tc.want, tc.sc.watched("Deployment", "shop", tc.optedOut, tc.nsEnabled)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestTheScopeIsReadFromTheUrunnerContainer(t *testing.T) {
	cj := &batchv1.CronJob{Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "urunner", Env: []corev1.EnvVar{
			{Name: "URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH", Value: "http://index.docker.io"},
			{Name: "URUNNER_CONF_NAMESPACES", Value: "a"},
			{Name: "URUNNER_CONF_NAMESPACES", Value: " shop , pay "}, // extraEnv: the last one wins
			{Name: "URUNNER_CONF_STATE_CONFIGMAP", Value: "mine"},
		}}},
	}}}}}}
	got := scopeOf(cj)
	if diff := cmp.Diff(scope{known: true, namespaces: []string{"shop", "pay"}, registry: "docker.io"}, got, cmp.AllowUnexported(scope{})); diff != "" {
		t.Errorf("scope (-want +got):\n%s", diff)
	}
	if got := stateConfigMapOf(cj); got != "mine" {
		t.Errorf("state ConfigMap %q, want mine", got)
	}
	c := &cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
	c.Env = append(c.Env, corev1.EnvVar{Name: "URUNNER_CONF_REGISTRIES_FILE", Value: "/etc/urunner/registries.yaml"})
	if got := scopeOf(cj); got.registry != "" {
		t.Errorf("with a registries file, the watched registry is %q, want unknown", got.registry)
	}
}
