package run

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/urunner/urunner/exit"
	"github.com/urunner/urunner/notify"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/report"
	"github.com/urunner/urunner/state"
)

type failure = notify.Failure

// The run report's types are the report package's, shared with kubectl
// urunner.
type (
	runReport    = report.Run
	retraction   = report.Retraction
	ringProgress = report.RingProgress
	failingImage = report.FailingImage
)

// outcome is what a run did: its log line, report, metrics and
// notifications are made of it.
type outcome struct {
	start  time.Time
	dryRun bool

	namespaces, workloads             int
	images, resolved, lookupFailures  int
	changed, baselined, held          int
	restarted, restartFailures        int
	rolloutsFailed, rolloutsVerified  int
	namespaceErrors, pullSecretErrors int
	capped                            int
	capReason                         string
	signatureFailures                 int
	restarts                          []notify.Restart
	waiting                           []notify.Restart
	failures                          []stagedFailure
	rollouts                          []rolloutReport
	retractions                       []retraction
	rings                             []ringProgress
	lastSuccess                       time.Time
	failing                           []failingImage
	undelivered                       []report.Undelivered
	deliveryFailures                  int
	forecasts                         []report.Forecast
}

// failure adds f, found at stage s, to the run's failures.
func (o *outcome) failure(s stage, f failure) {
	o.failures = append(o.failures, stagedFailure{s, f})
}

// stagedFailure is a failure and where in the run it was found.
type stagedFailure struct {
	stage stage
	failure
}

// failureList is the run's failures, grouped by stage (see stage).
func (o *outcome) failureList() []failure {
	fs := slices.Clone(o.failures)
	slices.SortStableFunc(fs, func(x, y stagedFailure) int { return int(x.stage) - int(y.stage) })
	out := make([]failure, len(fs))
	for i, f := range fs {
		out[i] = f.failure
	}
	return out
}

// failed counts everything that went wrong.
func (o *outcome) failed() int {
	return o.lookupFailures + o.restartFailures + o.rolloutsFailed + o.namespaceErrors + o.pullSecretErrors + o.signatureFailures + o.deliveryFailures
}

// capErr is the cap's error, nil when it did not apply.
func (o *outcome) capErr() error {
	if o.capped == 0 {
		return nil
	}
	return fmt.Errorf("%s: none was restarted; raise the cap or run once with a higher one to apply them", o.capReason)
}

func (o *outcome) exitCode(err error) int {
	if err != nil || o.failed() > 0 || o.capped > 0 {
		return exit.Failed
	}
	return exit.OK
}

func failingImages(s state.State) []failingImage {
	var out []failingImage
	for _, k := range s.Keys() {
		if r := s.Refs[k]; !r.Failing.IsZero() {
			out = append(out, failingImage{Image: k, Since: r.Failing})
		}
	}
	return out
}

// report ends a run: the summary line, the JSON report, the metrics and the
// notifications. A webhook or a Pushgateway must not fail the run, nor be
// cut short by its end. It returns the exit code.
func (a *app) report(ctx context.Context, o *outcome, err error) int {
	if err != nil {
		a.log.Error("run failed", "error", err)
		o.failure(stageRun, failure{Error: err.Error()})
	}
	code := o.exitCode(err)
	budget := registries(a.resolver.Budget())
	a.log.Info("run finished", append([]any{
		"namespaces", o.namespaces, "workloads", o.workloads, "images", o.images,
		"resolved", o.resolved, "changed", o.changed, "restarted", o.restarted,
		"baselined", o.baselined, "held", o.held, "failed", o.failed(), "dry_run", o.dryRun,
		"duration", time.Since(o.start).Round(time.Millisecond).String()}, budgetAttrs(budget)...)...)
	rep := o.runReport(a.cfg.ClusterName, code, err, a.resolver)
	if a.cfg.Report == "json" {
		_ = json.NewEncoder(a.out).Encode(rep)
	}
	if a.cfg.PushgatewayURL != "" {
		if perr := pushMetrics(context.WithoutCancel(ctx), a.cfg.PushgatewayURL, metricsGroup(a.restricted()), a.store.Namespace(), a.cfg.StateConfigMap, rep); perr != nil {
			a.log.Warn("metrics not pushed", "error", perr)
		}
	}
	notify.New(notify.Options{WebhookURL: a.cfg.WebhookURL, SlackURL: a.cfg.SlackWebhookURL, Log: a.log}).
		Send(context.WithoutCancel(ctx), notify.Report{
			Cluster: a.cfg.ClusterName, Restarts: o.restarts, Waiting: o.waiting, Failures: o.failureList(),
			Namespaces: o.namespaces, Workloads: o.workloads, Images: o.images, Baselined: o.baselined,
			DryRun: o.dryRun, Duration: time.Since(o.start),
		})
	return code
}

