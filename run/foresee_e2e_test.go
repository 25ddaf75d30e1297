package run

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/report"
)

// The plan's foresight against what the runs then do: soak, rings, a
// window, a cooldown, approval and the cap together, on the real API
// server and controller manager. The runs' clock is set to the times the
// CronJob would start them ("*/5 * * * *"), so that an hour of runs takes
// seconds; the controller manager rolls the restarts out for real between
// them, as the foresight assumes.
//
// From T0, a 5-minute boundary, with the cap at 2 restarts per 12 minutes:
// ring 0 restarts at T0+5; the rest is ring 1: its plain workload follows
// at +10; the soaking workload (5 minutes, after ring 0's healthy run at
// +10 too, as a ring's soak is its own) is due at +15 but capped (two
// restarts in the window: the run exits 1) until +20; the cooldown ends at +25; the window opens at +40; the unapproved one never
// restarts.
func TestThePlanForeseesWhatTheRunsDo(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	var mu sync.Mutex
	t0 := time.Now().UTC().Truncate(5 * time.Minute).Add(5 * time.Minute)
	clock := t0
	at := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		clock = t0.Add(d)
	}
	g.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}
	for k, v := range map[string]string{
		"URUNNER_CONF_REPORT": "json", "URUNNER_CONF_SCHEDULE": "*/5 * * * *", "URUNNER_CONF_APPROVAL": "approve",
		"URUNNER_CONF_MAX_RESTARTS": "2", "URUNNER_CONF_MAX_RESTARTS_WINDOW": "12m",
	} {
		g.setenv(k, v)
	}
	image := g.image("team/app:latest")
	g.push("team/app:latest", "v1")
	next := g.push("team/app:candidate", "v2") // the digest v2 will have under any tag
	ns := g.namespace(true)
	approved := annotate(policy.ApproveAnnotation, next)
	window := t0.Add(40*time.Minute).Format("15:04") + "-" + t0.Add(55*time.Minute).Format("15:04") + " UTC"
	restartedBefore := func(d *appsv1.Deployment) {
		d.Spec.Template.Annotations = map[string]string{kube.RestartedAtAnnotation: t0.Add(-5 * time.Minute).Format(time.RFC3339)}
	}
	workloads := map[string][]deployOpt{
		"ring0":    {ringed(0), approved},
		"ring1":    {ringed(1), approved},
		"soak":     {ringed(1), annotate(policy.SoakAnnotation, "5m"), approved},
		"cooldown": {ringed(1), annotate(policy.CooldownAnnotation, "30m"), restartedBefore, approved},
		"window":   {ringed(1), annotate(policy.WindowAnnotation, window), approved},
		// In ring 1 too: in ring 0 it would hold ring 1 for ever.
		"unapproved": {ringed(1)},
	}
	for name, opts := range workloads {
		g.deploy(ns, name, image, append(opts, replicas(0))...)
	}
	at(-4 * time.Minute)
	g.mustRun()

	// The plan, as `kubectl urunner plan IMAGE@DIGEST` starts it, before
	// the push.
	at(time.Minute)
	g.setenv("URUNNER_CONF_REFERENCES", image)
	g.setenv("URUNNER_CONF_PLAN_DIGEST", next)
	plan := g.mustRun("--dry-run")
	g.unsetenv("URUNNER_CONF_REFERENCES")
	g.unsetenv("URUNNER_CONF_PLAN_DIGEST")
	foreseen := forecastsOf(t, reportOf(t, plan).Forecasts, ns)
	if !strings.Contains(plan.logs, "FORECAST (runs on URUNNER_CONF_SCHEDULE \"*/5 * * * *\")") {
		t.Errorf("the plan prints no forecast table:\n%s", plan.logs)
	}
	for name, rule := range map[string]string{"ring1": "ring", "soak": "soak", "cooldown": "cooldown", "window": "window", "unapproved": "approval"} {
		if fc, ok := foreseen[name]; !ok || !slices.ContainsFunc(fc.Holds, func(h report.ForecastHold) bool { return h.Rule == rule }) {
			t.Errorf("the forecast of %s meets no %s hold: %+v", name, rule, fc)
		}
	}
	if fc := foreseen["soak"]; !slices.ContainsFunc(fc.Holds, func(h report.ForecastHold) bool { return h.Rule == "cap" }) {
		t.Errorf("the forecast of soak meets no cap: %+v", fc)
	}
	if fc := foreseen["unapproved"]; fc.Restarts != nil || fc.WaitsRule != "approval" ||
		!strings.Contains(fc.Waits, fmt.Sprintf("kubectl annotate deployment/unapproved -n %s urunner.io/approve=%s", ns, next)) {
		t.Errorf("the forecast of unapproved = %+v, want it waiting for approval, with the command", fc)
	}

	if got := g.push("team/app:latest", "v2"); got != next {
		t.Fatalf("v2 pushed as %s, planned as %s", got, next)
	}
	restarted := map[string]time.Time{}
	for run := 1; run <= 9; run++ {
		at(time.Duration(run) * 5 * time.Minute)
		o := g.run()
		if o.code != 0 && !(o.code == 1 && reportOf(t, o).CapExceeded) {
			t.Fatalf("run %d exited %d, want 0 (or 1, capped)", run, o.code)
		}
		for name := range workloads {
			g.settled("Deployment", ns, name)
			if _, done := restarted[name]; !done && g.restartedAt(ns, name) == g.now().Format(time.RFC3339) {
				restarted[name] = g.now()
			}
		}
		if run == 1 {
			// Each held workload's forecast, kept with the run's report
			// for kubectl urunner why, says what the plan said.
			kept := forecastsOf(t, g.storedReport().Forecasts, ns)
			for _, name := range []string{"ring1", "soak", "cooldown", "window", "unapproved"} {
				if got, want := kept[name].Restarts, foreseen[name].Restarts; !sameTime(got, want) {
					t.Errorf("run 1 foresees %s restarting at %v, the plan at %v:\n%s", name, got, want, o.logs)
				}
			}
		}
	}
	for name := range workloads {
		got, ok := restarted[name]
		want := foreseen[name].Restarts
		switch {
		case want == nil && ok:
			t.Errorf("%s restarted at %s, the plan foresaw no restart (%s)", name, got.Format(time.TimeOnly), foreseen[name].Waits)
		case want != nil && !got.Equal(*want):
			t.Errorf("%s restarted at %v, the plan foresaw %s", name, got.Format(time.TimeOnly), want.Format(time.TimeOnly))
		}
	}
	want := map[string]time.Duration{"ring0": 5, "ring1": 10, "soak": 20, "cooldown": 25, "window": 40}
	for name, m := range want {
		if got := restarted[name]; !got.Equal(t0.Add(m * time.Minute)) {
			t.Errorf("%s restarted at %v, want T0+%dm (%s)", name, got.Format(time.TimeOnly), m, t0.Add(m*time.Minute).Format(time.TimeOnly))
		}
	}
}

// forecastsOf returns the forecasts of namespace ns by workload name.
func forecastsOf(t *testing.T, fcs []report.Forecast, ns string) map[string]report.Forecast {
	t.Helper()
	out := map[string]report.Forecast{}
	for _, fc := range fcs {
		if fc.Namespace == ns {
			out[fc.Name] = fc
		}
	}
	return out
}

func sameTime(a, b *time.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
}
