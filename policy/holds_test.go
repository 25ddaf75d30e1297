package policy

import (
	"errors"
	"testing"
	"time"

	"github.com/urunner/urunner/state"
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
			if got := holdReason(Due{Run: &Run{Settings: tc.settings, Now: now}, Workload: tc.workload}); got != tc.want {
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

func TestSafetyHolds(t *testing.T) {
	nightly, err := ParseWindow("Mon-Fri 22:00-06:00")
	if err != nil {
		t.Fatal(err)
	}
	moved := func(ref, to string) []ContainerDecision {
		return []ContainerDecision{{Container: &Container{Name: "app", Ref: ref}, Verdict: Moved, To: to}}
	}
	seenAt := func(at time.Time) state.State {
		return state.State{Refs: map[string]state.Ref{app: {Digest: dB, Seen: at, Checked: at}}}
	}
	signed := func(v bool, reason string, err error) []ContainerDecision {
		m := moved(app, dB)
		m[0].Result = &Result{Digest: dB, Signature: &Signature{Verified: v, Reason: reason, Err: err}}
		return m
	}
	ns := func(k, v string) func(*Workload) {
		return func(w *Workload) { w.NamespaceAnnotations = map[string]string{k: v} }
	}
	ringed := func(n int) func(*Workload) { return func(w *Workload) { w.Ring = n } }
	quarantined := func(digest string) state.State {
		return state.State{Refs: map[string]state.Ref{app: {Digest: digest, Seen: now.Add(-2 * time.Hour), Checked: now}},
			Quarantines: map[string]state.Quarantine{digest: {Why: "rollout failed in shop/web", At: lastRun, Failed: map[string]time.Time{"shop": lastRun}}}}
	}
	fleet := NewFleet([]*Workload{workload(ringed(0)), workload(ringed(1)), workload(ringed(3))})
	healthySince := func(ring int, at time.Time) state.State {
		return state.State{Refs: map[string]state.Ref{app: {Digest: dB, Seen: now.Add(-2 * time.Hour), Checked: at, Rings: map[int]time.Time{ring: at}}}}
	}
	for _, tc := range []struct {
		name     string
		settings Settings
		workload *Workload
		mem      state.State
		fleet    *Fleet
		moves    []ContainerDecision
		want     string
	}{
		{"a digest seen this run soaks", Settings{Soak: time.Hour}, workload(), state.State{}, nil, moved(app, dB),
			"soaking: bbbbbbbbbbbb first seen at 2026-11-25T12:00:00Z, restarts once unchanged for 1h0m0s (at 2026-11-25T13:00:00Z)"},
		{"a digest seen long enough ago restarts", Settings{Soak: time.Hour}, workload(), seenAt(now.Add(-2 * time.Hour)), nil, moved(app, dB), ""},
		{"the namespace's soak overrides the setting", Settings{Soak: time.Hour}, workload(ns(SoakAnnotation, "10m")), seenAt(now.Add(-20 * time.Minute)), nil, moved(app, dB), ""},
		{"the workload's soak overrides its namespace's", Settings{}, workload(ns(SoakAnnotation, "10m"), annotated(SoakAnnotation, "1h")), seenAt(now.Add(-20 * time.Minute)), nil, moved(app, dB),
			"soaking: bbbbbbbbbbbb first seen at 2026-11-25T11:40:00Z, restarts once unchanged for 1h0m0s (at 2026-11-25T12:40:00Z)"},
		{"a malformed soak holds", Settings{}, workload(annotated(SoakAnnotation, "a while")), state.State{}, nil, moved(app, dB),
			`annotation urunner.io/soak="a while" is not a duration`},
		{"a verified signature lets it restart", Settings{RequireSignature: true}, workload(), state.State{}, nil, signed(true, "key cosign.pub", nil), ""},
		{"an unsigned digest is refused", Settings{RequireSignature: true}, workload(), state.State{}, nil, signed(false, "no cosign signature found for the digest", nil),
			"bbbbbbbbbbbb refused by the signature policy: no cosign signature found for the digest"},
		{"a signature that cannot be read never passes", Settings{RequireSignature: true}, workload(), state.State{}, nil, signed(false, "", errors.New("registry unreachable")),
			"bbbbbbbbbbbb: signature could not be checked: registry unreachable"},
		{"ring 0 goes first", Settings{}, workload(ringed(0)), state.State{}, fleet, moved(app, dB), ""},
		{"ring 1 waits for ring 0", Settings{}, workload(ringed(1)), seenAt(now), fleet, moved(app, dB), "ring 1: waits for ring 0 to run bbbbbbbbbbbb healthily"},
		{"ring 1 follows ring 0 once it has run healthily for the soak", Settings{Soak: 30 * time.Minute}, workload(ringed(1)), healthySince(0, now.Add(-time.Hour)), fleet, moved(app, dB), ""},
		{"ring 1 waits for ring 0's soak", Settings{Soak: 30 * time.Minute}, workload(ringed(1)), healthySince(0, now.Add(-10*time.Minute)), fleet, moved(app, dB),
			"ring 1: ring 0 runs bbbbbbbbbbbb healthily since 2026-11-25T11:50:00Z, waits until 2026-11-25T12:20:00Z"},
		{"an empty ring is skipped: ring 3 waits for ring 1", Settings{}, workload(ringed(3)), healthySince(0, now), fleet, moved(app, dB), "ring 3: waits for ring 1 to run bbbbbbbbbbbb healthily"},
		{"notify mode never restarts", Settings{Approval: "notify"}, workload(), state.State{}, nil, moved(app, dB),
			"notify mode (URUNNER_CONF_APPROVAL=notify): urunner tells, a person restarts"},
		{"approve mode waits, saying how to approve", Settings{Approval: "approve"}, workload(), state.State{}, nil, moved(app, dB),
			"waiting for approval: kubectl annotate deployment/web -n shop urunner.io/approve=bbbbbbbbbbbb --overwrite"},
		{"approve mode restarts what the workload approves", Settings{Approval: "approve"}, workload(annotated(ApproveAnnotation, "sha256:bbbbbbb")), state.State{}, nil, moved(app, dB), ""},
		{"approve mode restarts what the namespace approves", Settings{Approval: "approve"}, workload(ns(ApproveAnnotation, "aaaaaaa,bbbbbbbbbb")), state.State{}, nil, moved(app, dB), ""},
		{"a prefix shorter than 7 approves nothing", Settings{Approval: "approve"}, workload(annotated(ApproveAnnotation, "bbb")), state.State{}, nil, moved(app, dB),
			"waiting for approval: kubectl annotate deployment/web -n shop urunner.io/approve=bbbbbbbbbbbb --overwrite"},
		// Where gates meet: the first that holds is the reason given.
		{"an approval does not lift a quarantine", Settings{Approval: "approve"}, workload(annotated(ApproveAnnotation, "bbbbbbb")), quarantined(dB), nil, moved(app, dB),
			"bbbbbbbbbbbb is quarantined since 2026-11-25T11:55:00Z: rollout failed in shop/web (to lift it in namespace shop: kubectl annotate deployment/web -n shop urunner.io/lift-quarantine=bbbbbbbbbbbb; everywhere: kubectl urunner lift bbbbbbbbbbbb)"},
		{"an approved digest still waits for the window", Settings{Approval: "approve", Window: nightly}, workload(annotated(ApproveAnnotation, "bbbbbbb")), state.State{}, nil, moved(app, dB),
			`outside the maintenance window "Mon-Fri 22:00-06:00"`},
		{"an approved digest still soaks", Settings{Approval: "approve", Soak: time.Hour}, workload(annotated(ApproveAnnotation, "bbbbbbb")), state.State{}, nil, moved(app, dB),
			"soaking: bbbbbbbbbbbb first seen at 2026-11-25T12:00:00Z, restarts once unchanged for 1h0m0s (at 2026-11-25T13:00:00Z)"},
		{"a soaked digest is still refused unsigned", Settings{RequireSignature: true, Soak: time.Hour}, workload(), seenAt(now.Add(-2 * time.Hour)), nil, signed(false, "no cosign signature found for the digest", nil),
			"bbbbbbbbbbbb refused by the signature policy: no cosign signature found for the digest"},
		{"a ring that may go still waits for its window", Settings{Window: nightly}, workload(ringed(1)), healthySince(0, now.Add(-time.Hour)), fleet, moved(app, dB),
			`outside the maintenance window "Mon-Fri 22:00-06:00"`},
		{"ring 1 never follows a quarantined digest, even with ring 0 healthy on it", Settings{}, workload(ringed(1)), func() state.State {
			st := healthySince(0, now.Add(-time.Hour))
			st.Quarantines = quarantined(dB).Quarantines
			return st
		}(), fleet, moved(app, dB), "bbbbbbbbbbbb is quarantined since 2026-11-25T11:55:00Z: rollout failed in shop/web (to lift it in namespace shop: kubectl annotate deployment/web -n shop urunner.io/lift-quarantine=bbbbbbbbbbbb; everywhere: kubectl urunner lift bbbbbbbbbbbb)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := holdReason(Due{Run: &Run{Settings: tc.settings, Mem: tc.mem, Now: now, Fleet: tc.fleet}, Workload: tc.workload, Moves: tc.moves})
			if got != tc.want {
				t.Errorf("hold = %q\nwant   %q", got, tc.want)
			}
		})
	}
}
