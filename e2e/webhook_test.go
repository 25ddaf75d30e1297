package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/webhook"
)

func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startReceiver runs the receiver as the chart's Deployment would run it:
// its container's environment as the kubelet would resolve it (Secret
// included), authenticated as the chart's webhook ServiceAccount, on addr
// instead of :8080. It is stopped by its PID when the test ends.
func startReceiver(t *testing.T, cs kubernetes.Interface, rel, relNS, addr string) *testground.LogBuffer {
	t.Helper()
	ctx := t.Context()
	d, err := cs.AppsV1().Deployments(relNS).Get(ctx, rel+"-webhook", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env, err := testground.ContainerEnv(ctx, cs, relNS, "receiver", d.Spec.Template.Spec, "webhook")
	if err != nil {
		t.Fatal(err)
	}
	saCfg, err := cluster.ServiceAccountConfig(ctx, relNS, rel+"-webhook")
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "webhook.kubeconfig")
	if err := testground.WriteKubeconfig(kc, saCfg); err != nil {
		t.Fatal(err)
	}
	env["URUNNER_CONF_KUBE_AUTH"] = "kubeconfig"
	env["URUNNER_CONF_WEBHOOK_LISTEN"] = addr
	cmd := exec.Command(urunnerBin, d.Spec.Template.Spec.Containers[0].Args...)
	cmd.Env = []string{"KUBECONFIG=" + kc, "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logs := &testground.LogBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("receiver exited with %v", err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("receiver did not stop within 15s of SIGTERM")
		}
		t.Logf("receiver log:\n%s", logs)
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return logs
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("receiver exited: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver not ready within 30s\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cronJobs returns the Jobs of the release's CronJob, oldest first, and
// whether each was pushed (started by the receiver).
func cronJobs(t *testing.T, cs kubernetes.Interface, ns, cronJob string) []batchv1.Job {
	t.Helper()
	list, err := cs.BatchV1().Jobs(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []batchv1.Job
	for _, j := range list.Items {
		if ref := metav1.GetControllerOf(&j); ref != nil && ref.Kind == "CronJob" && ref.Name == cronJob {
			out = append(out, j)
		}
	}
	slices.SortFunc(out, func(a, b batchv1.Job) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	return out
}

func pushed(j batchv1.Job) bool { return j.Annotations[webhook.TriggerAnnotation] == "push" }

// waitJobs polls until cond holds for the CronJob's Jobs.
func waitJobs(t *testing.T, cs kubernetes.Interface, ns, cronJob string, timeout time.Duration, what string, cond func([]batchv1.Job) bool) []batchv1.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		jobs := cronJobs(t, cs, ns, cronJob)
		if cond(jobs) {
			return jobs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; Jobs: %v", what, timeout, jobNames(jobs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func jobNames(jobs []batchv1.Job) []string {
	var names []string
	for _, j := range jobs {
		names = append(names, j.Name)
	}
	return names
}

// references returns what a Job's urunner container is told to look up.
func references(t *testing.T, j batchv1.Job) string {
	t.Helper()
	for _, c := range j.Spec.Template.Spec.Containers {
		if c.Name == "urunner" {
			for _, e := range c.Env {
				if e.Name == webhook.ReferencesEnv {
					return e.Value
				}
			}
			return ""
		}
	}
	t.Fatalf("Job %s has no urunner container", j.Name)
	return ""
}

// runJob is the kubelet's part for one Job of the CronJob: it runs the
// urunner binary with the environment the Job's pod would get (its
// ServiceAccount's token instead of the mounted one), reports the exit in
// the pod's status as the kubelet would, and waits for the real job
// controller to mark the Job finished. It returns urunner's output.
func runJob(t *testing.T, cs kubernetes.Interface, j batchv1.Job) string {
	t.Helper()
	ctx := t.Context()
	pod, err := testground.JobPod(ctx, cs, &j)
	if err != nil {
		t.Fatal(err)
	}
	env, err := testground.ContainerEnv(ctx, cs, j.Namespace, pod.Name, j.Spec.Template.Spec, "urunner")
	if err != nil {
		t.Fatal(err)
	}
	saCfg, err := cluster.ServiceAccountConfig(ctx, j.Namespace, j.Spec.Template.Spec.ServiceAccountName)
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "run.kubeconfig")
	if err := testground.WriteKubeconfig(kc, saCfg); err != nil {
		t.Fatal(err)
	}
	delete(env, "URUNNER_CONF_KUBE_AUTH")
	code, out := runAs(t, kc, env)
	if err := testground.FinishJobPod(ctx, cs, &j, int32(code)); err != nil {
		t.Fatal(err)
	}
	if _, err := testground.WaitJobFinished(ctx, cs, j.Namespace, j.Name, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return out
}

// A push to the real CNCF distribution registry reaches the receiver the
// chart deploys, which starts a Job from the CronJob carrying the pushed
// reference; the Job's run (emulated kubelet) restarts the workload; the
// registry's other notifications (blobs, urunner's own HEADs) start
// nothing; the receiver's ServiceAccount can do what that takes and no
// more.
func TestPushToARealRegistryRestartsTheWorkload(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cs := clientset(t)
	const rel, relNS = "urunner-push", "urunner-push"
	token := randomSecret(t)
	addr := freeAddr(t)

	d, err := testground.StartDistribution(ctx, testground.DistributionOptions{Endpoints: []testground.NotifyEndpoint{{
		Name: "urunner", URL: "http://" + addr + "/hooks/distribution",
		Headers: map[string][]string{"Authorization": {"Bearer " + token}},
		Timeout: 2 * time.Second, Threshold: 3, Backoff: 200 * time.Millisecond,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })

	out, err := helm(t, "install", rel, chartDir(), "-n", relNS, "--create-namespace", "--wait=false",
		"--set", "registry.host=http://"+d.Host,
		"--set", "schedule=0 0 1 1 *", // only pushed runs here (a suspended CronJob gets none)
		"--set", "webhook.enabled=true",
		"--set", "webhook.secrets.distributionToken="+token)
	if err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = helm(t, "uninstall", rel, "-n", relNS) })
	for _, want := range []string{
		"url: http://" + rel + "-webhook." + relNS + ".svc:80/hooks/distribution",
		`headers: {Authorization: ["Bearer <webhook.secrets.distributionToken>"]}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("NOTES do not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, token) {
		t.Error("NOTES print the secret")
	}
	logs := startReceiver(t, cs, rel, relNS, addr)

	app := "push-" + time.Now().Format("150405")
	if _, err := cs.CoreV1().Namespaces().Create(ctx, namespace(app, true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	image := d.Host + "/shop/web:latest"
	createDeployment(t, cs, app, "web", image)

	// First push: a run that records the digest (a baseline).
	if _, err := d.PushImage(ctx, "shop/web:latest", "v1"); err != nil {
		t.Fatal(err)
	}
	jobs := waitJobs(t, cs, relNS, rel, 20*time.Second, "a Job for the first push", func(j []batchv1.Job) bool { return len(j) == 1 })
	if got := references(t, jobs[0]); got != image {
		t.Errorf("first Job looks up %q, want %q", got, image)
	}
	if outRun := runJob(t, cs, jobs[0]); !strings.Contains(outRun, "run finished") {
		t.Fatalf("first run:\n%s", outRun)
	}

	// Second push: the run restarts the workload.
	p, err := d.PushImage(ctx, "shop/web:latest", "v2")
	if err != nil {
		t.Fatal(err)
	}
	jobs = waitJobs(t, cs, relNS, rel, 20*time.Second, "a Job for the second push", func(j []batchv1.Job) bool { return len(j) == 2 })
	j := jobs[1]
	t.Logf("push → Job %s created in %s", j.Name, j.CreationTimestamp.Sub(p.ManifestPut.Truncate(time.Second)))
	if got := references(t, j); got != image {
		t.Errorf("second Job looks up %q, want %q", got, image)
	}
	if diff := cmp.Diff(map[string]string{"cronjob.kubernetes.io/instantiate": "manual", webhook.TriggerAnnotation: "push", webhook.ReferencesAnnotation: image}, j.Annotations); diff != "" {
		t.Errorf("Job annotations (-want +got):\n%s", diff)
	}
	// The CronJob counts it as its own active run, as Forbid needs. The
	// receiver writes the CronJob's status right after creating the Job:
	// wait for it rather than race it.
	var active []corev1.ObjectReference
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		cj, err := cs.BatchV1().CronJobs(relNS).Get(ctx, rel, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		active = cj.Status.Active
		if slices.ContainsFunc(active, func(a corev1.ObjectReference) bool { return a.UID == j.UID }) || time.Now().After(deadline) {
			break
		}
	}
	if !slices.ContainsFunc(active, func(a corev1.ObjectReference) bool { return a.UID == j.UID }) {
		t.Errorf("CronJob active runs %v do not hold the pushed Job %s", active, j.Name)
	}
	outRun := runJob(t, cs, j)
	if !strings.Contains(outRun, "restarted") {
		t.Errorf("second run did not restart:\n%s", outRun)
	}
	dep, err := cs.AppsV1().Deployments(app).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Spec.Template.Annotations[kube.RestartedAtAnnotation] == "" {
		t.Error("the pushed run did not restart web")
	}
	// The real CronJob controller retires the finished run from its list.
	waitFor(t, 20*time.Second, "the CronJob's active list to empty", func() bool {
		cj, err := cs.BatchV1().CronJobs(relNS).Get(ctx, rel, metav1.GetOptions{})
		return err == nil && len(cj.Status.Active) == 0
	})
	// urunner's own HEADs were pull events, and the blob pushes events
	// too: none of them started a run.
	if jobs := cronJobs(t, cs, relNS, rel); len(jobs) != 2 {
		t.Errorf("Jobs %v, want the 2 pushed ones", jobNames(jobs))
	}
	if !strings.Contains(logs.String(), "push accepted") {
		t.Errorf("receiver log has no accepted push:\n%s", logs)
	}

	// A signature pushed for the running digest (cosign's tag): the
	// receiver queues its subject, and the run looks the subject's
	// reference up again.
	if _, err := d.PushImage(ctx, "shop/web:sha256-"+strings.TrimPrefix(p.Digest, "sha256:")+".sig", "signature"); err != nil {
		t.Fatal(err)
	}
	jobs = waitJobs(t, cs, relNS, rel, 20*time.Second, "a Job for the signature's push", func(j []batchv1.Job) bool { return len(j) == 3 })
	if got, want := references(t, jobs[2]), d.Host+"/shop/web@"+p.Digest; got != want {
		t.Errorf("the signature's Job looks up %q, want its subject %q", got, want)
	}
	if outRun := runJob(t, cs, jobs[2]); !strings.Contains(outRun, "its subject's reference is looked up again") || !strings.Contains(outRun, image) {
		t.Errorf("the signature's run did not look %s up again:\n%s", image, outRun)
	}

	// What `kubectl auth can-i --as` would answer for the receiver.
	saCfg, err := cluster.ServiceAccountConfig(ctx, relNS, rel+"-webhook")
	if err != nil {
		t.Fatal(err)
	}
	sa := kubernetes.NewForConfigOrDie(saCfg)
	for _, tc := range []struct {
		verb, resource, sub, ns, name string
		want                          bool
	}{
		{"get", "cronjobs", "", relNS, rel, true},
		{"update", "cronjobs", "status", relNS, rel, true},
		{"create", "jobs", "", relNS, "", true},
		{"list", "jobs", "", relNS, "", true},
		{"watch", "jobs", "", relNS, "", true},
		{"get", "cronjobs", "", relNS, "other", false},
		{"update", "cronjobs", "", relNS, rel, false},
		{"update", "cronjobs", "status", relNS, "other", false},
		{"delete", "jobs", "", relNS, "", false},
		{"update", "jobs", "", relNS, "", false},
		{"create", "jobs", "", app, "", false},
		{"list", "jobs", "", "", "", false},
		{"get", "secrets", "", relNS, "", false},
		{"create", "pods", "", relNS, "", false},
		{"patch", "deployments", "", app, "web", false},
	} {
		group := "batch"
		switch tc.resource {
		case "secrets", "pods":
			group = ""
		case "deployments":
			group = "apps"
		}
		ssar := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: tc.verb, Group: group, Resource: tc.resource, Subresource: tc.sub, Namespace: tc.ns, Name: tc.name,
			},
		}}
		got, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, ssar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != tc.want {
			t.Errorf("receiver can-i %s %s/%s -n %q %s = %v, want %v", tc.verb, tc.resource, tc.sub, tc.ns, tc.name, got.Status.Allowed, tc.want)
		}
	}
}

// Pushes never pile runs up: while the scheduled run is in progress the
// pushed references wait, as one batch; the one Job they then start is
// held by the CronJob as active, so the real CronJob controller skips its
// next scheduled run (concurrencyPolicy Forbid) until the pushed run
// ends, and starts it then. Unauthenticated notifications start nothing.
func TestPushedAndScheduledRunsNeverOverlap(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cs := clientset(t)
	const rel, relNS = "urunner-sched", "urunner-sched"
	key := randomSecret(t)
	addr := freeAddr(t)
	reg, err := testground.StartRegistry(testground.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	out, err := helm(t, "install", rel, chartDir(), "-n", relNS, "--create-namespace", "--wait=false",
		"--set", "registry.host=http://"+reg.Host,
		"--set", "schedule=* * * * *",
		"--set", "webhook.enabled=true",
		"--set", "webhook.debounce=300ms",
		"--set", "webhook.secrets.genericKey="+key)
	if err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = helm(t, "uninstall", rel, "-n", relNS) })
	startReceiver(t, cs, rel, relNS, addr)

	send := func(refs ...string) int {
		t.Helper()
		body := []byte(`{"references":["` + strings.Join(refs, `","`) + `"]}`)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/hooks/generic", bytes.NewReader(body))
		req.Header.Set("X-Urunner-Signature", webhook.Signature(key, time.Now(), body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// The first scheduled run; without a kubelet it stays in progress.
	jobs := waitJobs(t, cs, relNS, rel, 75*time.Second, "the first scheduled run", func(j []batchv1.Job) bool { return len(j) == 1 })
	scheduled := jobs[0]
	if pushed(scheduled) {
		t.Fatalf("Job %s was pushed, want the scheduled one", scheduled.Name)
	}

	a, b := reg.Host+"/shop/a:latest", reg.Host+"/shop/b:1.0"
	if code := send(a); code != http.StatusAccepted {
		t.Fatalf("signed push answered %d", code)
	}
	if code := send(b, a); code != http.StatusAccepted {
		t.Fatalf("signed push answered %d", code)
	}
	// Unsigned: refused, and nothing of it may reach the run.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/hooks/generic", strings.NewReader(`{"references":["`+reg.Host+`/shop/evil:latest"]}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned push: %v %v", resp, err)
	}
	// Several debounce windows pass: still no second Job.
	time.Sleep(1500 * time.Millisecond)
	if jobs := cronJobs(t, cs, relNS, rel); len(jobs) != 1 {
		t.Fatalf("a Job started while the scheduled run was in progress: %v", jobNames(jobs))
	}

	runJob(t, cs, scheduled)
	jobs = waitJobs(t, cs, relNS, rel, 20*time.Second, "the pushed run after the scheduled one", func(j []batchv1.Job) bool { return len(j) == 2 })
	push := jobs[1]
	if !pushed(push) {
		t.Fatalf("second Job %s is not the pushed one", push.Name)
	}
	if got, want := references(t, push), a+","+b; got != want {
		t.Errorf("pushed run looks up %q, want the union %q", got, want)
	}

	// The next minute passes with the pushed run in progress: the
	// controller starts no scheduled run, and says so.
	next := time.Now().Truncate(time.Minute).Add(time.Minute)
	waitFor(t, 90*time.Second, "a JobAlreadyActive event after the next scheduled time", func() bool {
		evs, err := cs.CoreV1().Events(relNS).List(ctx, metav1.ListOptions{FieldSelector: "reason=JobAlreadyActive"})
		if err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == rel && !eventTime(e.LastTimestamp.Time, e.EventTime.Time).Before(next) {
				return true
			}
		}
		return false
	})
	if jobs := cronJobs(t, cs, relNS, rel); len(jobs) != 2 {
		t.Fatalf("a scheduled run started during the pushed one: %v", jobNames(jobs))
	}

	// The pushed run ends; the skipped scheduled run starts now.
	runJob(t, cs, push)
	jobs = waitJobs(t, cs, relNS, rel, 30*time.Second, "the skipped scheduled run", func(j []batchv1.Job) bool { return len(j) == 3 })
	if pushed(jobs[2]) {
		t.Errorf("third Job %s is pushed, want the scheduled run the controller held back", jobs[2].Name)
	}
}

func eventTime(last, event time.Time) time.Time {
	if last.IsZero() {
		return event
	}
	return last
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waited %s for %s", timeout, what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// A suspended CronJob gets no pushed run: a push is answered 2xx (the
// registry's queue never stalls) and dropped with one log line; readiness
// stays 200 and says so; once resumed, a push starts a run again.
func TestASuspendedCronJobGetsNoPushedRun(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cs := clientset(t)
	const rel, relNS = "urunner-suspended", "urunner-suspended"
	token := randomSecret(t)
	addr := freeAddr(t)
	var mu sync.Mutex
	var codes []int
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The registry's notifications, relayed to the receiver, their
		// answers kept.
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+addr+r.URL.Path, r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		mu.Lock()
		codes = append(codes, resp.StatusCode)
		mu.Unlock()
		w.WriteHeader(resp.StatusCode)
	}))
	t.Cleanup(rec.Close)
	d, err := testground.StartDistribution(ctx, testground.DistributionOptions{Endpoints: []testground.NotifyEndpoint{{
		Name: "urunner", URL: rec.URL + "/hooks/distribution",
		Headers: map[string][]string{"Authorization": {"Bearer " + token}},
		Timeout: 2 * time.Second, Threshold: 3, Backoff: 200 * time.Millisecond, IgnoreActions: []string{"pull"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	out, err := helm(t, "install", rel, chartDir(), "-n", relNS, "--create-namespace", "--wait=false",
		"--set", "registry.host=http://"+d.Host, "--set", "suspend=true", "--set", "schedule=0 0 1 1 *",
		"--set", "webhook.enabled=true", "--set", "webhook.secrets.distributionToken="+token)
	if err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = helm(t, "uninstall", rel, "-n", relNS) })
	logs := startReceiver(t, cs, rel, relNS, addr)
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "suspended: pushed runs are not started") {
		t.Errorf("readyz while suspended: %d %s", resp.StatusCode, body)
	}

	if _, err := d.PushImage(ctx, "shop/web:latest", "v1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the push to be dropped", func() bool {
		return strings.Contains(logs.String(), "pushed references dropped: the CronJob is suspended")
	})
	mu.Lock()
	for _, c := range codes {
		if c/100 != 2 {
			t.Errorf("a notification was answered %d while suspended, want 2xx", c)
		}
	}
	mu.Unlock()
	if jobs := cronJobs(t, cs, relNS, rel); len(jobs) != 0 {
		t.Fatalf("Jobs %v started while suspended", jobNames(jobs))
	}

	cj, err := cs.BatchV1().CronJobs(relNS).Get(ctx, rel, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cj.Spec.Suspend = ptr.To(false)
	if _, err := cs.BatchV1().CronJobs(relNS).Update(ctx, cj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the receiver to see the CronJob resumed", func() bool {
		return strings.Contains(logs.String(), "the CronJob is resumed")
	})
	if _, err := d.PushImage(ctx, "shop/web:latest", "v2"); err != nil {
		t.Fatal(err)
	}
	waitJobs(t, cs, relNS, rel, 20*time.Second, "a Job after the resume", func(j []batchv1.Job) bool { return len(j) == 1 })
	if n := strings.Count(logs.String(), "the CronJob is suspended: pushed runs are not started"); n != 1 {
		t.Errorf("the suspension was logged %d times, want once:\n%s", n, logs)
	}
}
