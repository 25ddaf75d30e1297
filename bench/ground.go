package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
)

// benchLabel marks the namespaces the benchmark creates, to count them.
const benchLabel = "urunner-bench"

// stateConfigMap is urunner's default state ConfigMap, in namespace default
// (URUNNER_CONF_STATE_NAMESPACE).
const stateConfigMap = "urunner-state"

// ground is a running benchmark ground: the cluster, the registries with
// latency, the counting proxy, and how urunner is configured to use them.
type ground struct {
	o     options
	out   io.Writer
	bin   string // the urunner binary
	dir   string // the temporary directory
	began time.Time

	cluster *testground.Cluster
	regs    []*testground.Registry
	hosts   []string
	cs      kubernetes.Interface // admin, no client-side rate limit
	proxy   *apiProxy
	lists   kubernetes.Interface // the bare LISTs' plain client, through the proxy
	rawList kubernetes.Interface // the same without compression
	env     []string             // urunner's environment

	closers []func() error
}

// startGround starts everything a measured run needs; close stops it all,
// also when startGround fails half-way.
func startGround(ctx context.Context, o options, out io.Writer, tmpPrefix string) (g *ground, err error) {
	g = &ground{o: o, out: out, began: time.Now()}
	defer func() {
		if err != nil {
			err = errors.Join(err, g.close())
			g = nil
		}
	}()
	if g.bin, err = filepath.Abs(o.urunner); err != nil {
		return g, err
	}
	if _, err := os.Stat(g.bin); err != nil {
		return g, fmt.Errorf("urunner binary: %w (run make build)", err)
	}
	if g.dir, err = os.MkdirTemp("", tmpPrefix); err != nil {
		return g, err
	}
	g.closers = append(g.closers, func() error {
		if o.keep {
			fmt.Fprintf(out, "\nkept %s\n", g.dir)
			return nil
		}
		return os.RemoveAll(g.dir)
	})
	if err := g.printMachine(ctx); err != nil {
		return g, err
	}
	for range o.hosts {
		r, err := testground.StartRegistry(testground.RegistryOptions{Latency: o.latency})
		if err != nil {
			return g, err
		}
		g.regs = append(g.regs, r)
		g.hosts = append(g.hosts, r.Host)
		g.closers = append(g.closers, r.Close)
	}
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	// The cluster's directory (logs, certificates, etcd data) is inside
	// dir: kept with it by -keep, removed with it otherwise.
	g.cluster, err = testground.StartCluster(startCtx, testground.ClusterOptions{
		Dir: filepath.Join(g.dir, "cluster"), Log: out, NoControllerManager: !o.controllerManager,
	})
	if err != nil {
		return g, err
	}
	g.closers = append(g.closers, g.cluster.Stop)
	admin := g.cluster.AdminConfig()
	// Filling the cluster is limited by the API server, not the client.
	admin.QPS, admin.Burst = -1, 0
	if g.cs, err = kubernetes.NewForConfig(admin); err != nil {
		return g, err
	}
	if g.proxy, err = startProxy(g.cluster.Host, g.cluster.CAData, g.cluster.AdminToken); err != nil {
		return g, err
	}
	g.closers = append(g.closers, g.proxy.Close)
	if g.lists, err = listClient(g.proxy.URL, true); err != nil {
		return g, err
	}
	if g.rawList, err = listClient(g.proxy.URL, false); err != nil {
		return g, err
	}
	kubeconfig := filepath.Join(g.dir, "urunner.kubeconfig")
	if err := testground.WriteKubeconfig(kubeconfig, &rest.Config{Host: g.proxy.URL}); err != nil {
		return g, err
	}
	registries := filepath.Join(g.dir, "registries.yaml")
	var yaml strings.Builder
	yaml.WriteString("registries:\n")
	for _, h := range g.hosts {
		fmt.Fprintf(&yaml, "  - host: %q\n", "http://"+h)
	}
	if err := os.WriteFile(registries, []byte(yaml.String()), 0o600); err != nil {
		return g, err
	}
	g.env = urunnerEnv(
		"KUBECONFIG="+kubeconfig,
		"URUNNER_CONF_KUBE_AUTH=kubeconfig",
		"URUNNER_CONF_REGISTRIES_FILE="+registries,
		"URUNNER_CONF_STATE_NAMESPACE=default",
		"URUNNER_CONF_REGISTRY_CONCURRENCY="+strconv.Itoa(o.concurrency),
		"URUNNER_CONF_LOG_FORMAT=text",
	)
	return g, nil
}

// close stops what startGround started, in reverse order.
func (g *ground) close() error {
	var errs []error
	for i := len(g.closers) - 1; i >= 0; i-- {
		errs = append(errs, g.closers[i]())
	}
	g.closers = nil
	return errors.Join(errs...)
}

