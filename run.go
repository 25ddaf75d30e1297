package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	corev1 "k8s.io/api/core/v1"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/regclient/regclient/types/ref"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/notify"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/state"
)

// Exit codes, documented in --help and the README.
const (
	exitOK     = 0
	exitFailed = 1
	exitConfig = 2
)

// hooks lets tests observe the real clients; production passes none.
type hooks struct {
	// wrapKube wraps the Kubernetes API transport (to count requests).
	wrapKube func(http.RoundTripper) http.RoundTripper
}

// patchWorkers bounds concurrent PATCHes; client-go's QPS limiter is the
// real throttle, this only keeps requests in flight while one is slow.
const patchWorkers = 8

// Main runs urunner with args and the process environment and returns the
// exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, h hooks) int {
	fs := flag.NewFlagSet("urunner", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	dryRun := fs.Bool("dry-run", false, "report what would restart; change nothing (same as URUNNER_CONF_DRY_RUN=true)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (for benchmarks)")
	memProfile := fs.String("memprofile", "", "write a heap profile at the end of the run to this file (for benchmarks)")
	fs.Usage = func() { printUsage(stdout) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if *showVersion {
		fmt.Fprintln(stdout, "urunner", version)
		return exitOK
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "urunner: unexpected argument %q (configuration is read from the environment, see --help)\n", fs.Arg(0))
		return exitConfig
	}

	cfg, err := loadConfig()
	if err != nil {
		// A plain line: the logging settings themselves may be what is wrong.
		fmt.Fprintf(stderr, "urunner: bad configuration: %v\n", err)
		return exitConfig
	}
	log := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	cfg.DryRun = cfg.DryRun || *dryRun
	cfg.warnDeprecated(log)

	a, err := wire(cfg, log, h)
	if a != nil {
		a.out = stdout
	}
	if err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "urunner: bad configuration: %v\n", err)
			return exitConfig
		}
		log.Error("cannot start", "error", err)
		return exitFailed
	}
	stopProfiles, err := startProfiles(*cpuProfile, *memProfile)
	if err != nil {
		fmt.Fprintf(stderr, "urunner: %v\n", err)
		return exitConfig
	}
	defer stopProfiles(log)
	ctx, cancel := context.WithTimeout(ctx, cfg.RunTimeout)
	defer cancel()
	s, err := a.run(ctx)
	s.log(log)
	if err != nil {
		log.Error("run failed", "error", err)
		s.failures = append(s.failures, notify.Failure{Error: err.Error()})
	}
	code := exitOK
	if err != nil || s.Failed > 0 {
		code = exitFailed
	}
	rep := s.runReport(cfg.ClusterName, code, err, a.resolver.Requests())
	if cfg.Report == "json" {
		_ = json.NewEncoder(stdout).Encode(rep)
	}
	if cfg.PushgatewayURL != "" {
		if perr := pushMetrics(context.WithoutCancel(ctx), cfg.PushgatewayURL, rep); perr != nil {
			log.Warn("metrics not pushed", "error", perr)
		}
	}
	// A webhook must not fail the run, nor be cut short by its end.
	notify.New(notify.Options{WebhookURL: cfg.WebhookURL, SlackURL: cfg.SlackWebhookURL, Log: log}).
		Send(context.WithoutCancel(ctx), s.report(cfg.ClusterName))
	return code
}

// app is one run's wiring.
type app struct {
	cfg      Config
	log      *slog.Logger
	events   *kube.Client // Events, on their own client rate limit
	queued   []queuedEvent
	queueMu  sync.Mutex
	risky    map[state.Key][]cachedRisk
	out      io.Writer // the dry run's plan
	kube     *kube.Client
	store    *state.Store
	resolver *registry.Resolver
	now      func() time.Time
}

func wire(cfg Config, log *slog.Logger, h hooks) (*app, error) {
	hosts, err := cfg.hosts()
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		if h.SkipVerify && !h.PlainHTTP {
			log.Warn("TLS verification is off for this registry, as configured", "registry", h.Name)
		}
	}
	rc, ns, err := kubeConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = cfg.KubeQPS, cfg.KubeBurst
	rc.UserAgent = "urunner/" + version
	if h.wrapKube != nil {
		rc.Wrap(h.wrapKube)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	// Events get a client of their own, so their writes never slow the
	// restarts down by sharing the PATCHes' rate limit.
	ecs, err := kubernetes.NewForConfig(rest.CopyConfig(rc))
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if cfg.StateNamespace != "" {
		ns = cfg.StateNamespace
	}
	res, err := registry.NewResolver(registry.Options{
		Hosts:       hosts,
		Accept:      cfg.acceptList(),
		Concurrency: cfg.RegistryConcurrency,
		Timeout:     cfg.RegistryTimeout,
		Log:         log,
		UserAgent:   "urunner/" + version,
	})
	if err != nil {
		return nil, badConfig("URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH: %v", err)
	}
	return &app{
		cfg:      cfg,
		log:      log,
		kube:     kube.New(cs),
		events:   kube.New(ecs),
		store:    state.NewStore(cs.CoreV1(), ns, cfg.StateConfigMap),
		resolver: res,
		now:      time.Now,
	}, nil
}

