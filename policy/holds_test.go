package policy

import (
	"testing"
	"time"
)

func TestHolds(t *testing.T) {
	nightly, err := ParseWindow("Mon-Fri 22:00-06:00")
	if err != nil {
		t.Fatal(err)
	}
	restarted := func(at time.Time) func(*Workload) { return func(w *Workload) { w.RestartedAt = at } }
	for _, tc := range []struct {
		name     string
		settings Settings
		workload *Workload
		want     string
	}{
		{"no hold by default", Settings{}, workload(), ""},
		{"a paused Deployment waits", Settings{}, workload(func(w *Workload) { w.Paused = true }), "paused; the restart waits until it resumes"},
		{"within the cooldown since the last restart", Settings{Cooldown: 30 * time.Minute}, workload(restarted(now.Add(-10 * time.Minute))),
			"cooldown of 30m0s since the last restart at 2026-11-25T11:50:00Z"},
		{"after the cooldown", Settings{Cooldown: 30 * time.Minute}, workload(restarted(now.Add(-31 * time.Minute))), ""},
		{"a cooldown with no restart yet", Settings{Cooldown: 30 * time.Minute}, workload(), ""},
		{"the cooldown annotation overrides the setting", Settings{Cooldown: time.Hour},
			workload(restarted(now.Add(-10*time.Minute)), annotated(CooldownAnnotation, "5m")), ""},
		{"a malformed cooldown annotation holds", Settings{}, workload(restarted(now), annotated(CooldownAnnotation, "soon")),
			`annotation urunner.io/cooldown="soon" is not a duration`},
		{"a restart time a little in the future counts as now", Settings{Cooldown: 30 * time.Minute}, workload(restarted(now.Add(time.Minute))),
			"cooldown of 30m0s since the last restart at 2026-11-25T12:00:00Z"},
		{"a restart time hours in the future is not believed and holds nothing", Settings{Cooldown: 30 * time.Minute},
			workload(restarted(now.Add(48 * time.Hour))), ""},
		{"outside the maintenance window (Wednesday noon)", Settings{Window: nightly}, workload(), `outside the maintenance window "Mon-Fri 22:00-06:00"`},
		{"the window annotation overrides the setting", Settings{Window: nightly}, workload(annotated(WindowAnnotation, "Wed 11:00-13:00")), ""},
		{"a malformed window annotation holds", Settings{}, workload(annotated(WindowAnnotation, "lunchtime")),
			`annotation urunner.io/window: window: "lunchtime" is not a day or day range (Mon-Fri, Sat,Sun)`},
		{"a paused workload in its cooldown says paused first", Settings{Cooldown: time.Hour},
			workload(restarted(now), func(w *Workload) { w.Paused = true }), "paused; the restart waits until it resumes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := holdReason(Due{Settings: tc.settings, Workload: tc.workload, Now: now}); got != tc.want {
				t.Errorf("hold = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCapHoldsEveryRestartOverTheLimit(t *testing.T) {
	mk := func(a Action) *Decision { return &Decision{Workload: workload(), Action: a} }
	for _, tc := range []struct {
		name    string
		actions []Action
		max     int
		want    int
		held    int
	}{
		{"no cap", []Action{Restart, Restart, Restart}, 0, 0, 0},
		{"at the cap", []Action{Restart, Restart, Hold, Nothing}, 2, 0, 1},
		{"over the cap holds them all", []Action{Restart, Restart, Restart, Nothing}, 2, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ds []*Decision
			for _, a := range tc.actions {
				ds = append(ds, mk(a))
			}
			if got := Cap(ds, tc.max); got != tc.want {
				t.Errorf("Cap = %d, want %d", got, tc.want)
			}
			held := 0
			for _, d := range ds {
				if d.Action == Hold {
					held++
				}
			}
			if held != tc.held {
				t.Errorf("%d held, want %d", held, tc.held)
			}
		})
	}
}

func TestGitOpsAdviceOnlyWarnsForManagedWorkloads(t *testing.T) {
	managed := workload(func(w *Workload) { w.GitOps = "Flux" })
	if GitOpsAdvice(Settings{GitOps: "warn"}, managed) == "" {
		t.Error("no advice for a Flux-managed workload with GitOps=warn")
	}
	if got := GitOpsAdvice(Settings{GitOps: "ignore"}, managed); got != "" {
		t.Errorf("advice with GitOps=ignore: %q", got)
	}
	if got := GitOpsAdvice(Settings{GitOps: "warn"}, workload()); got != "" {
		t.Errorf("advice for an unmanaged workload: %q", got)
	}
}
