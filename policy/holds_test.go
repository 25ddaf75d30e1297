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
	const noSignature = "no cosign signature found for the digest"
	unsignedMove := func() []ContainerDecision {
		m := moved(app, dB)
		m[0].Result = &Result{Digest: dB, Signature: &Signature{Unsigned: true, Reason: noSignature}}
		return m
	}
	grace := Settings{RequireSignature: true, SignatureGrace: 10 * time.Minute}
	ns := func(k, v string) func(*Workload) {
		return func(w *Workload) { w.NamespaceAnnotations = map[string]string{k: v} }
	}
	ringed := func(n int) func(*Workload) { return func(w *Workload) { w.Ring = n } }
	quarantined := func(digest string) state.State {
		return state.State{Refs: map[string]state.Ref{app: {Digest: digest, Seen: now.Add(-2 * time.Hour), Checked: now}},
			Quarantines: map[string]state.Quarantine{digest: {Why: "rollout failed in shop/web", At: lastRun, Failed: map[string]time.Time{"shop": lastRun}}}}
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
		{"an unsigned digest is refused", Settings{RequireSignature: true}, workload(), state.State{}, nil, unsignedMove(),
			"bbbbbbbbbbbb refused by the signature policy: no cosign signature found for the digest"},
		{"an unsigned digest first seen this run waits for its signature, the grace counted from now", grace, workload(), state.State{}, nil, unsignedMove(),
			"waiting for a signature of bbbbbbbbbbbb until 2026-11-25T12:10:00Z"},
		{"an unsigned digest seen before waits until the grace from when it was first seen", grace, workload(), seenAt(now.Add(-4 * time.Minute)), nil, unsignedMove(),
			"waiting for a signature of bbbbbbbbbbbb until 2026-11-25T12:06:00Z"},
		{"an unsigned digest is refused once its grace has passed", grace, workload(), seenAt(now.Add(-10 * time.Minute)), nil, unsignedMove(),
			"bbbbbbbbbbbb refused by the signature policy: no cosign signature found for the digest"},
		{"the grace counts from this run when the state saw the tag at another digest", grace,
			workload(), state.State{Refs: map[string]state.Ref{app: {Digest: dA, Seen: now.Add(-time.Hour), Checked: now.Add(-time.Hour)}}}, nil, unsignedMove(),
			"waiting for a signature of bbbbbbbbbbbb until 2026-11-25T12:10:00Z"},
		{"a digest whose signatures none trusts is refused at once, grace or not", grace, workload(), state.State{}, nil,
			signed(false, "1 signature(s) found, none valid: not signed by a trusted key", nil),
			"bbbbbbbbbbbb refused by the signature policy: 1 signature(s) found, none valid: not signed by a trusted key"},
		{"a signature that cannot be read holds as a failure, grace or not", grace, workload(), state.State{}, nil, signed(false, "", errors.New("registry unreachable")),
			"bbbbbbbbbbbb: signature could not be checked: registry unreachable"},
		{"a refused container is the reason given before another's wait", grace, workload(), state.State{}, nil, func() []ContainerDecision {
			m := append(unsignedMove(), signed(false, "1 signature(s) found, none valid: not signed by a trusted key", nil)...)
			m[1].Container = &Container{Name: "sidecar", Ref: app}
			return m
		}(), "bbbbbbbbbbbb refused by the signature policy: 1 signature(s) found, none valid: not signed by a trusted key"},
		{"with a soak too, the wait for a signature is the reason given (signature comes before soak)", Settings{RequireSignature: true, SignatureGrace: time.Minute, Soak: time.Hour},
			workload(), state.State{}, nil, unsignedMove(), "waiting for a signature of bbbbbbbbbbbb until 2026-11-25T12:01:00Z"},
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
			"bbbbbbbbbbbb is quarantined since 2026-11-25T11:55:00Z: rollout failed in shop/web (to lift it in namespace shop: kubectl annotate deployment/web -n shop urunner.io/lift-quarantine=bbbbbbbbbbbb; everywhere: kubectl urunner lift bbbbbbbbbbbb)"},
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

// A move waiting for its first signature is a quiet hold: the run counts
// no failure, sends no Warning, exits 0. Everything else the signature
// policy did not verify is a failure.
func TestAwaitsSignature(t *testing.T) {
	grace := Settings{RequireSignature: true, SignatureGrace: 10 * time.Minute}
	seen := func(at time.Time) state.State {
		return state.State{Refs: map[string]state.Ref{app: {Digest: dB, Seen: at, Checked: at}}}
	}
	for _, tc := range []struct {
		name     string
		settings Settings
		mem      state.State
		sig      *Signature
		want     bool
	}{
		{"no signature at all, within the grace", grace, seen(now.Add(-9 * time.Minute)), &Signature{Unsigned: true}, true},
		{"no signature at all, first seen this run", grace, state.State{}, &Signature{Unsigned: true}, true},
		{"no signature at all, the grace passed", grace, seen(now.Add(-10 * time.Minute)), &Signature{Unsigned: true}, false},
		{"no signature at all, no grace", Settings{RequireSignature: true}, state.State{}, &Signature{Unsigned: true}, false},
		{"signatures none trusts, within the grace", grace, state.State{}, &Signature{Reason: "1 signature(s) found, none valid"}, false},
		{"signatures that could not be read, within the grace", grace, state.State{}, &Signature{Unsigned: true, Err: errors.New("registry unreachable")}, false},
		{"verified", grace, state.State{}, &Signature{Verified: true}, false},
		{"not checked", grace, state.State{}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Run{Settings: tc.settings, Mem: tc.mem, Now: now}
			c := ContainerDecision{Container: &Container{Name: "app", Ref: app}, Verdict: Moved, To: dB, Result: &Result{Digest: dB, Signature: tc.sig}}
			if got := r.AwaitsSignature(c); got != tc.want {
				t.Errorf("AwaitsSignature = %v, want %v", got, tc.want)
			}
		})
	}
}