// kubeConfig returns the API client configuration and the namespace the
// state lives in by default.
func kubeConfig(cfg Config) (*rest.Config, string, error) {
	mode := cfg.KubeAuth
	if mode == "" {
		mode = "kubeconfig"
		if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
			mode = "incluster"
		}
	}
	if mode == "incluster" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, "", badConfig("URUNNER_CONF_KUBE_AUTH=incluster: %v", err)
		}
		ns := "default"
		if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
			ns = strings.TrimSpace(string(b))
		}
		return rc, ns, nil
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, "", badConfig("URUNNER_CONF_KUBE_AUTH=kubeconfig: %v", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	return rc, ns, nil
}

// summary is the run's one-line report, and what notifications list.
type summary struct {
	Namespaces, Workloads, Images, Resolved, Changed, Restarted, Baselined, Failed, Held int
	DryRun                                                                               bool
	start                                                                                time.Time
	restarts                                                                             []notify.Restart
	failures                                                                             []notify.Failure
	rollouts                                                                             []rolloutReport
	restartedWorkloads                                                                   []kube.Workload
}

// report is the summary as notifications carry it.
func (s summary) report(cluster string) notify.Report {
	return notify.Report{
		Cluster: cluster, Restarts: s.restarts, Failures: s.failures,
		Namespaces: s.Namespaces, Workloads: s.Workloads, Images: s.Images, Baselined: s.Baselined,
		DryRun: s.DryRun, Duration: time.Since(s.start),
	}
}

func (s summary) log(log *slog.Logger) {
	log.Info("run finished",
		"namespaces", s.Namespaces, "workloads", s.Workloads, "images", s.Images,
		"resolved", s.Resolved, "changed", s.Changed, "restarted", s.Restarted,
		"baselined", s.Baselined, "held", s.Held, "failed", s.Failed, "dry_run", s.DryRun,
		"duration", time.Since(s.start).Round(time.Millisecond).String())
}

