// Command bench measures urunner at scale on a fresh test ground and prints
// its figures beside the targets they should meet (see BENCHMARKS.md).
//
//	go run ./bench -urunner bin/urunner            # what `make bench` runs
//	go run ./bench -urunner bin/urunner -namespaces 5000 -deployments 50000 -refs 10000
//
// It starts etcd, kube-apiserver and kube-controller-manager, several OCI
// registries with injected latency and a counting proxy in front of the API
// server; fills the cluster; runs the urunner binary as a subprocess for a
// baseline, a steady state, 1% of the references moved and enough moved for
// about 1,000 restarts; and stops everything it started, on error too. It
// writes only to a temporary directory, removed at the end unless -keep.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/state"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	urunner       string
	namespaces    int
	enabled       int
	deployments   int
	disabledPct   int
	refs          int
	hosts         int
	latency       time.Duration
	concurrency   int
	restarts      int
	workers       int
	seed          uint64
	profile       bool
	keep          bool
	settleTimeout time.Duration
	pullPolicy    string
	env           envList

	// The push benchmark (-push), see push.go.
	push            bool
	pushDeployments int
	pushOthers      int
	pushOtherRefs   int
	debounce        time.Duration
	rounds          int
}

// envList is a repeatable KEY=VALUE flag.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.urunner, "urunner", "bin/urunner", "the urunner binary to measure (make build)")
	fs.IntVar(&o.namespaces, "namespaces", 500, "namespaces to create")
	fs.IntVar(&o.enabled, "enabled", -1, "namespaces labelled urunner=enable (default 80% of -namespaces)")
	fs.IntVar(&o.deployments, "deployments", 5000, "Deployments to create, spread over the namespaces; each has 2 containers and 1 init container")
	fs.IntVar(&o.disabledPct, "disabled", 10, "percentage of Deployments labelled urunner=disable")
	fs.IntVar(&o.refs, "refs", 1000, "unique image references (4 tags per repository), spread over the registries")
	fs.IntVar(&o.hosts, "hosts", 3, "registries (test ground registries, plain HTTP)")
	fs.DurationVar(&o.latency, "latency", 20*time.Millisecond, "latency each registry injects per request")
	fs.IntVar(&o.concurrency, "concurrency", 8, "URUNNER_CONF_REGISTRY_CONCURRENCY: registry requests in flight per host (urunner's default is 8)")
	fs.IntVar(&o.restarts, "restarts", patchesTarget, "Deployments that run (d) should restart")
	fs.IntVar(&o.workers, "workers", 24, "concurrent creations while filling the cluster")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the population (which namespaces, Deployments and references)")
	fs.BoolVar(&o.profile, "profile", true, "collect CPU and heap profiles of a baseline and a 1%-moved run, in extra runs")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (profiles, logs, kubeconfig) and print its path")
	fs.DurationVar(&o.settleTimeout, "settle-timeout", 0, "how long to wait before each run for the deployment controller to sync every Deployment (it syncs ~7 a second; 0: do not wait, report the backlog)")
	fs.StringVar(&o.pullPolicy, "pull-policy", "", "imagePullPolicy of every container: Always, IfNotPresent, Never (default: the API server's, Always for :latest, IfNotPresent otherwise)")
	fs.Var(&o.env, "env", "extra KEY=VALUE for urunner's environment, e.g. URUNNER_CONF_EVENTS=false (repeatable)")
	fs.BoolVar(&o.push, "push", false, "measure push → PATCH instead: a real registry notifies the webhook receiver, which starts the run (see push.go)")
	fs.IntVar(&o.pushDeployments, "push-deployments", 150, "with -push: Deployments using the pushed tag")
	fs.IntVar(&o.pushOthers, "push-others", 350, "with -push: Deployments on other tags, which the push must not restart")
	fs.IntVar(&o.pushOtherRefs, "push-other-refs", 49, "with -push: the other tags")
	fs.DurationVar(&o.debounce, "debounce", time.Second, "with -push: the receiver's URUNNER_CONF_WEBHOOK_DEBOUNCE")
	fs.IntVar(&o.rounds, "rounds", 5, "with -push: measured pushes")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.enabled < 0 {
		o.enabled = o.namespaces * 8 / 10
	}
	switch {
	case o.namespaces < 1 || o.deployments < 1 || o.refs < 1 || o.hosts < 1 || o.concurrency < 1 || o.workers < 1:
		return o, errors.New("-namespaces, -deployments, -refs, -hosts, -concurrency and -workers must be positive")
	case o.enabled > o.namespaces:
		return o, errors.New("-enabled must not exceed -namespaces")
	case o.disabledPct < 0 || o.disabledPct > 100:
		return o, errors.New("-disabled is a percentage")
	case o.refs > 3*o.deployments:
		return o, errors.New("-refs must not exceed the containers (3 × -deployments)")
	case o.pullPolicy != "" && o.pullPolicy != "Always" && o.pullPolicy != "IfNotPresent" && o.pullPolicy != "Never":
		return o, fmt.Errorf("-pull-policy: want Always, IfNotPresent or Never, got %q", o.pullPolicy)
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.push && (o.pushDeployments < 1 || o.pushOthers < 0 || o.pushOtherRefs < 1 || o.rounds < 1):
		return o, errors.New("-push-deployments, -push-other-refs and -rounds must be positive")
	}
	return o, nil
}

