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
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/urunner/urunner/exit"
	"github.com/urunner/urunner/kube"
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
	rc, ns, err := kube.ClientConfig(cfg.KubeAuth)
	if err != nil {
		return configError{err}
	}
	if cfg.Namespace != "" {
		ns = cfg.Namespace
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return configError{fmt.Errorf("kubernetes client: %w", err)}
	}
	checkCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	cj, err := checkCronJob(checkCtx, cs, ns, cfg.CronJob)
	cancel()
	if err != nil {
		return err
	}
	suspended := &suspension{log: log}
	suspended.set(ptr.Deref(cj.Spec.Suspend, false))

	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	jobs := factory.Batch().V1().Jobs()
	r := &cronRuns{cs: cs, namespace: ns, cronJob: cfg.CronJob, jobs: jobs.Lister().Jobs(ns), log: log, suspended: suspended, created: map[string]time.Time{}}
	t := newTrigger(r, cfg.Debounce, cfg.MaxReferences, log)
	if _, err := jobs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { t.Wake() },
		UpdateFunc: func(any, any) { t.Wake() },
		DeleteFunc: func(any) { t.Wake() },
	}); err != nil {
		return fmt.Errorf("watch Jobs: %w", err)
	}
	informerCtx, stopInformers := context.WithCancel(context.Background())
	factory.Start(informerCtx.Done())
	go suspended.watch(informerCtx, cs, ns, cfg.CronJob)
	defer func() {
		// Shutdown waits for the informers, which stop only once told to.
		stopInformers()
		factory.Shutdown()
	}()
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	synced := cache.WaitForCacheSync(syncCtx.Done(), jobs.Informer().HasSynced)
	cancel()
	if !synced {
		return fmt.Errorf("list Jobs in namespace %s: the informer did not sync within %s (RBAC: list and watch jobs)", ns, syncTimeout)
	}

	eps := cfg.endpoints()
	srv := &http.Server{
		Handler: (&server{
			maxBody:   cfg.MaxBodyBytes,
			push:      t,
			ready:     jobs.Informer().HasSynced,
			suspended: suspended.get,
			log:       log,
			seen:      newIDSet(4096),
			reads:     make(chan struct{}, maxUnauthenticatedReads),
		}).handler(eps),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       readTimeout,
		WriteTimeout:      readTimeout,
	}
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

	triggerCtx, stopTrigger := context.WithCancel(context.Background())
	triggerDone := make(chan struct{})
	go func() {
		defer close(triggerDone)
		t.Run(triggerCtx)
	}()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err = <-served:
	case <-ctx.Done():
	}
	// Stop taking notifications first, then let the trigger start what
	// is pending, then stop watching.
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