// storedReportItems bounds the lists of the report kept in the ConfigMap:
// the state must fit in 1 MiB whatever a run did.
const storedReportItems = 100

// spending is what the run's registry requests cost, as the resolver
// counted them.
type spending interface {
	Requests() map[string]map[string]int
	Budget() []registry.Budget
}

func (o *outcome) runReport(cluster string, code int, err error, spent spending) runReport {
	r := runReport{
		Version: report.Version, Cluster: cluster, Started: o.start.UTC(), Duration: time.Since(o.start).Seconds(),
		ExitCode: code, DryRun: o.dryRun, Namespaces: o.namespaces, Workloads: o.workloads,
		Images: o.images, Resolved: o.resolved, Changed: o.changed, Restarted: o.restarted,
		Baselined: o.baselined, Held: o.held, Failed: o.failed(), LookupFailures: o.lookupFailures,
		RestartFailures: o.restartFailures, CapExceeded: o.capped > 0, RolloutsFailed: o.rolloutsFailed,
		RolloutsVerified: o.rolloutsVerified, Requests: map[string]int{},
		Restarts: o.restarts, Failures: o.failureList(), Rollouts: o.rollouts, FailingImages: o.failing,
		Retractions: o.retractions, Rings: o.rings, Waiting: o.waiting, Undelivered: o.undelivered,
		Registries: registries(spent.Budget()), Forecasts: o.forecasts,
	}
	if !o.lastSuccess.IsZero() {
		ls := o.lastSuccess
		r.LastSuccess = &ls
	}
	for _, m := range spent.Requests() {
		for method, n := range m {
			r.Requests[method] += n
		}
	}
	if r.Restarts == nil {
		r.Restarts = []notify.Restart{}
	}
	if r.Failures == nil {
		r.Failures = []notify.Failure{}
	}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// storedReport returns the report as kept in the state ConfigMap: lists
// cut, error strings bounded.
func storedReport(r runReport) []byte {
	r.Restarts = r.Restarts[:min(len(r.Restarts), storedReportItems)]
	r.Failures = slices.Clone(r.Failures[:min(len(r.Failures), storedReportItems)])
	for i := range r.Failures {
		r.Failures[i].Error = state.BoundError(r.Failures[i].Error)
	}
	r.FailingImages = r.FailingImages[:min(len(r.FailingImages), storedReportItems)]
	r.Retractions = r.Retractions[:min(len(r.Retractions), storedReportItems)]
	r.Waiting = r.Waiting[:min(len(r.Waiting), storedReportItems)]
	r.Rings = r.Rings[:min(len(r.Rings), storedReportItems)]
	r.Registries = r.Registries[:min(len(r.Registries), storedReportItems)]
	r.Forecasts = slices.Clone(r.Forecasts[:min(len(r.Forecasts), storedReportItems)])
	for i := range r.Forecasts {
		fc := &r.Forecasts[i]
		fc.Waits = state.BoundError(fc.Waits)
		fc.Holds = slices.Clone(fc.Holds)
		for j := range fc.Holds {
			fc.Holds[j].Why = state.BoundError(fc.Holds[j].Why)
		}
	}
	r.Error = state.BoundError(r.Error)
	b, _ := json.Marshal(r)
	return b
}

// maxFailingSeries bounds the per-image series one push carries.
const maxFailingSeries = 100

// The Pushgateway job of each kind of run: a pushed run (restricted to
// URUNNER_CONF_REFERENCES) has a group of its own, so that it never
// replaces the gauges of the full runs the alerts read.
const (
	metricsJob       = "urunner"
	pushedMetricsJob = "urunner-push"
)

func metricsGroup(restricted bool) string {
	if restricted {
		return pushedMetricsJob
	}
	return metricsJob
}

// pushMetrics replaces the run's group of a Prometheus Pushgateway with
// this run's gauges. A one-shot Job lives too briefly to be scraped. The
// group is keyed by job (urunner for full runs, urunner-push for pushed
// ones), the state's namespace (two installs in one cluster keep apart),
// its ConfigMap when it is not the default one (two releases in one
// namespace keep apart too: label state) and the cluster name when set.
func pushMetrics(ctx context.Context, gateway, job, namespace, configMap string, r runReport) error {
	u, err := metricsGroupURL(gateway, job, namespace, configMap, r.Cluster)
	if err != nil {
		return err
	}
	b := metricsText(job, r)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), b)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("push metrics to %s: %w", u.Host, unwrapURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("push metrics to %s: %s", u.Host, resp.Status)
	}
	return nil
}