func run(ctx context.Context, args []string, out io.Writer) (err error) {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.push {
		return runPush(ctx, o, out)
	}
	bin, err := filepath.Abs(o.urunner)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("urunner binary: %w (run make build)", err)
	}
	tmp, err := os.MkdirTemp("", "urunner-bench-")
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
	began := time.Now()
	fmt.Fprintf(out, "%s on %d CPUs, %s/%s\n", strings.TrimSpace(string(version)), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	if len(o.env) > 0 || o.pullPolicy != "" {
		fmt.Fprintf(out, "non-default: urunner environment %q, imagePullPolicy %q\n", []string(o.env), o.pullPolicy)
	}
	fmt.Fprintf(out, "urunner benchmark: %d namespaces (%d enabled), %d Deployments (%d%% urunner=disable), %d containers, %d references on %d registries, latency %s, concurrency %d\n",
		o.namespaces, o.enabled, o.deployments, o.disabledPct, o.deployments*len(containerNames), o.refs, o.hosts, o.latency, o.concurrency)

	regs := make([]*testground.Registry, 0, o.hosts)
	defer func() {
		for _, r := range regs {
			err = errors.Join(err, r.Close())
		}
	}()
	for range o.hosts {
		r, err := testground.StartRegistry(testground.RegistryOptions{Latency: o.latency})
		if err != nil {
			return err
		}
		regs = append(regs, r)
	}
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	// The cluster's directory (logs, certificates, etcd data) is inside
	// tmp: kept with it by -keep, removed with it otherwise.
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

	p := newPlan(o.seed, o.namespaces, o.enabled, o.deployments, o.disabledPct, o.refs, o.hosts)
	all := make([]int, len(p.refs))
	for i := range all {
		all[i] = i
	}
	t := time.Now()
	if err := pushAll(ctx, p, regs, all, o.workers); err != nil {
		return fmt.Errorf("push images: %w", err)
	}
	fmt.Fprintf(out, "ground: pushed %d images in %s\n", len(all), round(time.Since(t)))
	// The moved references of every run are chosen now, so that the
	// Deployments they restart are created last (see creationOrder).
	movedC := p.takeRefs(ceilDiv(o.refs, 100))
	movedD := p.takeRefsForRestarts(o.restarts)
	var movedProf map[int]bool
	if o.profile {
		movedProf = p.takeRefs(ceilDiv(o.refs, 100))
	}
	t = time.Now()
	if err := populate(ctx, cs, p, regs, p.creationOrder(movedC, movedD, movedProf), o.pullPolicy, o.workers); err != nil {
		return err
	}
	if err := waitCounts(ctx, cs, p, 5*time.Minute); err != nil {
		return err
	}
	created := time.Since(t)
	fmt.Fprintf(out, "ground: created %d namespaces and %d Deployments in %s (%.0f objects/s, %d workers)\n",
		len(p.namespaces), len(p.deployments), round(created), float64(len(p.namespaces)+len(p.deployments))/created.Seconds(), o.workers)
	if err := settle(ctx, out, cs, o.settleTimeout); err != nil {
		return err
	}

	proxy, err := startProxy(cluster.Host, cluster.CAData, cluster.AdminToken)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, proxy.Close()) }()
	kubeconfig := filepath.Join(tmp, "urunner.kubeconfig")
	if err := testground.WriteKubeconfig(kubeconfig, &rest.Config{Host: proxy.URL}); err != nil {
		return err
	}
	registries := filepath.Join(tmp, "registries.yaml")
	var yaml strings.Builder
	yaml.WriteString("registries:\n")
	hosts := make([]string, len(regs))
	for i, r := range regs {
		hosts[i] = r.Host
		fmt.Fprintf(&yaml, "  - host: %q\n", "http://"+r.Host)
	}
	if err := os.WriteFile(registries, []byte(yaml.String()), 0o600); err != nil {
		return err
	}
	env := urunnerEnv(
		"KUBECONFIG="+kubeconfig,
		"URUNNER_CONF_KUBE_AUTH=kubeconfig",
		"URUNNER_CONF_REGISTRIES_FILE="+registries,
		"URUNNER_CONF_STATE_NAMESPACE=default",
		"URUNNER_CONF_REGISTRY_CONCURRENCY="+strconv.Itoa(o.concurrency),
		"URUNNER_CONF_LOG_FORMAT=text",
	)
	// Later entries win (os/exec keeps the last of duplicate keys).
	env = append(env, o.env...)

	b := bench{o: o, p: p, cs: cs, regs: regs, hosts: hosts, proxy: proxy, env: env, bin: bin, dir: tmp, out: out}
	var results []result
	measure := func(id, title string, moved map[int]bool, restartRun bool) error {
		r, err := b.measure(ctx, id, title, moved, restartRun, nil)
		if err != nil {
			return err
		}
		results = append(results, r)
		printRun(out, r, o.namespaces, o.deployments)
		return nil
	}
	if err := measure("a", "first run (baseline)", nil, false); err != nil {
		return err
	}
	if err := measure("b", "steady state (nothing changed)", nil, false); err != nil {
		return err
	}
	if err := b.push(ctx, movedC); err != nil {
		return err
	}
	if err := measure("c", fmt.Sprintf("1%% moved (%d tags pushed anew)", len(movedC)), movedC, false); err != nil {
		return err
	}
	if err := b.push(ctx, movedD); err != nil {
		return err
	}
	if err := measure("d", fmt.Sprintf("%d tags moved for ~%d restarts", len(movedD), o.restarts), movedD, true); err != nil {
		return err
	}
	printTables(out, results, o.namespaces, o.deployments)

	if o.profile {
		if err := b.profiles(ctx, movedProf); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "\nbenchmark took %s\n", round(time.Since(began)))
	return nil
}

