package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/urunner/urunner/notify"
)

// runReport is a run as one JSON document: printed with
// URUNNER_CONF_REPORT=json, kept in the state ConfigMap (key last-run.json)
// by runs that write it, and the source of the Pushgateway counters.
type runReport struct {
	Version    int              `json:"version"`
	Cluster    string           `json:"cluster,omitempty"`
	Started    time.Time        `json:"started"`
	Duration   float64          `json:"durationSeconds"`
	ExitCode   int              `json:"exitCode"`
	DryRun     bool             `json:"dryRun"`
	Namespaces int              `json:"namespaces"`
	Workloads  int              `json:"workloads"`
	Images     int              `json:"images"`
	Resolved   int              `json:"resolved"`
	Changed    int              `json:"changed"`
	Restarted  int              `json:"restarted"`
	Baselined  int              `json:"baselined"`
	Held       int              `json:"held"`
	Failed     int              `json:"failed"`
	Requests   map[string]int   `json:"registryRequests"` // by method, all hosts
	Restarts   []notify.Restart `json:"restarts"`
	Failures   []notify.Failure `json:"failures"`
	Rollouts   []rolloutReport  `json:"rollouts,omitempty"`
	Error      string           `json:"error,omitempty"`
}

// storedReportItems bounds the lists of the report kept in the ConfigMap:
// the state must fit in 1 MiB whatever a run did.
const storedReportItems = 100

func (s summary) runReport(cluster string, code int, err error, requests map[string]map[string]int) runReport {
	r := runReport{
		Version: 1, Cluster: cluster, Started: s.start.UTC(), Duration: time.Since(s.start).Seconds(),
		ExitCode: code, DryRun: s.DryRun, Namespaces: s.Namespaces, Workloads: s.Workloads,
		Images: s.Images, Resolved: s.Resolved, Changed: s.Changed, Restarted: s.Restarted,
		Baselined: s.Baselined, Held: s.Held, Failed: s.Failed, Requests: map[string]int{},
		Restarts: s.restarts, Failures: s.failures, Rollouts: s.rollouts,
	}
	for _, m := range requests {
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

// stored returns the report as kept in the state ConfigMap, lists cut.
func (r runReport) stored() []byte {
	r.Restarts = r.Restarts[:min(len(r.Restarts), storedReportItems)]
	r.Failures = r.Failures[:min(len(r.Failures), storedReportItems)]
	b, _ := json.Marshal(r)
	return b
}

// pushMetrics replaces the urunner group of a Prometheus Pushgateway with
// this run's counters. A one-shot Job lives too briefly to be scraped.
func pushMetrics(ctx context.Context, gateway string, r runReport) error {
	u, err := url.Parse(gateway)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("URUNNER_CONF_PUSHGATEWAY_URL: not an http(s) URL")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/metrics/job/urunner"
	if r.Cluster != "" {
		u.Path += "/cluster/" + url.PathEscape(r.Cluster)
	}
	var b bytes.Buffer
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
	}
	gauge("urunner_run_timestamp_seconds", "When the last run started.", float64(r.Started.Unix()))
	gauge("urunner_run_duration_seconds", "How long the last run took.", r.Duration)
	gauge("urunner_run_exit_code", "Exit code of the last run (0 ok, 1 failed, 2 configuration).", float64(r.ExitCode))
	gauge("urunner_run_images", "Unique image tags looked up.", float64(r.Images))
	gauge("urunner_run_registry_head_requests", "Manifest HEAD requests sent.", float64(r.Requests["HEAD"]))
	gauge("urunner_run_workloads", "Workloads tracked.", float64(r.Workloads))
	gauge("urunner_run_restarts", "Workloads restarted.", float64(r.Restarted))
	gauge("urunner_run_held", "Restarts deferred by a cooldown or a maintenance window.", float64(r.Held))
	gauge("urunner_run_failures", "Failed lookups and restarts.", float64(r.Failed))
	if r.ExitCode == 0 {
		gauge("urunner_run_last_success_timestamp_seconds", "When the last successful run started.", float64(r.Started.Unix()))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), &b)
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

// unwrapURL drops url.Error's quoting of the full URL, which may carry
// credentials.
func unwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
