package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/urunner/urunner/kube/apiclient"
	"github.com/urunner/urunner/policy"
)

// Defaults: the chart's release name, CronJob and state ConfigMap.
const (
	defaultNamespace = "urunner"
	defaultCronJob   = "urunner"
	defaultStateCM   = "urunner-state"
	chartName        = "urunner"
	// stateConfigMapEnv is the variable of urunner's container naming its
	// state ConfigMap (the chart's config.stateConfigMap).
	stateConfigMapEnv = "URUNNER_CONF_STATE_CONFIGMAP"
)

var errHelp = errors.New("help requested")

// options are the command line: kubectl's own connection flags, and
// where urunner is installed.
type options struct {
	loading   *clientcmd.ClientConfigLoadingRules
	overrides clientcmd.ConfigOverrides

	cronJob, release, stateCM string
	workloadNamespace         string
	output                    string
	timeout                   time.Duration
	help                      bool

	fs *pflag.FlagSet
}

func newOptions() *options {
	return &options{loading: clientcmd.NewDefaultClientConfigLoadingRules()}
}

// flags declares every flag of every command on one set, as kubectl
// plugins take them, before or after the command; check refuses those a
// command does not use.
func (o *options) flags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("kubectl-urunner", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.StringVar(&o.loading.ExplicitPath, clientcmd.RecommendedConfigPathFlag, "", "Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	names := clientcmd.RecommendedConfigOverrideFlags("")
	names.ContextOverrideFlags.Namespace.Description = "urunner's namespace (default: the kubeconfig context's namespace, else " + defaultNamespace + ")"
	clientcmd.BindOverrideFlags(&o.overrides, fs, names)
	fs.StringVar(&o.cronJob, "cronjob", defaultCronJob, "urunner's CronJob")
	fs.StringVar(&o.release, "release", "", "urunner's Helm release: its CronJob is named as the chart names it (instead of --cronjob)")
	fs.StringVar(&o.stateCM, "state-configmap", "", "urunner's state ConfigMap (default: the CronJob's "+stateConfigMapEnv+", else "+defaultStateCM+")")
	fs.StringVarP(&o.workloadNamespace, "workload-namespace", "w", "", "why: the workload's namespace (default: the kubeconfig context's namespace, else default)")
	fs.StringVarP(&o.output, "output", "o", "", "status, why: json for a JSON document")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "plan, run: how long to wait for the Job's pod to start")
	fs.BoolVarP(&o.help, "help", "h", false, "print this help")
	o.fs = fs
	return fs
}

func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return errHelp
		}
		return &usageError{err.Error()}
	}
	if h, _ := fs.GetBool("help"); h {
		return errHelp
	}
	return nil
}

// commandFlags are the flags only some commands take.
var commandFlags = map[string][]string{
	"workload-namespace": {"why"},
	"output":             {"status", "why"},
	"timeout":            {"plan", "run"},
}

// check refuses a command that does not exist, the wrong number of
// arguments, and flags the command would ignore.
func (o *options) check(cmd string, args []string) error {
	if err := checkArgs(cmd, args); err != nil {
		return err
	}
	for flag, cmds := range commandFlags {
		if o.fs.Changed(flag) && !slices.Contains(cmds, cmd) {
			return usagef("--%s is for %s, not %s", flag, strings.Join(cmds, " and "), cmd)
		}
	}
	if o.output != "" && o.output != "json" {
		return usagef("--output: want json, got %q", o.output)
	}
	if o.fs.Changed("release") && o.fs.Changed("cronjob") {
		return usagef("--release and --cronjob both name the CronJob: give one")
	}
	if o.timeout <= 0 {
		return usagef("--timeout: want a positive duration, got %s", o.timeout)
	}
	return nil
}

// checkArgs refuses a command that does not exist, and arguments the
// command does not take.
func checkArgs(cmd string, args []string) error {
	want := map[string]int{"status": 0, "plan": 0, "run": 0, "why": 1, "lift": 1, "forget-ring": 2, "version": 0}
	n, ok := want[cmd]
	if !ok {
		return usagef("unknown command %q (want status, plan, run, why, lift, forget-ring or version)", cmd)
	}
	if cmd == "plan" && len(args) == 1 {
		n = 1 // plan IMAGE[@DIGEST]: what if
	}
	if len(args) != n {
		switch cmd {
		case "why":
			return usagef("why takes one workload: why deploy/NAME, sts/NAME or ds/NAME")
		case "lift":
			return usagef("lift takes one quarantined digest: lift sha256:… (or its first 12 hex characters)")
		case "forget-ring":
			return usagef("forget-ring takes a reference and a ring: forget-ring registry/repository:tag 0")
		case "plan":
			return usagef("plan takes at most one image: plan [registry/repository:tag[@sha256:DIGEST]], got %q", strings.Join(args, " "))
		}
		return usagef("%s takes no argument, got %q", cmd, strings.Join(args, " "))
	}
	switch {
	case cmd == "lift":
		if _, err := policy.ParseLift(args[0]); err != nil {
			return usagef("lift: %v", err)
		}
	case cmd == "plan" && n == 1:
		if _, err := parsePlanTarget(args[0]); err != nil {
			return err
		}
	}
	return nil
}

