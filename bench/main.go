// Command bench measures urunner at scale on a fresh test ground and prints
// its figures beside the targets they should meet (see BENCHMARKS.md).
//
//	go run ./bench -urunner bin/urunner                    # make bench: 5,000 Deployments
//	go run ./bench -urunner bin/urunner -workloads 100000  # make bench-100k
//	go run ./bench -floor                                  # make bench-floor: RSS floor per SDK left out
//	go run ./bench -push -urunner bin/urunner              # make bench-push
//
// It starts etcd and kube-apiserver (a quiet ground: no controller manager
// shares the cores with the measured runs), OCI registries with injected
// latency and a counting proxy in front of the API server; fills the
// cluster; runs the urunner binary as a subprocess, each run repeated, and
// times the same LISTs itself for the lower bound; and stops everything
// it started, on error too. It writes only to a temporary directory,
// removed at the end unless -keep.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == rusageExecFlag {
		os.Exit(rusageExec(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	urunner           string
	reps              int
	namespaces        int
	enabled           int
	deployments       int
	disabledPct       int
	refs              int
	hosts             int
	latency           time.Duration
	concurrency       int
	restarts          int
	workers           int
	seed              uint64
	profile           bool
	keep              bool
	controllerManager bool
	settleTimeout     time.Duration
	pullPolicy        string
	env               envList

	// The full-scale benchmark (-workloads), see large.go.
	workloads         int
	watched           int
	watchedNamespaces int
	otherNamespaces   int

	// The private registry's count (-auth), see auth.go.
	auth            bool
	authDeployments int
	authRefs        int

	// The RSS floor per left-out SDK (-floor), see floor.go.
	floor bool

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
	fs.IntVar(&o.reps, "reps", 5, "repetitions of each measured run (min/median/max printed)")
	fs.IntVar(&o.namespaces, "namespaces", 500, "namespaces to create")
	fs.IntVar(&o.enabled, "enabled", -1, "namespaces labelled urunner=enable (default 80% of -namespaces)")
	fs.IntVar(&o.deployments, "deployments", 5000, "Deployments to create, spread over the namespaces; each has 2 containers and 1 init container")
	fs.IntVar(&o.disabledPct, "disabled", 10, "percentage of Deployments labelled urunner=disable")
	fs.IntVar(&o.refs, "refs", 0, "unique image references (4 tags per repository), spread over the registries (default 1000, 10000 with -workloads)")
	fs.IntVar(&o.hosts, "hosts", 3, "registries (test ground registries, plain HTTP)")
	fs.DurationVar(&o.latency, "latency", 20*time.Millisecond, "latency each registry injects per request")
	fs.IntVar(&o.concurrency, "concurrency", 8, "URUNNER_CONF_REGISTRY_CONCURRENCY: registry requests in flight per host (urunner's default is 8)")
	fs.IntVar(&o.restarts, "restarts", patchesTarget, "Deployments that run (d) should restart")
	fs.IntVar(&o.workers, "workers", 32, "concurrent creations while filling the cluster")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the population (which namespaces, workloads and references)")
	fs.BoolVar(&o.profile, "profile", true, "collect CPU and heap profiles of a steady-state run, in an extra run")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (profiles, logs, kubeconfig) and print its path")
	fs.BoolVar(&o.controllerManager, "controller-manager", false, "run kube-controller-manager too (restarts roll out), and wait -settle-timeout for its backlog before each run")
	fs.DurationVar(&o.settleTimeout, "settle-timeout", 0, "with -controller-manager: how long to wait before each run for the deployment controller to sync every Deployment (0: do not wait, report the backlog)")
	fs.StringVar(&o.pullPolicy, "pull-policy", "", "imagePullPolicy of every container: Always, IfNotPresent, Never (default: the API server's, Always for :latest, IfNotPresent otherwise)")
	fs.Var(&o.env, "env", "extra KEY=VALUE for urunner's environment, e.g. URUNNER_CONF_EVENTS=false (repeatable)")
	fs.IntVar(&o.workloads, "workloads", 0, "the full-scale benchmark instead: this many workloads (Deployments, StatefulSets and DaemonSets mixed, 3 containers each), e.g. 100000")
	fs.IntVar(&o.watched, "watched", 5000, "with -workloads: Deployments in the enabled namespaces, watched alone first, then among the others")
	fs.IntVar(&o.watchedNamespaces, "watched-namespaces", 100, "with -workloads: the enabled namespaces holding the -watched Deployments")
	fs.IntVar(&o.otherNamespaces, "other-namespaces", 2000, "with -workloads: the namespaces holding the other workloads (enabled for the full-scale runs)")
	fs.BoolVar(&o.auth, "auth", true, "also count HEADs and challenges on a private distribution registry (htpasswd, TLS)")
	fs.IntVar(&o.authDeployments, "auth-deployments", 1000, "with -auth: Deployments on the private registry (one container each)")
	fs.IntVar(&o.authRefs, "auth-refs", 200, "with -auth: references on the private registry")
	fs.BoolVar(&o.floor, "floor", false, "measure the binary's RSS floor (urunner --version) and size when each cloud SDK is left out (throwaway builds in a temporary copy of the module)")
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
	if o.refs == 0 {
		o.refs = 1000
		if o.workloads > 0 {
			o.refs = 10000
		}
	}
	containers := 3 * o.deployments
	if o.workloads > 0 {
		containers = 3 * o.workloads
	}
	switch {
	case o.reps < 1:
		return o, errors.New("-reps must be positive")
	case o.namespaces < 1 || o.deployments < 1 || o.refs < 1 || o.hosts < 1 || o.concurrency < 1 || o.workers < 1:
		return o, errors.New("-namespaces, -deployments, -refs, -hosts, -concurrency and -workers must be positive")
	case o.enabled > o.namespaces:
		return o, errors.New("-enabled must not exceed -namespaces")
	case o.disabledPct < 0 || o.disabledPct > 100:
		return o, errors.New("-disabled is a percentage")
	case o.refs > containers:
		return o, fmt.Errorf("-refs must not exceed the containers (%d)", containers)
	case o.workloads < 0 || o.workloads > 0 && (o.watched < 1 || o.watched >= o.workloads):
		return o, errors.New("-workloads must exceed -watched, which must be positive")
	case o.workloads > 0 && (o.watchedNamespaces < 1 || o.otherNamespaces < 1):
		return o, errors.New("-watched-namespaces and -other-namespaces must be positive")
	case o.auth && (o.authDeployments < 1 || o.authRefs < 1 || o.authRefs > o.authDeployments):
		return o, errors.New("-auth-deployments and -auth-refs must be positive, -auth-refs at most -auth-deployments")
	case o.pullPolicy != "" && o.pullPolicy != "Always" && o.pullPolicy != "IfNotPresent" && o.pullPolicy != "Never":
		return o, fmt.Errorf("-pull-policy: want Always, IfNotPresent or Never, got %q", o.pullPolicy)
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.push && (o.pushDeployments < 1 || o.pushOthers < 0 || o.pushOtherRefs < 1 || o.rounds < 1):
		return o, errors.New("-push-deployments, -push-other-refs and -rounds must be positive")
	}
	return o, nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	switch {
	case o.push:
		return runPush(ctx, o, out)
	case o.floor:
		return runFloor(ctx, o, out)
	case o.workloads > 0:
		return runLarge(ctx, o, out)
	default:
		return runDefault(ctx, o, out)
	}
}