// settle waits for the deployment controller, at most timeout, and says
// how far behind it is.
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

// stateConfigMap is urunner's default state ConfigMap, in namespace default
// (URUNNER_CONF_STATE_NAMESPACE).
const stateConfigMap = "urunner-state"

// bench is the running benchmark's ground and settings.
type bench struct {
	o     options
	p     *plan
	cs    kubernetes.Interface
	regs  []*testground.Registry
	hosts []string
	proxy *apiProxy
	env   []string
	bin   string
	dir   string
	out   io.Writer
}

// push gives the moved references a new digest.
func (b *bench) push(ctx context.Context, moved map[int]bool) error {
	refs := make([]int, 0, len(moved))
	for r := range moved {
		b.p.refs[r].gen++
		refs = append(refs, r)
	}
	if err := pushAll(ctx, b.p, b.regs, refs, b.o.workers); err != nil {
		return fmt.Errorf("push moved images: %w", err)
	}
	return nil
}

// measure runs urunner once, counters reset, and collects the figures.
func (b *bench) measure(ctx context.Context, id, title string, moved map[int]bool, restartRun bool, args []string) (result, error) {
	if err := settle(ctx, b.out, b.cs, b.o.settleTimeout); err != nil {
		return result{}, err
	}
	r := result{id: id, title: title, restartRun: restartRun, exp: b.p.expect(moved), hosts: b.hosts}
	r.bound = lowerBound(r.exp.refsPerHost, b.o.concurrency, b.o.latency)
	for _, reg := range b.regs {
		reg.ResetRequests()
	}
	b.proxy.snapshot()
	run, err := runUrunner(ctx, b.bin, b.env, b.dir, "run-"+id, args...)
	if err != nil {
		return r, err
	}
	r.run = run
	r.api = b.proxy.snapshot()
	for _, reg := range b.regs {
		r.registry = append(r.registry, reg.Requests())
	}
	cm, err := b.cs.CoreV1().ConfigMaps("default").Get(ctx, stateConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return r, fmt.Errorf("read the state ConfigMap: %w", err)
	default:
		data := cm.BinaryData[state.DataKey]
		r.stateBytes = len(data)
		r.stateItems, err = stateWorkloads(data)
		if err != nil {
			fmt.Fprintf(b.out, "bench: cannot count the state's workloads: %v\n", err)
			r.stateItems = -1
		}
	}
	return r, nil
}

