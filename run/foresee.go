package run

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/report"
	"github.com/urunner/urunner/state"
)

// maxForecasts bounds the workloads a run foresees: a moved base image
// held in notify mode holds every workload, and the forecasts of the
// first thousand say what the others' say; the report keeps fewer still
// (storedReportItems).
const maxForecasts = 1000

// foresightHorizon is how far a forecast looks: a week opens any weekly
// maintenance window, and a day more covers a run's latency.
const foresightHorizon = 8 * 24 * time.Hour

// takePlanDigest makes a dry run's "what if" (URUNNER_CONF_PLAN_DIGEST):
// the planned tag's lookups answer the planned digest, as if just pushed.
// What a run reads beyond a digest (platforms, signatures) is then read
// for it as for any digest, and fails closed when it is not there yet.
func (a *app) takePlanDigest(f *found) {
	p := a.opts.plan
	if p == nil {
		return
	}
	taken := 0
	for l := range f.results {
		if im, err := registry.Canonical(l.Ref); err == nil && im.Match == p.ref {
			f.results[l] = policy.Result{Digest: p.digest}
			taken++
		}
	}
	a.note(planDigestTaken{p.ref, p.digest, taken})
}

// foresee forecasts which run restarts each workload a move is due for: in
// a dry run each one, from the state as read (the next run starts from
// it); in a run the held ones, from the state it leaves, its own restarts
// done. It steps the policy itself over URUNNER_CONF_SCHEDULE (see
// policy.Foresee).
func (a *app) foresee(f *found, p *plan, mem state.State) {
	// A forecast only tells: whatever goes wrong in it must not cost the
	// run its save, which follows.
	defer func() {
		if r := recover(); r != nil {
			a.note(unforeseen{fmt.Sprint(r)})
		}
	}()
	var due []*policy.Workload
	var restarted []*policy.Decision
	for _, w := range f.workloads {
		d := w.final()
		switch {
		case d.Action == policy.Hold || a.cfg.DryRun && d.Action == policy.Restart:
			due = append(due, &w.seen().policy)
		case w.restarted():
			restarted = append(restarted, d)
		}
	}
	if len(due) == 0 {
		return
	}
	if len(due) > maxForecasts {
		a.note(forecastsCut{len(due)})
		due = due[:maxForecasts]
	}
	ws := make([]*policy.Workload, len(f.workloads))
	for i, w := range f.workloads {
		ws[i] = &w.seen().policy
	}
	now := a.now()
	fs := policy.Foresight{Settings: a.settings, Results: p.run.Results, Mem: mem, Workloads: ws, Failed: f.listing.Failed,
		Schedule: a.opts.schedule, Horizon: foresightHorizon, Restarted: restarted, RestartedAt: now}
	first := now
	if a.opts.schedule != nil {
		first = a.opts.schedule.Next(now)
	}
	a.note(foreseen{fs.Foresee(due, first), now, a.cfg.Schedule})
}

// forecastDoc is a forecast as the report says it.
func forecastDoc(fc policy.Forecast, at time.Time) report.Forecast {
	w := fc.Workload
	doc := report.Forecast{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name, Image: fc.Ref, Digest: fc.To,
		Waits: fc.Waits, WaitsRule: fc.WaitsRule, ForeseenAt: at.UTC()}
	if !fc.At.IsZero() {
		t := fc.At.UTC()
		doc.Restarts = &t
	}
	for _, h := range fc.Holds {
		fh := report.ForecastHold{Rule: h.Rule, Why: h.Why, From: h.From.UTC()}
		if !h.Until.IsZero() {
			u := h.Until.UTC()
			fh.Until = &u
		}
		doc.Holds = append(doc.Holds, fh)
	}
	return doc
}

// printForecasts writes the dry run's forecast table: for each workload a
// move is due for, the run that restarts it and the holds until then, or
// what it waits for.
func printForecasts(w io.Writer, fcs []report.Forecast, schedule string) {
	if len(fcs) == 0 {
		return
	}
	runs := "runs on URUNNER_CONF_SCHEDULE " + fmt.Sprintf("%q", schedule)
	if schedule == "" {
		runs = "no URUNNER_CONF_SCHEDULE: the earliest time a run could"
	}
	fmt.Fprintf(w, "\nFORECAST (%s)\n", runs)
	tw := tabwriter.NewWriter(w, 1, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tIMAGE\tTO\tRESTARTS\tUNTIL THEN")
	for _, fc := range fcs {
		restarts := "-"
		if fc.Restarts != nil {
			restarts = fc.Restarts.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s/%s/%s\t%s\t%s\t%s\t%s\n", fc.Namespace, strings.ToLower(fc.Kind), fc.Name, fc.Image, short(fc.Digest), restarts, untilThen(fc))
	}
	_ = tw.Flush()
}

// untilThen says what holds a forecast until its restart, or what it
// waits for.
func untilThen(fc report.Forecast) string {
	var parts []string
	for _, h := range fc.Holds {
		s := h.Rule
		if h.Until != nil {
			s += " until " + h.Until.Format(time.RFC3339)
		}
		parts = append(parts, s)
	}
	out := strings.Join(parts, ", then ")
	if fc.Restarts == nil && fc.Waits != "" {
		if out != "" {
			out += "; "
		}
		out += "waits: " + fc.Waits
	}
	if out == "" {
		out = "nothing holds it"
	}
	return out
}
