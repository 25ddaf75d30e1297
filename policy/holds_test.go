package policy

import (
	"errors"
	"strings"
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
		return state.State{Refs: map[string]state.Ref{app: {Digest: digest, Seen: now.Add(-2 * time.Hour), Checked: now,
			Quarantine: map[string]string{digest: "rollout failed in shop/web"}}}}
	}
	// healthySince is a state in which the tag points at dB and ring
	// ring ran it healthily since at, as a run's listing saw it.
	healthySince := func(ring int, at time.Time) state.State {
		return state.State{Refs: map[string]state.Ref{app: {Digest: dB, Seen: now.Add(-2 * time.Hour), Checked: at, Rings: map[int]time.Time{ring: at}}}}
	}
	fleet := NewFleet([]*Workload{workload(ringed(0)), workload(ringed(1)), workload(ringed(3))}, nil)
	on := func(d string, healthy bool) func(*Workload) {
		return func(w *Workload) { restartedFor("app", app, d)(w); w.Healthy = healthy }
	}
	// ringsIn is this listing: ring 0 (canary in shop-canary) and ring 1
	// (web in shop), as mods make them.
	canary := func(mods ...func(*Workload)) *Workload {
		return named("canary", append([]func(*Workload){func(w *Workload) { w.Namespace = "shop-canary" }, ringed(0)}, mods...)...)
	}
	listed := func(failed map[string]bool, ws ...*Workload) *Fleet { return NewFleet(ws, failed) }
	known := func(st state.State, members map[int][]string) state.State {
		st = st.Clone()
		if st.Refs == nil {
			st.Refs = map[string]state.Ref{}
		}
		r := st.Refs[app]
		r.RingMembers = members
		st.Refs[app] = r
		return st
	}
	full := "kubectl annotate deployment/web -n shop urunner.io/approve=" + dB + " --overwrite"
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
		{"ring 1 waits for ring 0 still on the old digest", Settings{}, workload(ringed(1)), seenAt(now), listed(nil, canary(on(dA, true)), workload(ringed(1))), moved(app, dB),
			"ring 1: waits for ring 0 to run bbbbbbbbbbbb healthily (deployment/canary -n shop-canary runs aaaaaaaaaaaa)"},
		{"ring 1 follows in the run that sees ring 0 healthy on the digest (soak 0)", Settings{}, workload(ringed(1)), seenAt(now), listed(nil, canary(on(dB, true)), workload(ringed(1))), moved(app, dB), ""},
		{"ring 1 waits while this listing shows ring 0 unhealthy, whatever the state says", Settings{}, workload(ringed(1)), healthySince(0, now.Add(-time.Hour)),
			listed(nil, canary(on(dB, false)), workload(ringed(1))), moved(app, dB),
			"ring 1: waits for ring 0 to run bbbbbbbbbbbb healthily (deployment/canary -n shop-canary: rollout not complete)"},
		{"a ring 0 member seen for the first time is not known to run the digest", Settings{}, workload(ringed(1)), seenAt(lastRun),
			listed(nil, canary(on(dB, true)), named("new", ringed(0), func(w *Workload) { w.Created, w.Healthy = now, true }), workload(ringed(1))), moved(app, dB),
			"ring 1: waits for ring 0 to run bbbbbbbbbbbb healthily (deployment/new -n shop is new: what it runs is not known yet)"},
		{"ring 1 follows ring 0 once it has run healthily for the soak", Settings{Soak: 30 * time.Minute}, workload(ringed(1)), healthySince(0, now.Add(-time.Hour)),
			listed(nil, canary(on(dB, true)), workload(ringed(1))), moved(app, dB), ""},
		{"ring 1 waits for ring 0's soak, timed from the state", Settings{Soak: 30 * time.Minute}, workload(ringed(1)), healthySince(0, now.Add(-10*time.Minute)),
			listed(nil, canary(on(dB, true)), workload(ringed(1))), moved(app, dB),
			"ring 1: ring 0 runs bbbbbbbbbbbb healthily since 2026-11-25T11:50:00Z, waits until 2026-11-25T12:20:00Z"},
		{"ring 0 first seen healthy this run soaks from now", Settings{Soak: 30 * time.Minute}, workload(ringed(1)), seenAt(now.Add(-time.Hour)),
			listed(nil, canary(on(dB, true)), workload(ringed(1))), moved(app, dB),
			"ring 1: ring 0 runs bbbbbbbbbbbb healthily since 2026-11-25T12:00:00Z, waits until 2026-11-25T12:30:00Z"},
		{"an empty ring is skipped: ring 3 waits for ring 1", Settings{}, workload(ringed(3)), seenAt(now),
			listed(nil, canary(on(dB, true)), named("api", ringed(1), on(dB, false)), workload(ringed(3))), moved(app, dB),
			"ring 3: waits for ring 1 to run bbbbbbbbbbbb healthily (deployment/api -n shop: rollout not complete)"},
		{"every lower ring counts: ring 3 waits for ring 0 unhealthy with ring 1 healthy", Settings{}, workload(ringed(3)), seenAt(now),
			listed(nil, canary(on(dB, false)), named("api", ringed(1), on(dB, true)), workload(ringed(3))), moved(app, dB),
			"ring 3: waits for ring 0 to run bbbbbbbbbbbb healthily (deployment/canary -n shop-canary: rollout not complete)"},
		{"a known ring 0 missing from the listing holds ring 1", Settings{}, workload(ringed(1)), known(seenAt(now), map[int][]string{0: {"shop-canary"}, 1: {"shop"}}),
			listed(nil, workload(ringed(1))), moved(app, dB),
			"ring 1: waits — ring 0 of " + app + " (namespace shop-canary) is missing from this listing: not listed, disabled or deleted; if it is gone for good: kubectl urunner forget-ring " + app + " 0"},
		{"a known ring 0 whose namespace failed to list holds ring 1, its other members healthy", Settings{}, workload(ringed(1)),
			known(seenAt(now), map[int][]string{0: {"edge", "shop-canary"}, 1: {"shop"}}),
			listed(map[string]bool{"edge": true}, canary(on(dB, true)), workload(ringed(1))), moved(app, dB),
			"ring 1: waits — ring 0 of " + app + " (namespaces edge, shop-canary) is not fully listed: namespace edge failed to list (see the run's log)"},
		{"a ring never known before does not hold: ring 1 alone goes", Settings{}, workload(ringed(1)), seenAt(now), listed(nil, workload(ringed(1))), moved(app, dB), ""},
		{"a known ring above it does not hold", Settings{}, workload(ringed(1)), known(seenAt(now), map[int][]string{0: {"shop-canary"}, 1: {"shop"}, 2: {"late"}}),
			listed(nil, canary(on(dB, true)), workload(ringed(1))), moved(app, dB), ""},
		{"notify mode never restarts", Settings{Approval: "notify"}, workload(), state.State{}, nil, moved(app, dB),
			"notify mode (URUNNER_CONF_APPROVAL=notify): urunner tells, a person restarts"},
		{"approve mode waits, saying how to approve with the full digest", Settings{Approval: "approve"}, workload(), state.State{}, nil, moved(app, dB),
			"waiting for approval: " + full},
		{"the full digest approves", Settings{Approval: "approve"}, workload(annotated(ApproveAnnotation, dB)), state.State{}, nil, moved(app, dB), ""},
		{"the full digest's 64 hex alone approves", Settings{Approval: "approve"}, workload(annotated(ApproveAnnotation, " "+strings.TrimPrefix(dB, "sha256:"))), state.State{}, nil, moved(app, dB), ""},
		{"the namespace's approval with the full digest approves", Settings{Approval: "approve"}, workload(ns(ApproveAnnotation, dA+","+dB)), state.State{}, nil, moved(app, dB), ""},
		{"a 7-hex prefix is refused, saying why", Settings{Approval: "approve"}, workload(annotated(ApproveAnnotation, "bbbbbbb")), state.State{}, nil, moved(app, dB),
			"urunner.io/approve=bbbbbbb: a prefix approves nothing since urunner 0.4; approve the full digest: " + full},
		{"a 12-hex prefix with sha256: is refused too", Settings{Approval: "approve"}, workload(annotated(ApproveAnnotation, "sha256:bbbbbbbbbbbb")), state.State{}, nil, moved(app, dB),
			"urunner.io/approve=sha256:bbbbbbbbbbbb: a prefix approves nothing since urunner 0.4; approve the full digest: " + full},
		{"a namespace's prefix is refused, naming the namespace", Settings{Approval: "approve"}, workload(ns(ApproveAnnotation, "bbbbbbbbbb")), state.State{}, nil, moved(app, dB),
			"urunner.io/approve=bbbbbbbbbb (on namespace shop): a prefix approves nothing since urunner 0.4; approve the full digest: " + full},
		{"a wrong full digest approves nothing", Settings{Approval: "approve"}, workload(annotated(ApproveAnnotation, dA)), state.State{}, nil, moved(app, dB),
			"waiting for approval: " + full},
		// Where gates meet: the first that holds is the reason given.
		{"an approval does not lift a quarantine", Settings{Approval: "approve"}, workload(annotated(ApproveAnnotation, dB)), quarantined(dB), nil, moved(app, dB),
			"bbbbbbbbbbbb is quarantined: rollout failed in shop/web (annotate a workload urunner.io/lift-quarantine=bbbbbbbbbbbb to lift it)"},
		{"an approved digest still waits for the window", Settings{Approval: "approve", Window: nightly}, workload(annotated(ApproveAnnotation, dB)), state.State{}, nil, moved(app, dB),
			`outside the maintenance window "Mon-Fri 22:00-06:00"`},
		{"an approved digest still soaks", Settings{Approval: "approve", Soak: time.Hour}, workload(annotated(ApproveAnnotation, dB)), state.State{}, nil, moved(app, dB),
			"soaking: bbbbbbbbbbbb first seen at 2026-11-25T12:00:00Z, restarts once unchanged for 1h0m0s (at 2026-11-25T13:00:00Z)"},
		{"a soaked digest is still refused unsigned", Settings{RequireSignature: true, Soak: time.Hour}, workload(), seenAt(now.Add(-2 * time.Hour)), nil, signed(false, "no cosign signature found for the digest", nil),
			"bbbbbbbbbbbb refused by the signature policy: no cosign signature found for the digest"},
		{"a ring that may go still waits for its window", Settings{Window: nightly}, workload(ringed(1)), healthySince(0, now.Add(-time.Hour)),
			listed(nil, canary(on(dB, true)), workload(ringed(1))), moved(app, dB),
			`outside the maintenance window "Mon-Fri 22:00-06:00"`},
		{"ring 1 never follows a quarantined digest, even with ring 0 healthy on it", Settings{}, workload(ringed(1)), func() state.State {
			st := healthySince(0, now.Add(-time.Hour))
			r := st.Refs[app]
			r.Quarantine = map[string]string{dB: "rollout failed in shop/web"}
			st.Refs[app] = r
			return st
		}(), fleet, moved(app, dB), "bbbbbbbbbbbb is quarantined: rollout failed in shop/web (annotate a workload urunner.io/lift-quarantine=bbbbbbbbbbbb to lift it)"},
		{"the lift annotation lets it restart", Settings{}, workload(annotated(LiftQuarantineAnnotation, "bbbbbbbbbb")), quarantined(dB), nil, moved(app, dB), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := holdReason(Due{Run: &Run{Settings: tc.settings, Mem: tc.mem, Now: now, Fleet: tc.fleet}, Workload: tc.workload, Moves: tc.moves})
			if got != tc.want {
				t.Errorf("hold = %q\nwant   %q", got, tc.want)
			}
		})
	}
}