// profiles reruns a baseline (state deleted) and a 1%-moved run with
// urunner's --cpuprofile and --memprofile, and prints pprof's top lines.
// They are extra runs so that the measured ones carry no profiling cost.
func (b *bench) profiles(ctx context.Context, moved map[int]bool) error {
	fmt.Fprintf(b.out, "\n== Profiles (extra runs; files in %s)\n", b.dir)
	if err := b.cs.CoreV1().ConfigMaps("default").Delete(ctx, stateConfigMap, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete the state for a profiled baseline: %w", err)
	}
	if err := b.profileRun(ctx, "a-prof", "baseline (state deleted), profiled", nil); err != nil {
		return err
	}
	if err := b.push(ctx, moved); err != nil {
		return err
	}
	return b.profileRun(ctx, "c-prof", fmt.Sprintf("1%% moved (%d tags), profiled", len(moved)), moved)
}

func (b *bench) profileRun(ctx context.Context, id, title string, moved map[int]bool) error {
	cpu := filepath.Join(b.dir, id+".cpu.pprof")
	mem := filepath.Join(b.dir, id+".mem.pprof")
	r, err := b.measure(ctx, id, title, moved, false, []string{"--cpuprofile", cpu, "--memprofile", mem})
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\n-- run (%s) %s: wall %s, restarted=%d (expected %d), peak RSS %.1f MiB, exit %d\n",
		id, title, round(r.run.Wall), r.run.restarted(), r.exp.restarts, mib(r.run.MaxRSSKiB<<10), r.run.ExitCode)
	for _, v := range []struct {
		file  string
		args  []string
		lines int
	}{
		{cpu, []string{"-top", "-nodecount=15"}, 22},
		{cpu, []string{"-top", "-cum", "-nodecount=25"}, 32},
		{mem, []string{"-top", "-sample_index=alloc_space", "-nodecount=15"}, 22},
		{mem, []string{"-top", "-sample_index=inuse_space", "-nodecount=8"}, 15},
	} {
		top, err := pprofTop(ctx, v.file, v.args...)
		fmt.Fprintf(b.out, "\n$ go tool pprof %s %s\n", strings.Join(v.args, " "), filepath.Base(v.file))
		if err != nil {
			fmt.Fprintf(b.out, "   (pprof failed: %v)\n", err)
			continue
		}
		lines := strings.Split(strings.TrimRight(top, "\n"), "\n")
		if len(lines) > v.lines {
			lines = lines[:v.lines]
		}
		fmt.Fprintln(b.out, strings.Join(lines, "\n"))
	}
	return nil
}

// stateWorkloads counts the workloads of a state document. It reads the
// gzip JSON itself rather than with state.Decode, so that it keeps working
// while the format grows fields this copy of the package does not know.
func stateWorkloads(data []byte) (int, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	var doc struct {
		Workloads map[string]json.RawMessage `json:"workloads"`
	}
	if err := json.NewDecoder(zr).Decode(&doc); err != nil {
		return 0, err
	}
	return len(doc.Workloads), nil
}

func pprofTop(ctx context.Context, file string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", append(append([]string{"tool", "pprof"}, args...), file)...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", err
	}
	return string(out), nil
}
