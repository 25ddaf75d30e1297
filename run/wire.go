package run

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/kube/apiclient"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/signature"
	"github.com/urunner/urunner/state"
	"github.com/urunner/urunner/state/configmaps"
)

// Hooks is what the program passes a run beside its arguments: its
// version; and, for tests only, ways to observe the real clients and pass
// their own settings.
type Hooks struct {
	// Version is the program's, as built (-ldflags "-X main.version=…"):
	// printed by --version and sent as the registries' User-Agent.
	Version string
	// wrapKube wraps the Kubernetes API transport (to count requests).
	wrapKube func(http.RoundTripper) http.RoundTripper
	// loadConfig, when set, replaces loadConfig, and lookupEnv, when set,
	// replaces os.LookupEnv for the variables a run reads by name (the
	// registries' credentials): the end-to-end tests pass each test's own
	// settings this way instead of through the process environment, which
	// all tests share, so that they can run in parallel.
	loadConfig func() (Config, error)
	lookupEnv  func(string) (string, bool)
	// now, when set, is the run's clock (the foresight's test runs the
	// scheduled runs of an hour in seconds); the API server's clock, which
	// judges rollouts, stays real.
	now func() time.Time
}

// clock is the run's clock: time.Now but in tests.
func (h Hooks) clock() func() time.Time {
	if h.now != nil {
		return h.now
	}
	return time.Now
}

// version is the program's version, "dev" when none was built in.
func (h Hooks) version() string {
	if h.Version == "" {
		return "dev"
	}
	return h.Version
}

// lookup is the run's view of the environment's variables.
func (h Hooks) lookup() func(string) (string, bool) {
	if h.lookupEnv != nil {
		return h.lookupEnv
	}
	return os.LookupEnv
}

// app is one run's wiring.
type app struct {
	cfg      Config
	opts     options
	settings policy.Settings
	log      *slog.Logger
	out      io.Writer    // the dry run's plan, the JSON report
	kube     *kube.Client // workloads and pods, on the PATCHes' rate limit
	store    *state.Store
	resolver *registry.Resolver
	signer   *signature.Policy // nil without a signature policy
	clock    *serverClock
	now      func() time.Time
	// tell is the run's reporter: the stages note facts, it tells them.
	tell *reporter
}

// wire builds one run's clients from cfg and its parsed opts: the
// Kubernetes clients, the state store and the resolver.
func wire(cfg Config, opts options, log *slog.Logger, out io.Writer, h Hooks) (*app, error) {
	warnTrust(cfg, opts, log)
	rc, ns, clock, err := apiConfig(cfg, h)
	if err != nil {
		return nil, err
	}
	// REST clients of the built-in groups urunner uses, not client-go's
	// Clientset, whose every API group cost the binary 33 MiB and each run
	// 16 MiB (kube/apiclient).
	cs, err := apiclient.New(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	// Events get a client of their own, so their writes never slow the
	// restarts down by sharing the PATCHes' rate limit.
	ecs, err := apiclient.New(rest.CopyConfig(rc))
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	// Custom resources (Argo Rollouts) are read as JSON by the dynamic
	// client, with the same wrappers (server clock, test counters).
	dyn, err := dynamic.NewForConfig(rest.CopyConfig(rc))
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if cfg.StateNamespace != "" {
		ns = cfg.StateNamespace
	}
	res, err := registry.NewResolver(registry.Options{
		Hosts:       opts.hosts,
		Accept:      opts.accept,
		Concurrency: cfg.RegistryConcurrency,
		Timeout:     cfg.RegistryTimeout,
		Log:         log,
		UserAgent:   "urunner/" + h.version(),
	})
	if err != nil {
		return nil, badConfig("URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH: %v", err)
	}
	var events *eventQueue
	if cfg.Events {
		events = &eventQueue{client: kube.New(ecs), log: log}
	}
	return &app{
		cfg:      cfg,
		opts:     opts,
		settings: opts.settings,
		log:      log,
		out:      out,
		kube:     kube.New(cs).WithDynamic(dyn),
		store:    state.NewStore(configmaps.New(cs), ns, cfg.StateConfigMap),
		resolver: res,
		signer:   opts.signer,
		clock:    clock,
		now:      h.clock(),
		tell:     newReporter(log, events, cfg.DryRun),
	}, nil
}

// warnTrust warns about each trust the configuration weakens on purpose.
func warnTrust(cfg Config, opts options, log *slog.Logger) {
	for _, h := range opts.hosts {
		if h.SkipVerify && !h.PlainHTTP {
			log.Warn("TLS verification is off for this registry, as configured", "registry", h.Name)
		}
	}
	if cfg.SignatureRoot != "" && !cfg.SignatureTlog {
		log.Warn("keyless signatures are trusted on a timestamp alone: no transparency log entry is required, as configured (URUNNER_CONF_SIGNATURE_TLOG=false)")
	}
}

// apiConfig is the Kubernetes API client configuration (kubeConfig's, with
// urunner's rate limits, user agent and wire format, and the server clock
// and test hooks wrapped around its transport), the namespace the state
// lives in by default, and the server clock.
func apiConfig(cfg Config, h Hooks) (*rest.Config, string, *serverClock, error) {
	rc, ns, err := kubeConfig(cfg)
	if err != nil {
		return nil, "", nil, err
	}
	rc.QPS, rc.Burst = cfg.KubeQPS, cfg.KubeBurst
	rc.UserAgent = "urunner/" + h.version()
	// Protobuf: a LIST of thousands of workloads decodes several times
	// faster, and lighter, than JSON.
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	clock := &serverClock{}
	rc.Wrap(clock.wrap)
	if h.wrapKube != nil {
		rc.Wrap(h.wrapKube)
	}
	return rc, ns, clock, nil
}

// kubeConfig returns the API client configuration and the namespace the
// state lives in by default.
func kubeConfig(cfg Config) (*rest.Config, string, error) {
	// kube.ClientConfig, which the receiver calls too; its errors are the
	// configuration's (exit code 2).
	rc, ns, err := kube.ClientConfig(cfg.KubeAuth)
	if err != nil {
		return nil, "", badConfig("%v", err)
	}
	return rc, ns, nil
}

// serverClock keeps the API server's time (its Date header) of the first
// answer since it was last started: the time a listing was taken, in the
// clock workloads' creation times are written in.
type serverClock struct {
	mu      sync.Mutex
	started bool
	first   time.Time
}

func (c *serverClock) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err == nil {
			if d, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
				c.mu.Lock()
				if c.started && c.first.IsZero() {
					c.first = d.UTC()
				}
				if at, ok := req.Context().Value(answeredKey{}).(*time.Time); ok {
					*at = d.UTC()
				}
				c.mu.Unlock()
			}
		}
		return resp, err
	})
}

type answeredKey struct{}

// answered returns ctx, whose requests note the API server's time of their
// answer, and that time (zero until one is answered; read it once they
// are).
func (c *serverClock) answered(ctx context.Context) (context.Context, func() time.Time) {
	at := new(time.Time)
	return context.WithValue(ctx, answeredKey{}, at), func() time.Time {
		c.mu.Lock()
		defer c.mu.Unlock()
		return *at
	}
}

// start forgets the last time taken and watches for the next answer.
func (c *serverClock) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started, c.first = true, time.Time{}
}

// taken returns the time of the first answer since start, or fallback.
func (c *serverClock) taken(fallback time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.first.IsZero() {
		return fallback.UTC().Truncate(time.Second)
	}
	return c.first
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