// printMachine says what the figures were measured on: the binary, the
// cores, the memory and the load.
func (g *ground) printMachine(ctx context.Context) error {
	version, err := exec.CommandContext(ctx, g.bin, "--version").Output()
	if err != nil {
		return fmt.Errorf("%s --version: %w", g.bin, err)
	}
	fmt.Fprintf(g.out, "%s; %d CPUs (%s), %s RAM, %s/%s, %s\n", strings.TrimSpace(string(version)), runtime.NumCPU(),
		cpuModel(), memTotal(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(g.out, "load average at start: %s\n", readLoad())
	if len(g.o.env) > 0 || g.o.pullPolicy != "" {
		fmt.Fprintf(g.out, "non-default: urunner environment %q, imagePullPolicy %q\n", []string(g.o.env), g.o.pullPolicy)
	}
	return nil
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown model"
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return "unknown"
}

// parallel calls f for every index below n, workers at a time, and
// returns the first error; after an error no new call starts.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// create calls f until it succeeds, retrying what an API server under load
// answers (429, 5xx, timeouts). AlreadyExists is success: an earlier try
// that timed out may have created the object.
func create(ctx context.Context, f func(context.Context) error) error {
	var err error
	for attempt := range 6 {
		err = f(ctx)
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		if !apierrors.IsTooManyRequests(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsTimeout(err) &&
			!apierrors.IsInternalError(err) && !apierrors.IsServiceUnavailable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		}
	}
	return err
}

// pushAll pushes the current generation of the given references.
func pushAll(ctx context.Context, p *plan, regs []*testground.Registry, refs []int, workers int) error {
	return parallel(ctx, len(refs), workers, func(ctx context.Context, i int) error {
		r := p.refs[refs[i]]
		_, err := regs[r.host].PushImage(ctx, r.repoTag(), r.seed())
		return err
	})
}

// pushMoved gives the moved references a new digest.
func pushMoved(ctx context.Context, p *plan, regs []*testground.Registry, moved map[int]bool, workers int) error {
	refs := make([]int, 0, len(moved))
	for r := range moved {
		p.refs[r].gen++
		refs = append(refs, r)
	}
	if err := pushAll(ctx, p, regs, refs, workers); err != nil {
		return fmt.Errorf("push moved images: %w", err)
	}
	return nil
}

func (p *plan) image(regs []*testground.Registry, ref int) string {
	r := p.refs[ref]
	return regs[r.host].Host + "/" + r.repoTag()
}

// populate creates the plan's namespaces, then its workloads in order.
func populate(ctx context.Context, cs kubernetes.Interface, p *plan, regs []*testground.Registry, order []int, pullPolicy string, workers int) error {
	if err := createNamespaces(ctx, cs, p, 0, len(p.namespaces), workers); err != nil {
		return err
	}
	return createWorkloads(ctx, cs, p, regs, order, pullPolicy, workers)
}

// createNamespaces creates the plan's namespaces [from, to).
func createNamespaces(ctx context.Context, cs kubernetes.Interface, p *plan, from, to, workers int) error {
	err := parallel(ctx, to-from, workers, func(ctx context.Context, i int) error {
		n := p.namespaces[from+i]
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: map[string]string{benchLabel: "true"}}}
		if n.enabled {
			ns.Labels[kube.Label] = kube.LabelEnable
		}
		return create(ctx, func(ctx context.Context) error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("create namespaces: %w", err)
	}
	return nil
}

// createWorkloads creates the plan's workloads of the given indices.
func createWorkloads(ctx context.Context, cs kubernetes.Interface, p *plan, regs []*testground.Registry, order []int, pullPolicy string, workers int) error {
	err := parallel(ctx, len(order), workers, func(ctx context.Context, i int) error {
		w := p.workloads[order[i]]
		ns := p.namespaces[w.namespace].name
		meta, spec := p.workloadObject(w, regs, corev1.PullPolicy(pullPolicy))
		return create(ctx, func(ctx context.Context) error {
			var err error
			switch w.kind {
			case kindDeployment:
				_, err = cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{
					// No pods: a controller manager would still make a
					// ReplicaSet per rollout, what a restart costs.
					Replicas: new(int32(0)), Selector: spec.Selector, Template: spec.Template,
				}}, metav1.CreateOptions{})
			case kindStatefulSet:
				_, err = cs.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{
					Replicas: new(int32(0)), ServiceName: w.name, Selector: spec.Selector, Template: spec.Template,
				}}, metav1.CreateOptions{})
			case kindDaemonSet:
				// Without nodes a DaemonSet has no pods either.
				_, err = cs.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{
					Selector: spec.Selector, Template: spec.Template,
				}}, metav1.CreateOptions{})
			default:
				err = fmt.Errorf("unknown kind %q", w.kind)
			}
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("create workloads: %w", err)
	}
	return nil
}

// templateSpec is what the three kinds' specs share.
type templateSpec struct {
	Selector *metav1.LabelSelector
	Template corev1.PodTemplateSpec
}

