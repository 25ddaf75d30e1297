package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/webhook"
)

// The push benchmark (-push): how soon a push restarts its workloads when
// the registry notifies the receiver. The CNCF distribution registry
// (docker-registry 2.8) notifies the receiver (urunner-webhook as a
// subprocess), which creates a Job from a CronJob; the benchmark plays the
// kubelet: it watches Jobs, runs the urunner binary with the Job's
// environment as soon as the job controller has created the pod, and
// reports the pod's exit through the API. It measures from the start of
// the tag's manifest PUT to the first and the last PATCH of the
// Deployments that use the tag, as the counting API proxy sees them.
// What a real cluster adds is not in the figure: scheduling the pod,
// pulling urunner's image (cached after the first run), starting its
// container.

const (
	pushNamespace = "bench-push"
	pushCronJob   = "urunner"
	hotRepoTag    = "bench/hot:latest"
)

// pushRun is what the kubelet emulation saw of one pushed Job.
type pushRun struct {
	job        string
	references string
	seen       time.Time // the Job appeared in the watch
	started    time.Time // urunner was started
	run        urunnerRun
	err        error
}

func runPush(ctx context.Context, o options, out io.Writer) (err error) {
	bin, err := filepath.Abs(o.urunner)
	if err != nil {
		return err
	}
	receiverBin, err := filepath.Abs(o.urunner)
	if err != nil {
		return err
	}
	for _, b := range []string{bin, receiverBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%w (make build)", err)
		}
	}
	tmp, err := os.MkdirTemp("", "urunner-bench-push-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			fmt.Fprintf(out, "\nkept %s\n", tmp)
			return
		}
		err = errors.Join(err, os.RemoveAll(tmp))
	}()
	version, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return fmt.Errorf("%s --version: %w", bin, err)
	}
	fmt.Fprintf(out, "%s; push benchmark: %d Deployments on the pushed tag, %d on %d other tags, debounce %s, %d pushes\n",
		strings.TrimSpace(string(version)), o.pushDeployments, o.pushOthers, o.pushOtherRefs, o.debounce, o.rounds)

	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cluster, err := testground.StartCluster(startCtx, testground.ClusterOptions{Dir: filepath.Join(tmp, "cluster"), Log: out})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, cluster.Stop()) }()
	admin := cluster.AdminConfig()
	admin.QPS, admin.Burst = 500, 1000
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return err
	}

	token, addr, err := secretAndAddr()
	if err != nil {
		return err
	}
	reg, err := testground.StartDistribution(ctx, testground.DistributionOptions{AccessLog: true, Endpoints: []testground.NotifyEndpoint{{
		Name: "urunner", URL: "http://" + addr + "/hooks/distribution",
		Headers: map[string][]string{"Authorization": {"Bearer " + token}},
		Timeout: 2 * time.Second, Threshold: 5, Backoff: time.Second, IgnoreActions: []string{"pull"},
	}}})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, reg.Close()) }()

	if err := createPushGround(ctx, cs, reg.Host, o); err != nil {
		return err
	}
	proxy, err := startProxy(cluster.Host, cluster.CAData, cluster.AdminToken)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, proxy.Close()) }()
	runKubeconfig := filepath.Join(tmp, "urunner.kubeconfig")
	if err := testground.WriteKubeconfig(runKubeconfig, &rest.Config{Host: proxy.URL}); err != nil {
		return err
	}
	adminKubeconfig := filepath.Join(tmp, "admin.kubeconfig")
	if err := testground.WriteKubeconfig(adminKubeconfig, cluster.AdminConfig()); err != nil {
		return err
	}

	stopReceiver, err := startReceiverProcess(ctx, receiverBin, filepath.Join(tmp, "receiver.log"), addr, token, adminKubeconfig, o.debounce)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopReceiver()) }()

	runs := make(chan pushRun, 16)
	kubeletCtx, stopKubelet := context.WithCancel(ctx)
	kubeletDone := make(chan error, 1)
	go func() { kubeletDone <- emulateKubelet(kubeletCtx, cs, bin, runKubeconfig, tmp, runs) }()
	defer func() {
		stopKubelet()
		if kerr := <-kubeletDone; kerr != nil && !errors.Is(kerr, context.Canceled) {
			err = errors.Join(err, kerr)
		}
	}()

	// The first push of every tag is one coalesced baseline run.
	t0 := time.Now()
	tags := []string{hotRepoTag}
	for i := range o.pushOtherRefs {
		tags = append(tags, fmt.Sprintf("bench/cold-%d:latest", i))
	}
	for _, tag := range tags {
		if _, err := reg.PushImage(ctx, tag, "v0"); err != nil {
			return err
		}
	}
	// The pushes of 50 tags take longer than the debounce window, so the
	// first run may start before the last tag exists (a 404, exit 1);
	// the runs go on until one succeeds and the notifications stop.
	baselines, err := drainRuns(ctx, runs, 3*time.Second+o.debounce, 2*time.Minute)
	if err != nil {
		return fmt.Errorf("baseline runs: %w", err)
	}
	for _, b := range baselines {
		fmt.Fprintf(out, "ground: baseline Job %s (%d references): %s\n", b.job, strings.Count(b.references, ",")+1, summary(b.run))
	}
	fmt.Fprintf(out, "ground: pushed %d tags and ran their baseline Jobs in %s\n", len(tags), round(time.Since(t0)))

	type result struct {
		put, done                       time.Time
		run                             pushRun
		first, last                     time.Time
		patches, heads, lists, restarts int
	}
	var results []result
	for i := range o.rounds {
		// Let the deployment controller roll the previous restarts out,
		// so that each push meets the same quiet ground.
		if _, _, err := waitSettled(ctx, cs, 2*time.Minute); err != nil {
			return err
		}
		proxy.snapshot()
		heads0, err := reg.ManifestHeads()
		if err != nil {
			return err
		}
		p, err := reg.PushImage(ctx, hotRepoTag, "v"+strconv.Itoa(i+1))
		if err != nil {
			return err
		}
		r, err := nextRun(ctx, runs, 60*time.Second)
		if err != nil {
			return fmt.Errorf("push %d: %w", i+1, err)
		}
		api := proxy.snapshot()
		heads1, err := reg.ManifestHeads()
		if err != nil {
			return err
		}
		sp := api.Spans["patch deployments"]
		res := result{put: p.ManifestPut, done: p.Done, run: r, first: sp.first, last: sp.last,
			patches: api.Requests["patch deployments"], heads: heads1 - heads0, lists: api.byVerb("list"), restarts: r.run.restarted()}
		results = append(results, res)
		fmt.Fprintf(out, "push %d: Job %s seen +%s, urunner started +%s, first PATCH +%s, last PATCH done +%s; %d PATCHes, %d HEADs, %d LISTs, %s\n",
			i+1, r.job, ms(r.seen.Sub(p.ManifestPut)), ms(r.started.Sub(p.ManifestPut)), ms(sp.first.Sub(p.ManifestPut)), ms(sp.last.Sub(p.ManifestPut)),
			res.patches, res.heads, res.lists, summary(r.run))
	}

	fmt.Fprintf(out, "\n| push | Job created | urunner started | first PATCH | last PATCH | PATCHes | restarted (expected) | HEADs | LISTs |\n|---|---|---|---|---|---|---|---|---|\n")
	var lasts []time.Duration
	for i, r := range results {
		last := r.last.Sub(r.put)
		lasts = append(lasts, last)
		fmt.Fprintf(out, "| %d | +%s | +%s | +%s | +%s | %d | %d (%d) | %d | %d |\n", i+1,
			ms(r.run.seen.Sub(r.put)), ms(r.run.started.Sub(r.put)), ms(r.first.Sub(r.put)), ms(last),
			r.patches, r.restarts, o.pushDeployments, r.heads, r.lists)
	}
	slices.Sort(lasts)
	fmt.Fprintf(out, "\npush → last PATCH: median %s, worst %s (target ≤ 5s for %d Deployments)\n", ms(lasts[len(lasts)/2]), ms(lasts[len(lasts)-1]), o.pushDeployments)
	return nil
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func summary(r urunnerRun) string {
	return fmt.Sprintf("exit %d, restarted=%s images=%s duration=%s", r.ExitCode, r.Summary["restarted"], r.Summary["images"], r.Summary["duration"])
}