// cronJobOf returns the CronJob the chart names for a release: its
// urunner.fullname helper, without fullnameOverride.
func cronJobOf(release string) string {
	name := release
	if !strings.Contains(release, chartName) {
		name = release + "-" + chartName
	}
	if len(name) > 63 {
		name = name[:63]
	}
	return strings.TrimSuffix(name, "-")
}

// cli is a connected command: the clients and where urunner lives.
type cli struct {
	cs   kubernetes.Interface
	api  *apiclient.Clients // what kube and the state store take
	dyn  dynamic.Interface  // Argo Rollouts
	meta metadata.Interface
	logs logSource
	now  func() time.Time
	err  io.Writer // progress and warnings; results go to the command's stdout

	namespace string // urunner's
	cronJob   string
	stateCM   string // "" until resolved from the CronJob (stateConfigMap)
	// contextNamespace is the kubeconfig context's namespace, "" if none.
	contextNamespace string
	workloadNS       string
	output           string
	timeout          time.Duration
}

// connect loads the kubeconfig as kubectl does ($KUBECONFIG, --kubeconfig,
// --context and the other connection flags) and makes the clients.
func (o *options) connect(ctx context.Context, h hooks, stderr io.Writer) (*cli, error) {
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(o.loading, &o.overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kubectl-urunner/" + version
	c := &cli{err: stderr, output: o.output, timeout: o.timeout, cronJob: o.cronJob, stateCM: o.stateCM}
	if c.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if c.api, err = apiclient.New(cfg); err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if c.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if c.meta, err = metadata.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	c.contextNamespace = contextNamespace(cc, o.overrides.CurrentContext)
	c.namespace = firstOf(o.overrides.Context.Namespace, c.contextNamespace, defaultNamespace)
	c.workloadNS = firstOf(o.workloadNamespace, c.contextNamespace, metav1.NamespaceDefault)
	if o.release != "" {
		c.cronJob = cronJobOf(o.release)
	}
	c.logs, c.now = h.logs, h.now
	if c.logs == nil {
		c.logs = apiLogs{c.cs}
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// contextNamespace is the namespace the kubeconfig's context sets, "" when
// it sets none (kubectl would then use default).
func contextNamespace(cc clientcmd.ClientConfig, contextFlag string) string {
	raw, err := cc.RawConfig()
	if err != nil {
		return ""
	}
	name := firstOf(contextFlag, raw.CurrentContext)
	if ctx := raw.Contexts[name]; ctx != nil {
		return ctx.Namespace
	}
	return ""
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// notFoundHint explains a missing CronJob or ConfigMap: most often urunner
// lives in another namespace than the kubeconfig's.
func (c *cli) notFoundHint(err error, what string) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s not found in namespace %s: is urunner installed there? (-n NAMESPACE, --release or --cronjob)", what, c.namespace)
	}
	return fmt.Errorf("read %s in namespace %s: %w", what, c.namespace, err)
}

func printUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprint(w, `kubectl urunner: what urunner did and why, and a run on demand.

Usage:
  kubectl urunner status          the last run: when, exit code, counts, restarts, failures,
                                  failing images, quarantined digests, the last Jobs
  kubectl urunner plan [IMAGE[@sha256:DIGEST]]
                                  start a dry-run Job from the CronJob and print its plan and
                                  forecast: when each held workload restarts, and what holds it;
                                  with IMAGE (registry/repository:tag, as in the pods' specs;
                                  no tag means :latest) only that reference is looked up, and
                                  with @sha256:DIGEST the run takes DIGEST as just pushed to it
  kubectl urunner run             start a Job from the CronJob and follow its log;
                                  exit with the run's exit code
  kubectl urunner why KIND/NAME   a workload's urunner Events, restart annotations, and per
                                  container what urunner stored and believes it runs
                                  (KIND: deploy, sts, ds or rollout; -w for its namespace)
  kubectl urunner lift DIGEST     lift a digest's quarantine everywhere (needs write access to
                                  the state ConfigMap); a workload's urunner.io/lift-quarantine
                                  annotation lifts it in its namespace only
  kubectl urunner forget-ring REFERENCE RING
                                  forget a ring gone for good (its namespace disabled, its
                                  workloads deleted) so it no longer holds the rings after it;
                                  needs rights to update urunner's state ConfigMap
  kubectl urunner version

Flags:
`)
	fmt.Fprint(w, fs.FlagUsages())
}
