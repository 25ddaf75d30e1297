package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/urunner/urunner/e2e/testground"
)

// The plugin is tested against the test ground: a real kube-apiserver,
// etcd and controller manager (its job and CronJob controllers), the
// chart installed by the pinned helm, an OCI registry, and the urunner
// binary as the image builds it, run in the kubelet's place.
var (
	cluster    *testground.Cluster
	urunnerBin string
	helmBin    string
	root       string
	// kubeconfig is the admin's, as a user of the plugin has one.
	kubeconfig string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var err error
	if root, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	helmBin = filepath.Join(root, ".cache", "bin", "helm")
	if _, err := os.Stat(helmBin); err != nil {
		fmt.Fprintln(os.Stderr, "helm is missing: run hack/tools.sh helm (make test does)")
		return 1
	}
	tmp, err := os.MkdirTemp("", "kubectl-urunner-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// Built as make build builds it (no cgo, -trimpath), so that the Go
	// cache shares its packages; into a directory of our own, so that
	// test packages building it at once do not write one file.
	urunnerBin = filepath.Join(tmp, "urunner")
	build := exec.Command("go", "build", "-trimpath", "-o", urunnerBin, ".")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build urunner: %v\n%s", err, out)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := testground.StartCluster(ctx, testground.ClusterOptions{Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the test ground:", err)
		return 1
	}
	defer func() { _ = c.Stop() }()
	cluster, kubeconfig = c, c.KubeconfigPath
	return m.Run()
}

func clientset(t *testing.T) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cluster.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// helm runs the pinned helm against the test ground, with configuration
// directories of its own.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig,
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// plugin runs kubectl urunner in process with the admin's kubeconfig and
// returns its exit code and output.
func plugin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return pluginCtx(t.Context(), t, args...)
}

func pluginCtx(ctx context.Context, t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(ctx, append([]string{"--kubeconfig", kubeconfig}, args...), &stdout, &stderr, hooks{})
	t.Logf("kubectl urunner %s → exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return code, stdout.String(), stderr.String()
}

// kubelet does the kubelet's part for the Jobs of one namespace on node:
// it binds each new Job pod to the node (the scheduler's part), reports
// its container running, runs the urunner binary with the environment the
// pod would get (its ServiceAccount's token in place of the mounted one)
// writing its output as the container's log, and reports its exit as the
// kubelet does; the real job controller then finishes the Job.
type kubelet struct {
	t         *testing.T
	cs        kubernetes.Interface
	node      *node
	namespace string
	// paused, while true, leaves new pods Pending, as a node without room
	// would.
	paused atomic.Bool

	mu   sync.Mutex
	seen map[string]bool
	runs []string // pods run, in order
}

func startKubelet(t *testing.T, cs kubernetes.Interface, n *node, namespace string) *kubelet {
	t.Helper()
	k := &kubelet{t: t, cs: cs, node: n, namespace: namespace, seen: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.loop(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return k
}

func (k *kubelet) loop(ctx context.Context) {
	for {
		pods, err := k.cs.CoreV1().Pods(k.namespace).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/controller-uid"})
		if err == nil {
			for _, p := range pods.Items {
				if p.Spec.NodeName == "" && !k.seen[p.Name] && !k.paused.Load() {
					k.seen[p.Name] = true
					k.run(ctx, p)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// run runs one pod to its end.
func (k *kubelet) run(ctx context.Context, pod corev1.Pod) {
	t := k.t
	err := k.cs.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
		Target:     corev1.ObjectReference{Kind: "Node", Name: k.node.name},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Errorf("bind pod %s: %v", pod.Name, err)
		return
	}
	env, err := testground.ContainerEnv(ctx, k.cs, pod.Namespace, pod.Name, pod.Spec, "urunner")
	if err != nil {
		t.Errorf("pod %s: %v", pod.Name, err)
		return
	}
	saCfg, err := cluster.ServiceAccountConfig(ctx, pod.Namespace, pod.Spec.ServiceAccountName)
	if err != nil {
		t.Errorf("pod %s: %v", pod.Name, err)
		return
	}
	dir, err := os.MkdirTemp("", "kubelet-")
	if err != nil {
		t.Error(err)
		return
	}
	defer os.RemoveAll(dir)
	kc := filepath.Join(dir, "kubeconfig")
	if err := testground.WriteKubeconfig(kc, saCfg); err != nil {
		t.Error(err)
		return
	}
	log := k.node.log(pod.Namespace, pod.Name, "urunner")
	if err := k.setRunning(ctx, pod.Name); err != nil {
		t.Errorf("pod %s: %v", pod.Name, err)
		return
	}
	cmd := exec.CommandContext(ctx, urunnerBin)
	cmd.Env = []string{"KUBECONFIG=" + kc, "HOME=" + dir}
	for name, v := range env {
		if name != "URUNNER_CONF_KUBE_AUTH" {
			cmd.Env = append(cmd.Env, name+"="+v)
		}
	}
	cmd.Env = append(cmd.Env, "URUNNER_CONF_KUBE_AUTH=kubeconfig")
	cmd.Stdout, cmd.Stderr = log, log
	code := 0
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Errorf("pod %s: run urunner: %v", pod.Name, err)
			return
		}
		code = ee.ExitCode()
	}
	log.end()
	k.mu.Lock()
	k.runs = append(k.runs, pod.Name)
	k.mu.Unlock()
	if err := k.setExited(ctx, pod.Name, int32(code)); err != nil {
		t.Errorf("pod %s: %v", pod.Name, err)
	}
}

// setRunning reports the pod's container started, as the kubelet does.
func (k *kubelet) setRunning(ctx context.Context, name string) error {
	p, err := k.cs.CoreV1().Pods(k.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.StartTime = &now
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: true, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	_, err = k.cs.CoreV1().Pods(k.namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}

// setExited reports the pod's container exited with code, as the kubelet
// does: the job controller then marks the Job Complete or Failed.
func (k *kubelet) setExited(ctx context.Context, name string, code int32) error {
	p, err := k.cs.CoreV1().Pods(k.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	reason := "Completed"
	p.Status.Phase = corev1.PodSucceeded
	if code != 0 {
		p.Status.Phase, reason = corev1.PodFailed, "Error"
	}
	for i := range p.Status.ContainerStatuses {
		s := &p.Status.ContainerStatuses[i]
		started := now
		if s.State.Running != nil {
			started = s.State.Running.StartedAt
		}
		s.Ready, s.Started = false, ptr.To(false)
		s.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, StartedAt: started, FinishedAt: now}}
	}
	_, err = k.cs.CoreV1().Pods(k.namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}

func (k *kubelet) ran() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.runs...)
}