func secretAndAddr() (string, string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", err
	}
	addr := l.Addr().String()
	return hex.EncodeToString(b), addr, l.Close()
}

// createPushGround makes the CronJob the receiver copies (scheduled once a
// year, on 1 January: only pushed runs here; a suspended CronJob gets no
// pushed runs) and the Deployments: pushDeployments on the pushed tag,
// pushOthers spread over pushOtherRefs other tags.
func createPushGround(ctx context.Context, cs kubernetes.Interface, host string, o options) error {
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: pushCronJob, Namespace: "default"},
		Spec: batchv1.CronJobSpec{
			Schedule:          "0 0 1 1 *",
			ConcurrencyPolicy: batchv1.ForbidConcurrent,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				BackoffLimit: ptr.To[int32](0),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "urunner", Image: "ghcr.io/urunner/urunner:bench", Env: []corev1.EnvVar{
						{Name: "URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH", Value: "http://" + host},
						{Name: "URUNNER_CONF_STATE_NAMESPACE", Value: "default"},
						{Name: "URUNNER_CONF_LOG_FORMAT", Value: "text"},
					}}},
				}},
			}},
		},
	}
	if _, err := cs.BatchV1().CronJobs("default").Create(ctx, cj, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create CronJob: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: pushNamespace, Labels: map[string]string{kube.Label: kube.LabelEnable}}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return err
	}
	n := o.pushDeployments + o.pushOthers
	return parallel(ctx, n, o.workers, func(ctx context.Context, i int) error {
		image := host + "/" + hotRepoTag
		if i >= o.pushDeployments {
			image = fmt.Sprintf("%s/bench/cold-%d:latest", host, (i-o.pushDeployments)%o.pushOtherRefs)
		}
		name := fmt.Sprintf("app-%04d", i)
		sel := map[string]string{"app": name}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: pushNamespace},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](0),
				Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: sel},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name: "app", Image: image, ImagePullPolicy: corev1.PullAlways,
					}}},
				},
			},
		}
		return create(ctx, func(ctx context.Context) error {
			_, err := cs.AppsV1().Deployments(pushNamespace).Create(ctx, d, metav1.CreateOptions{})
			return err
		})
	})
}