// metricsGroupURL is the Pushgateway URL of the run's group (see
// pushMetrics for its keys).
func metricsGroupURL(gateway, job, namespace, configMap, cluster string) (*url.URL, error) {
	u, err := url.Parse(gateway)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("URUNNER_CONF_PUSHGATEWAY_URL: not an http(s) URL")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/metrics/job/" + job + "/namespace/" + url.PathEscape(namespace)
	if configMap != defaultStateConfigMap {
		u.Path += "/state/" + url.PathEscape(configMap)
	}
	if cluster != "" {
		u.Path += "/cluster/" + url.PathEscape(cluster)
	}
	return u, nil
}

// metricsText is the run's gauges in Prometheus' text format.
func metricsText(job string, r runReport) *bytes.Buffer {
	var b bytes.Buffer
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
	}
	boolean := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	gauge("urunner_run_timestamp_seconds", "When the last run started.", float64(r.Started.Unix()))
	gauge("urunner_run_duration_seconds", "How long the last run took.", r.Duration)
	gauge("urunner_run_exit_code", "Exit code of the last run (0 ok, 1 failed, 2 configuration).", float64(r.ExitCode))
	if r.LastSuccess != nil && job == metricsJob {
		gauge("urunner_run_last_success_timestamp_seconds", "When the last successful run started.", float64(r.LastSuccess.Unix()))
	}
	gauge("urunner_run_images", "Unique image tags looked up.", float64(r.Images))
	gauge("urunner_run_registry_head_requests", "Manifest HEAD requests sent.", float64(r.Requests["HEAD"]))
	gauge("urunner_run_workloads", "Workloads watched.", float64(r.Workloads))
	gauge("urunner_run_restarts", "Workloads restarted.", float64(r.Restarted))
	gauge("urunner_run_held", "Restarts deferred by a hold.", float64(r.Held))
	gauge("urunner_run_failures", "Everything that failed in the run.", float64(r.Failed))
	gauge("urunner_run_lookup_failures", "Failed lookups.", float64(r.LookupFailures))
	gauge("urunner_run_restart_failures", "Failed restarts.", float64(r.RestartFailures))
	gauge("urunner_run_restart_cap_exceeded", "1 when more workloads would have restarted than URUNNER_CONF_MAX_RESTARTS allows.", boolean(r.CapExceeded))
	gauge("urunner_run_rollouts_failed", "Verified rollouts that failed.", float64(r.RolloutsFailed))
	gauge("urunner_run_rollouts_verified", "Rollouts verified.", float64(r.RolloutsVerified))
	gauge("urunner_run_undelivered", "Restarted containers whose ready pods run another digest than the one restarted for.", float64(len(r.Undelivered)))
	registryMetrics(&b, r.Registries)
	if len(r.FailingImages) > 0 {
		const name = "urunner_image_lookup_failing_since_timestamp_seconds"
		fmt.Fprintf(&b, "# HELP %s Since when every lookup of the image has failed.\n# TYPE %s gauge\n", name, name)
		for _, f := range r.FailingImages[:min(len(r.FailingImages), maxFailingSeries)] {
			fmt.Fprintf(&b, "%s{image=%q} %d\n", name, f.Image, f.Since.Unix())
		}
	}
	return &b
}

// unwrapURL drops url.Error's quoting of the full URL, which may carry
// credentials.
func unwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