// run is one pass: load state, discover, resolve, decide, restart, save.
// Nothing is patched or written before every input has been read, and a
// failure to read any input changes nothing.
func (a *app) run(ctx context.Context) (summary, error) {
	s := summary{start: a.now(), DryRun: a.cfg.DryRun}
	snap, err := a.store.Load(ctx)
	if err != nil {
		if errors.Is(err, state.ErrCorrupt) {
			return s, fmt.Errorf("%w; nothing was restarted and the ConfigMap was left as it is: fix or delete it (deleting makes the next run a baseline)", err)
		}
		return s, err
	}
	namespaces, err := a.kube.EnabledNamespaces(ctx)
	if err != nil {
		return s, err
	}
	kinds, _ := a.cfg.kinds()
	workloads, err := a.kube.Workloads(ctx, namespaces, kinds)
	if err != nil {
		return s, err
	}
	s.Namespaces, s.Workloads = len(namespaces), len(workloads)

	if a.cfg.GitOps == "skip" {
		workloads = slices.DeleteFunc(workloads, func(w kube.Workload) bool {
			if w.GitOps != "" {
				a.log.Debug("left alone: managed by "+w.GitOps+" (URUNNER_CONF_GITOPS=skip)", "namespace", w.Namespace, strings.ToLower(w.Kind), w.Name)
			}
			return w.GitOps != ""
		})
	}
	refs, obs := a.classify(workloads)
	lookups := make([]registry.Lookup, len(refs))
	for i, r := range refs {
		lookups[i] = registry.Lookup{Ref: r}
	}
	if a.cfg.PullSecretAuth {
		s.Failed += a.addPullCredentials(ctx, obs, lookups)
	}
	results := a.resolver.ResolveLookups(ctx, lookups)
	s.Images = len(results)
	rateLimited := map[string]bool{}
	for _, key := range slices.Sorted(maps.Keys(results)) {
		r := results[key]
		if r.Err == nil {
			s.Resolved++
			continue
		}
		s.Failed++
		host, _, _ := strings.Cut(key, "/")
		switch {
		case errors.Is(r.Err, registry.ErrHostFailed):
			// The host's one error line is already logged.
			a.log.Debug("lookup skipped", "image", key, "error", r.Err)
		case errors.Is(r.Err, registry.ErrRateLimited) && rateLimited[host]:
			a.log.Debug("lookup skipped", "image", key, "error", r.Err)
		case errors.Is(r.Err, registry.ErrRateLimited):
			rateLimited[host] = true
			a.log.Error("registry rate limit: it asked to retry later than this run can wait; skipping its images this run", "registry", host, "error", r.Err)
		default:
			a.log.Warn("lookup failed; workloads on this image keep their stored digest", "image", key, "error", r.Err)
		}
		s.failures = append(s.failures, notify.Failure{Image: key, Error: r.Err.Error()})
	}
	var running map[string]kube.Running
	if a.cfg.RunningPods {
		running, err = a.kube.Running(ctx, workloads)
		if err != nil {
			// Without the pods' view urunner decides as it would
			// without the feature: never a reason to restart more.
			a.log.Warn("cannot read the pods' digests; deciding from the registry alone", "error", err)
			running = nil
		}
	}
	for i := range obs {
		run := running[keyOf(obs[i].Workload).String()]
		for j, c := range obs[i].Containers {
			if c.Image == "" {
				continue
			}
			obs[i].Containers[j].Digest = results[c.Image].Digest
			obs[i].Containers[j].Index = results[c.Image].Index
			obs[i].Containers[j].Running = run.Digests[c.Name]
			obs[i].Containers[j].AllReady = run.Pods > 0 && run.Ready == run.Pods
		}
	}

	if platforms := a.cfg.platforms(); len(platforms) > 0 {
		a.addChildren(ctx, snap.State, obs, results, lookups, platforms)
	}
	p := decide(snap.State, obs, decideOptions{skipCached: a.cfg.PullPolicy == "skip", now: a.now(), hold: a.hold,
		converge: a.cfg.FirstRun == "converge", platformAware: len(a.cfg.platforms()) > 0})
	if p.OtherPlatforms > 0 {
		a.log.Info("multi-platform images moved only for platforms not watched (URUNNER_CONF_PLATFORMS): recorded, not restarted", "containers", p.OtherPlatforms)
	}
	if p.AlreadyRunning > 0 {
		a.log.Info("moved images already running on every ready pod: recorded, not restarted", "containers", p.AlreadyRunning)
	}
	for _, h := range p.Held {
		a.log.Info("restart deferred: "+h.Reason, "namespace", h.Workload.Namespace, strings.ToLower(h.Workload.Kind), h.Workload.Name)
	}
	s.Held = len(p.Held)
	s.Baselined = p.Baselined
	for _, r := range p.Paused {
		for _, c := range r.Changes {
			a.log.Info("paused; restart deferred until it resumes", "namespace", r.Workload.Namespace,
				"deployment", r.Workload.Name, "container", c.Container, "image", c.Image, "from", c.From, "to", c.To)
		}
	}
	for _, r := range p.Restarts {
		s.Changed += len(r.Changes)
	}
	if a.cfg.DryRun {
		for _, r := range p.Restarts {
			a.logRestart("would restart", r)
		}
		printPlan(a.out, snap.State, obs, results, p)
		return s, nil
	}
	a.risky = a.warnCached(p.Cached)
	if a.cfg.Events {
		a.lookupFailureEvents(obs, results)
	}

	var capErr error
	if max := a.cfg.MaxRestarts; max > 0 && len(p.Restarts) > max {
		// A registry migration or a rebuilt base image can move every
		// digest at once; rolling the whole fleet is a human's decision.
		// The moved entries keep their old digests, so raising the cap
		// (or a manual run with a higher one) restarts them later.
		capErr = fmt.Errorf("%d workloads would restart, more than URUNNER_CONF_MAX_RESTARTS=%d: none was restarted; raise the cap or run once with a higher one to apply them", len(p.Restarts), max)
		p.Restarts = nil
	}
	a.warnGitOps(p.Restarts)
	restarted, failed := a.restartAll(ctx, p.Restarts, &p.Changes, &s)
	s.Restarted, s.Failed = restarted, s.Failed+failed

	// Save even when the run was cancelled (SIGTERM, deadline): the
	// patches already made must be remembered, or the next run would
	// restart those workloads again. 10s fits Kubernetes' default 30s
	// termination grace period. The state goes first; Events and the
	// rollout wait come after, as they cannot lose anything.
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if p.Changes.Len() > 0 || !snap.Exists {
		p.Changes.SetReport(s.runReport(a.cfg.ClusterName, exitOK, nil, a.resolver.Requests()).stored())
		if err := a.store.Save(saveCtx, snap, &p.Changes); err != nil {
			return s, err
		}
	}
	a.flushEvents(ctx)
	if a.cfg.VerifyRollout && len(s.restartedWorkloads) > 0 {
		s.Failed += a.verifyRollouts(ctx, &s)
		a.flushEvents(ctx)
		// The rollouts' outcome joins the report kept in the state.
		var report state.Changes
		report.SetReport(s.runReport(a.cfg.ClusterName, exitOK, nil, a.resolver.Requests()).stored())
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer rcancel()
		if err := a.store.Save(rctx, snap, &report); err != nil {
			a.log.Warn("rollout results not kept in the state", "error", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return s, fmt.Errorf("run stopped early (%w: SIGTERM or URUNNER_CONF_RUN_TIMEOUT); what was done is saved, the rest waits for the next run", err)
	}
	return s, capErr
}

// addPullCredentials gives each lookup the credentials of the first
// workload's pull secrets that name its registry. It returns the number of
// workloads whose secrets could not be read; their lookups go on without.
func (a *app) addPullCredentials(ctx context.Context, obs []observation, lookups []registry.Lookup) (failed int) {
	index := make(map[string]int, len(lookups))
	for i, l := range lookups {
		index[registry.Key(l.Ref)] = i
	}
	ps := a.kube.NewPullSecrets()
	for _, o := range obs {
		var auths []kube.RegistryAuth
		read := false
		for _, c := range o.Containers {
			i, ok := index[c.Image]
			if !ok || lookups[i].Pull != nil {
				continue
			}
			if !read {
				var err error
				auths, err = ps.For(ctx, o.Workload)
				read = true
				if err != nil {
					failed++
					a.log.Error("cannot read the workload's pull secrets; its images are looked up without them",
						"namespace", o.Workload.Namespace, strings.ToLower(o.Workload.Kind), o.Workload.Name, "error", err)
				}
			}
			for _, au := range auths {
				if registry.ServerHost(au.Server) == lookups[i].Ref.Registry {
					lookups[i].Pull = &registry.Credentials{User: au.Username, Password: au.Password}
					a.log.Debug("lookup authenticated by a pull secret", "image", c.Image, "secret", au.Source)
					break
				}
			}
		}
	}
	return failed
}

// classify parses every container image once and returns the unique refs
// to resolve and the observations to fill with their results.
func (a *app) classify(workloads []kube.Workload) ([]ref.Ref, []observation) {
	type parsed struct {
		key string // "" = not tracked
		r   ref.Ref
	}
	cache := map[string]parsed{}
	var refs []ref.Ref
	obs := make([]observation, 0, len(workloads))
	for _, w := range workloads {
		o := observation{Workload: w, Containers: make([]observed, 0, len(w.Containers))}
		for _, c := range w.Containers {
			img := a.unpinned(w, c)
			p, seen := cache[img]
			if !seen {
				r, err := registry.ParseImage(img)
				switch {
				case err != nil:
					a.log.Warn("image skipped: not a registry image reference", "namespace", w.Namespace, "deployment", w.Name, "container", c.Name, "image", c.Image, "error", err)
				case registry.Pinned(r):
					a.log.Debug("image skipped: pinned by digest", "image", c.Image)
				case !a.resolver.Watches(r):
					a.log.Debug("image skipped: registry not watched", "image", c.Image, "registry", r.Registry)
				default:
					p = parsed{key: registry.Key(r), r: r}
					refs = append(refs, r)
				}
				cache[img] = p
			}
			o.Containers = append(o.Containers, observed{Name: c.Name, Image: p.key, PullPolicy: c.PullPolicy})
		}
		obs = append(obs, o)
	}
	return refs, obs
}

// addChildren fetches, once per moved or new multi-platform index, its
// children for the watched platforms (one GET of the index, never a layer)
// and gives them to the observations. In a steady state it fetches nothing.
func (a *app) addChildren(ctx context.Context, st state.State, obs []observation, results map[string]registry.Result, lookups []registry.Lookup, platforms []string) {
	need := map[string]bool{}
	for _, o := range obs {
		k := keyOf(o.Workload)
		for _, c := range o.Containers {
			r, ok := results[c.Image]
			if c.Image == "" || !ok || r.Err != nil || !r.Index {
				continue
			}
			if old, known := st.Get(k, c.Name); !known || old.Digest != r.Digest || old.Image != c.Image {
				need[c.Image] = true
			}
		}
	}
	children := map[string]map[string]string{}
	for _, l := range lookups {
		key := registry.Key(l.Ref)
		if !need[key] {
			continue
		}
		ch, err := a.resolver.Children(ctx, l.Ref, results[key].Digest, platforms)
		if err != nil {
			a.log.Warn("cannot read the index's platforms; a move restarts as without URUNNER_CONF_PLATFORMS", "image", key, "error", err)
			continue
		}
		children[key] = ch
	}
	for i := range obs {
		for j, c := range obs[i].Containers {
			if ch, ok := children[c.Image]; ok {
				obs[i].Containers[j].Children = ch
			}
		}
	}
}

// unpinned returns the image urunner tracks for c: in pin mode, an image
// urunner pinned itself (tag@digest, the digest it recorded on the
// workload) is tracked by its tag; any other image as written.
func (a *app) unpinned(w kube.Workload, c kube.Container) string {
	if a.cfg.RestartMode != "pin" {
		return c.Image
	}
	named, digest, ok := strings.Cut(c.Image, "@")
	if ok && digest != "" && w.RestartedFor[c.Name] == digest {
		return named
	}
	return c.Image
}

// pins returns, in pin mode, the images to set: each changed container's
// image as written, pinned to its new digest; nil otherwise.
func (a *app) pins(r restart) map[string]string {
	if a.cfg.RestartMode != "pin" {
		return nil
	}
	pins := map[string]string{}
	for _, ch := range r.Changes {
		for _, c := range r.Workload.Containers {
			if c.Name == ch.Container {
				named, _, _ := strings.Cut(c.Image, "@")
				pins[c.Name] = named + "@" + ch.To
			}
		}
	}
	return pins
}

// restartAll patches each workload once, a few at a time, and records the
// entries of the ones that succeeded.
func (a *app) restartAll(ctx context.Context, restarts []restart, changes *state.Changes, s *summary) (restarted, failed int) {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, patchWorkers)
	)
	at := a.now()
	for _, r := range restarts {
		// Stop starting new work once signalled, also when the signal
		// comes while waiting for a free worker.
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			a.log.Warn("run stopped; restart not attempted, stored digest kept", "namespace", r.Workload.Namespace, strings.ToLower(r.Workload.Kind), r.Workload.Name)
			mu.Lock()
			failed++
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// A PATCH once sent is seen through, even past SIGTERM: cut
			// off mid-answer, it would be applied but not remembered.
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			outcome, err := a.kube.Restart(pctx, r.Workload, at, r.digests(), a.pins(r))
			cancel()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failed++
				s.failures = append(s.failures, notify.Failure{Namespace: r.Workload.Namespace, Kind: r.Workload.Kind, Name: r.Workload.Name, Error: err.Error()})
				a.log.Error("restart failed; stored digest kept, next run retries", "namespace", r.Workload.Namespace, strings.ToLower(r.Workload.Kind), r.Workload.Name, "error", err)
				a.queueEvent(r.Workload, corev1.EventTypeWarning, kube.ReasonRestartFailed, fmt.Sprintf("urunner could not restart it: %v", err), err.Error())
			case outcome == kube.NowPaused:
				a.log.Info("paused since listed; restart deferred", "namespace", r.Workload.Namespace, "deployment", r.Workload.Name)
			case outcome == kube.AlreadyRestarted:
				r.record(changes, a.restartTime(r.Workload, at))
				a.log.Info("already restarted for this digest by another run", "namespace", r.Workload.Namespace, strings.ToLower(r.Workload.Kind), r.Workload.Name)
			default:
				r.record(changes, a.restartTime(r.Workload, at))
				restarted++
				s.restartedWorkloads = append(s.restartedWorkloads, r.Workload)
				a.logRestart("restarted", r)
				for _, c := range r.Changes {
					s.restarts = append(s.restarts, notify.Restart{Namespace: r.Workload.Namespace, Kind: r.Workload.Kind, Name: r.Workload.Name,
						Container: c.Container, Image: c.Image, From: c.From, To: c.To})
				}
				a.restartEvent(r)
			}
		}()
	}
	wg.Wait()
	return restarted, failed
}

func (a *app) logRestart(msg string, r restart) {
	for _, c := range r.Changes {
		a.log.Info(msg, "namespace", r.Workload.Namespace, strings.ToLower(r.Workload.Kind), r.Workload.Name,
			"container", c.Container, "image", c.Image, "from", c.From, "to", c.To)
	}
}