// startReceiverProcess runs the receiver with the admin kubeconfig (the
// chart's least-privilege Role is tested in e2e; here only time counts).
func startReceiverProcess(ctx context.Context, bin, logPath, addr, token, kubeconfig string, debounce time.Duration) (stop func() error, err error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "webhook")
	cmd.Env = urunnerEnv(
		"KUBECONFIG="+kubeconfig,
		"URUNNER_CONF_KUBE_AUTH=kubeconfig",
		"URUNNER_CONF_WEBHOOK_NAMESPACE=default",
		"URUNNER_CONF_WEBHOOK_CRONJOB="+pushCronJob,
		"URUNNER_CONF_WEBHOOK_LISTEN="+addr,
		"URUNNER_CONF_WEBHOOK_DEBOUNCE="+debounce.String(),
		"URUNNER_SECR_WEBHOOK_DISTRIBUTION_TOKEN="+token,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start the receiver: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() error {
		defer logFile.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("the receiver did not stop within 15s of SIGTERM")
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, nil
			}
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("the receiver exited: %v\n%s", err, b)
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), stop())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, errors.Join(errors.New("the receiver was not ready within 30s"), stop())
		}
	}
}

// emulateKubelet plays the kubelet for every pushed Job: as soon as the
// job controller has created its pod, it runs urunner with the pod's
// environment (through the counting proxy), then reports the exit in the
// pod's status so that the job controller finishes the Job, and sends
// what it saw on runs.
func emulateKubelet(ctx context.Context, cs kubernetes.Interface, bin, kubeconfig, dir string, runs chan<- pushRun) error {
	w, err := cs.BatchV1().Jobs("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		var ev watch.Event
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok = <-w.ResultChan():
			if !ok {
				return errors.New("the Jobs watch ended")
			}
		}
		j, isJob := ev.Object.(*batchv1.Job)
		if ev.Type != watch.Added || !isJob || j.Annotations[webhook.TriggerAnnotation] != "push" {
			continue
		}
		r := pushRun{job: j.Name, references: j.Annotations[webhook.ReferencesAnnotation], seen: time.Now()}
		r.err = runJob(ctx, cs, j, bin, kubeconfig, dir, &r)
		select {
		case runs <- r:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func runJob(ctx context.Context, cs kubernetes.Interface, j *batchv1.Job, bin, kubeconfig, dir string, r *pushRun) error {
	pod, err := testground.JobPod(ctx, cs, j)
	if err != nil {
		return err
	}
	env, err := testground.ContainerEnv(ctx, cs, j.Namespace, pod.Name, j.Spec.Template.Spec, "urunner")
	if err != nil {
		return err
	}
	vars := []string{"KUBECONFIG=" + kubeconfig, "URUNNER_CONF_KUBE_AUTH=kubeconfig"}
	for k, v := range env {
		if k != "URUNNER_CONF_KUBE_AUTH" {
			vars = append(vars, k+"="+v)
		}
	}
	r.started = time.Now()
	r.run, err = runUrunner(ctx, bin, urunnerEnv(vars...), dir, j.Name)
	if err != nil {
		return err
	}
	if err := testground.FinishJobPod(ctx, cs, j, int32(r.run.ExitCode)); err != nil {
		return err
	}
	_, err = testground.WaitJobFinished(ctx, cs, j.Namespace, j.Name, 30*time.Second)
	return err
}

// drainRuns collects pushed runs until none has come for quiet and the
// last one succeeded.
func drainRuns(ctx context.Context, runs <-chan pushRun, quiet, timeout time.Duration) ([]pushRun, error) {
	deadline := time.After(timeout)
	var got []pushRun
	for {
		select {
		case r := <-runs:
			if r.err != nil {
				return got, fmt.Errorf("Job %s: %w", r.job, r.err)
			}
			got = append(got, r)
		case <-time.After(quiet):
			if len(got) > 0 && got[len(got)-1].run.ExitCode == 0 {
				return got, nil
			}
		case <-deadline:
			return got, fmt.Errorf("no successful run within %s", timeout)
		case <-ctx.Done():
			return got, ctx.Err()
		}
	}
}

func nextRun(ctx context.Context, runs <-chan pushRun, timeout time.Duration) (pushRun, error) {
	select {
	case r := <-runs:
		if r.err != nil {
			return r, fmt.Errorf("Job %s: %w", r.job, r.err)
		}
		if r.run.ExitCode != 0 {
			return r, fmt.Errorf("Job %s: urunner exited %d (%v)", r.job, r.run.ExitCode, r.run.Problems)
		}
		return r, nil
	case <-time.After(timeout):
		return pushRun{}, fmt.Errorf("no pushed run within %s", timeout)
	case <-ctx.Done():
		return pushRun{}, ctx.Err()
	}
}
