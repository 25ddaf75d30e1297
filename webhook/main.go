package webhook

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/urunner/urunner/exit"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/kube/apiclient"
	"github.com/urunner/urunner/logging"
)

// Timeouts of the HTTP server: notifications are small, and a registry
// that holds a connection open must not hold the receiver.
const (
	readTimeout     = 30 * time.Second
	shutdownTimeout = 5 * time.Second
	syncTimeout     = 30 * time.Second
)

// prog is how the receiver names itself in its messages.
const prog = "urunner webhook"

// Main runs `urunner webhook` with args (after "webhook") and the process
// environment until ctx ends, and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(stdout) }
	if code, done := exit.Flags(fs, args); done {
		return code
	}
	if code, done := exit.StrayArgument(stderr, prog, fs); done {
		return code
	}
	cfg, err := loadConfig()
	if err != nil {
		return exit.BadConfig(stderr, prog, err)
	}
	log := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	if err := serve(ctx, cfg, log, nil); err != nil {
		var ce configError
		if errors.As(err, &ce) {
			return exit.BadConfig(stderr, prog, err)
		}
		log.Error("webhook receiver stopped", "err", err)
		return exit.Failed
	}
	return exit.OK
}

// configError is a configuration found wrong only when used.
type configError struct{ error }

// serve runs the receiver until ctx ends. listening, when set, is told the
// address once the server accepts connections (tests listen on :0).
func serve(ctx context.Context, cfg Config, log *slog.Logger, listening func(addr string)) error {
	cs, ns, err := kubeClient(cfg)
	if err != nil {
		return err
	}
	suspended, err := readSuspension(ctx, cs, ns, cfg.CronJob, log)
	if err != nil {
		return err
	}
	w, err := watchJobs(ctx, cs, ns, cfg, suspended, log)
	if err != nil {
		return err
	}
	defer w.stop()
	eps := cfg.endpoints()
	srv := newHTTPServer(cfg, eps, w, suspended, log)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return configError{fmt.Errorf("URUNNER_CONF_WEBHOOK_LISTEN: %w", err)}
	}
	names := make([]string, len(eps))
	for i, ep := range eps {
		names[i] = ep.name
	}
	log.Info("webhook receiver listening", "addr", ln.Addr().String(), "endpoints", strings.Join(names, ","),
		"cronjob", ns+"/"+cfg.CronJob, "debounce", cfg.Debounce)
	if listening != nil {
		listening(ln.Addr().String())
	}
	return serveUntilDone(ctx, srv, ln, w.trigger)
}

// kubeClient returns the API client and the namespace of the CronJob:
// URUNNER_CONF_WEBHOOK_NAMESPACE, else the client configuration's.
func kubeClient(cfg Config) (*apiclient.Clients, string, error) {
	rc, ns, err := kube.ClientConfig(cfg.KubeAuth)
	if err != nil {
		return nil, "", configError{err}
	}
	if cfg.Namespace != "" {
		ns = cfg.Namespace
	}
	cs, err := apiclient.New(rc)
	if err != nil {
		return nil, "", configError{fmt.Errorf("kubernetes client: %w", err)}
	}
	return cs, ns, nil
}

// readSuspension checks that the CronJob is there and readable, and
// returns whether it is suspended now (its watch, started by watchJobs,
// keeps it current).
func readSuspension(ctx context.Context, cs *apiclient.Clients, ns, cronJob string, log *slog.Logger) (*suspension, error) {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	cj, err := checkCronJob(ctx, cs, ns, cronJob)
	if err != nil {
		return nil, err
	}
	suspended := &suspension{log: log}
	suspended.set(ptr.Deref(cj.Spec.Suspend, false))
	return suspended, nil
}

// jobWatch is the receiver's view of the CronJob's Jobs (an informer) and
// the trigger that starts them.
type jobWatch struct {
	trigger *trigger
	synced  cache.InformerSynced
	stop    func()
}

// watchJobs starts the informer on the namespace's Jobs and the watch of
// the CronJob's suspension, waits for the informer's first listing, and
// returns the trigger it wakes. stop ends both watches.
func watchJobs(ctx context.Context, cs *apiclient.Clients, ns string, cfg Config, suspended *suspension, log *slog.Logger) (*jobWatch, error) {
	jobs := jobInformer(cs, ns)
	lister := batchlisters.NewJobLister(jobs.GetIndexer()).Jobs(ns)
	r := &cronRuns{cs: cs, namespace: ns, cronJob: cfg.CronJob, jobs: lister, log: log, suspended: suspended, created: map[string]time.Time{}}
	t := newTrigger(r, cfg.Debounce, cfg.MaxReferences, log)
	if _, err := jobs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { t.Wake() },
		UpdateFunc: func(any, any) { t.Wake() },
		DeleteFunc: func(any) { t.Wake() },
	}); err != nil {
		return nil, fmt.Errorf("watch Jobs: %w", err)
	}
	informerCtx, stopInformers := context.WithCancel(context.Background())
	var running sync.WaitGroup
	running.Go(func() { jobs.RunWithContext(informerCtx) })
	go suspended.watch(informerCtx, cs, ns, cfg.CronJob)
	w := &jobWatch{trigger: t, synced: jobs.HasSynced, stop: func() {
		// Wait for the informer, which stops only once told to.
		stopInformers()
		running.Wait()
	}}
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	synced := cache.WaitForCacheSync(syncCtx.Done(), w.synced)
	cancel()
	if !synced {
		w.stop()
		return nil, fmt.Errorf("list Jobs in namespace %s: the informer did not sync within %s (RBAC: list and watch jobs)", ns, syncTimeout)
	}
	return w, nil
}

// jobInformer is the informer of the Jobs in ns, as client-go's shared
// informer factory builds it (namespace index, no resync), over the lean
// clients.
func jobInformer(cs *apiclient.Clients, ns string) cache.SharedIndexInformer {
	jobs := cs.Jobs(ns)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return jobs.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return jobs.Watch(ctx, o)
		},
	}
	gvr := schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	return cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, cs), &batchv1.Job{},
		cache.SharedIndexInformerOptions{
			Indexers: cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
			// An unnamed informer's identifier, as the factory gives it.
			Identifier: (*cache.InformerName)(nil).WithResource(gvr),
		})
}

// newHTTPServer returns the server of the enabled endpoints eps, with the
// timeouts that keep a slow sender from holding the receiver.
func newHTTPServer(cfg Config, eps []endpoint, w *jobWatch, suspended *suspension, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler: (&server{
			maxBody:   cfg.MaxBodyBytes,
			push:      w.trigger,
			ready:     w.synced,
			suspended: suspended.get,
			log:       log,
			seen:      newIDSet(4096),
			reads:     make(chan struct{}, maxUnauthenticatedReads),
		}).handler(eps),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       readTimeout,
		WriteTimeout:      readTimeout,
	}
}

// serveUntilDone serves ln and runs the trigger until ctx ends or the
// server fails. It stops taking notifications first, then lets the
// trigger start what is pending.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener, t *trigger) error {
	triggerCtx, stopTrigger := context.WithCancel(context.Background())
	triggerDone := make(chan struct{})
	go func() {
		defer close(triggerDone)
		t.Run(triggerCtx)
	}()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var err error
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	stopTrigger()
	<-triggerDone
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