func (p *plan) workloadObject(w workloadPlan, regs []*testground.Registry, pullPolicy corev1.PullPolicy) (metav1.ObjectMeta, templateSpec) {
	sel := map[string]string{"app": w.name}
	labels := map[string]string{"app": w.name}
	if w.disabled {
		labels[kube.Label] = kube.LabelDisable
	}
	var spec corev1.PodSpec
	for j, name := range containerNames {
		c := corev1.Container{Name: name, Image: p.image(regs, w.refs[j]), ImagePullPolicy: pullPolicy}
		if name == "init" {
			spec.InitContainers = append(spec.InitContainers, c)
		} else {
			spec.Containers = append(spec.Containers, c)
		}
	}
	return metav1.ObjectMeta{Name: w.name, Namespace: p.namespaces[w.namespace].name, Labels: labels},
		templateSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: spec},
		}
}

// enableNamespaces labels the plan's namespaces [from, to) urunner=enable.
func enableNamespaces(ctx context.Context, cs kubernetes.Interface, p *plan, from, to, workers int) error {
	patch := []byte(`{"metadata":{"labels":{"` + kube.Label + `":"` + kube.LabelEnable + `"}}}`)
	err := parallel(ctx, to-from, workers, func(ctx context.Context, i int) error {
		name := p.namespaces[from+i].name
		return create(ctx, func(ctx context.Context) error {
			_, err := cs.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("label namespaces %s=%s: %w", kube.Label, kube.LabelEnable, err)
	}
	for i := from; i < to; i++ {
		p.namespaces[i].enabled = true
	}
	return nil
}

// waitCounts waits until LISTs show the plan's namespaces and workloads.
func waitCounts(ctx context.Context, cs kubernetes.Interface, p *plan, timeout time.Duration) error {
	want := map[string]int{}
	for _, w := range p.workloads {
		want[w.kind]++
	}
	return waitFor(ctx, cs, len(p.namespaces), want, timeout)
}

// waitFor waits until LISTs show at least the benchmark's namespaces and
// the workloads of each kind wanted.
func waitFor(ctx context.Context, cs kubernetes.Interface, namespaces int, want map[string]int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		nsN, got, err := counts(ctx, cs)
		done := err == nil && nsN >= namespaces
		for k, n := range want {
			done = done && got[k] >= n
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s the API server lists %d namespaces and %v, want %d and %v (last error: %v)",
				timeout, nsN, got, namespaces, want, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// counts returns the benchmark's namespaces and the workloads of each
// kind, from LISTs of one item each: the API server reports how many
// remain.
func counts(ctx context.Context, cs kubernetes.Interface) (namespaces int, workloads map[string]int, err error) {
	nl, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: benchLabel + "=true"})
	if err != nil {
		return 0, nil, err
	}
	workloads = map[string]int{}
	for _, k := range kindNames {
		l, n, err := listKind(ctx, cs, k, metav1.NamespaceAll, metav1.ListOptions{Limit: 1})
		if err != nil {
			return len(nl.Items), workloads, err
		}
		if rem := l.GetRemainingItemCount(); rem != nil {
			n += int(*rem)
		}
		workloads[k] = n
	}
	return len(nl.Items), workloads, nil
}

// settle waits for the deployment controller, at most timeout, and says
// how far behind it is (-controller-manager only).
func settle(ctx context.Context, out io.Writer, cs kubernetes.Interface, timeout time.Duration) error {
	t := time.Now()
	pending, total, err := waitSettled(ctx, cs, timeout)
	if err != nil {
		return fmt.Errorf("wait for the deployment controller: %w", err)
	}
	switch {
	case pending > 0:
		fmt.Fprintf(out, "ground: controller backlog: %d of %d Deployments not yet synced by the deployment controller\n", pending, total)
	case time.Since(t) > 2*time.Second:
		fmt.Fprintf(out, "ground: the deployment controller caught up in %s\n", round(time.Since(t)))
	}
	return nil
}

// waitSettled waits, at most timeout, until the deployment controller has
// observed every Deployment's latest generation (made its ReplicaSet), and
// returns how many of how many Deployments it has not. With a zero timeout
// it looks once.
func waitSettled(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) (pending, total int, err error) {
	deadline := time.Now().Add(timeout)
	interval := time.Second
	for {
		pending, total, err = unobserved(ctx, cs)
		if err == nil && (pending == 0 || time.Now().After(deadline)) {
			return pending, total, nil
		}
		if total > 10000 {
			// Each poll lists everything; do not make the API server
			// spend its time on the poll.
			interval = 5 * time.Second
		}
		if err != nil && time.Now().After(deadline) {
			return pending, total, fmt.Errorf("list Deployments: %w", err)
		}
		select {
		case <-ctx.Done():
			return pending, total, ctx.Err()
		case <-time.After(interval):
		}
	}
}

func unobserved(ctx context.Context, cs kubernetes.Interface) (pending, total int, err error) {
	opts := metav1.ListOptions{Limit: 500}
	for {
		l, err := cs.AppsV1().Deployments(metav1.NamespaceAll).List(ctx, opts)
		if err != nil {
			return pending, total, err
		}
		for _, d := range l.Items {
			total++
			if d.Status.ObservedGeneration < d.Generation {
				pending++
			}
		}
		if l.Continue == "" {
			return pending, total, nil
		}
		opts.Continue = l.Continue
	}
}
