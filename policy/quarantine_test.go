package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/urunner/urunner/state"
)

// failedAt is a quarantine of a rollout that failed in namespace ns at at,
// under reference app.
func failedAt(ns string, at time.Time) state.Quarantine {
	return state.Quarantine{Why: "rollout failed in " + ns + "/deployment/web: crash", At: at, Refs: []string{app},
		Failed: map[string]time.Time{ns: at}}
}

func liftedIn(q state.Quarantine, ns string, at time.Time) state.Quarantine {
	q.Lifted = map[string]time.Time{ns: at}
	return q
}

func inNamespace(ns string) func(*Workload) { return func(w *Workload) { w.Namespace = ns } }

// Each row is one failure of urunner before quarantines belonged to the
// digest, or a rule of lifts.
func TestQuarantineHolds(t *testing.T) {
	other := "reg.example.com/team/app:v2"
	movedTo := func(ref, to string) []ContainerDecision {
		return []ContainerDecision{{Container: &Container{Name: "app", Ref: ref}, Verdict: Moved, To: to}}
	}
	quarantines := func(q state.Quarantine) state.State {
		return state.State{Refs: map[string]state.Ref{app: {Digest: dB, Seen: lastRun, Checked: lastRun}},
			Quarantines: map[string]state.Quarantine{dB: q}}
	}
	// D→E→D: the tag left the quarantined digest, then came back.
	movedOn := quarantines(failedAt("shop", lastRun.Add(-time.Hour)))
	movedOn.Refs[app] = state.Ref{Digest: dC, Seen: lastRun, Checked: lastRun}
	lift := func(v string) func(*Workload) { return annotated(LiftQuarantineAnnotation, v) }
	for _, tc := range []struct {
		name  string
		w     *Workload
		fleet []*Workload
		mem   state.State
		moves []ContainerDecision
		held  bool
	}{
		{"the failed digest is held in its namespace", workload(), nil, quarantines(failedAt("shop", lastRun)), movedTo(app, dB), true},
		{"and in every other namespace", workload(inNamespace("team")), nil, quarantines(failedAt("shop", lastRun)), movedTo(app, dB), true},
		{"the same digest under another tag is held", workload(), nil, quarantines(failedAt("shop", lastRun)), movedTo(other, dB), true},
		{"a digest the tag left and came back to (D→E→D) is held", workload(), nil, movedOn, movedTo(app, dB), true},
		{"another digest is not held", workload(), nil, quarantines(failedAt("shop", lastRun)), movedTo(app, dC), false},
		{"a lift in the listing lifts it in the run that sees it, for every workload of its namespace",
			named("api"), []*Workload{named("api"), named("web", lift("bbbbbbbbbbbb"))}, quarantines(failedAt("shop", lastRun)), movedTo(app, dB), false},
		{"one tenant's lift does not lift another namespace",
			workload(inNamespace("team")), []*Workload{workload(inNamespace("team")), named("web", lift("bbbbbbbbbbbb"))}, quarantines(failedAt("shop", lastRun)), movedTo(app, dB), true},
		{"a lift of the whole digest, with sha256:, lifts it", named("api"), []*Workload{named("web", lift(dB))}, quarantines(failedAt("shop", lastRun)), movedTo(app, dB), false},
		{"a prefix shorter than 12 hex lifts nothing", named("api"), []*Workload{named("web", lift("bbbbbbbbbbb"))}, quarantines(failedAt("shop", lastRun)), movedTo(app, dB), true},
		{"a lift recorded in the state lifts it in its namespace", workload(), nil, quarantines(liftedIn(failedAt("shop", lastRun), "shop", now)), movedTo(app, dB), false},
		{"a lift recorded in the state does not lift another namespace", workload(inNamespace("team")), nil, quarantines(liftedIn(failedAt("shop", lastRun), "shop", now)), movedTo(app, dB), true},
		{"a lift recorded before a later failure in its namespace does not count",
			workload(), nil, quarantines(liftedIn(failedAt("shop", lastRun), "shop", lastRun.Add(-time.Hour))), movedTo(app, dB), true},
		{"a cluster-wide lift lifts it everywhere", workload(inNamespace("team")), nil, func() state.State {
			q := failedAt("shop", lastRun.Add(-time.Hour))
			q.LiftedAll = lastRun
			return quarantines(q)
		}(), movedTo(app, dB), false},
		{"a failure after a cluster-wide lift holds again", workload(inNamespace("team")), nil, func() state.State {
			q := failedAt("shop", lastRun)
			q.LiftedAll = lastRun.Add(-time.Hour)
			return quarantines(q)
		}(), movedTo(app, dB), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Run{Mem: tc.mem, Now: now, Fleet: NewFleet(tc.fleet, nil)}
			got := quarantined(Due{Run: r, Workload: tc.w, Moves: tc.moves})
			if (got != "") != tc.held {
				t.Errorf("hold = %q, want held %v", got, tc.held)
			}
		})
	}
}

func TestFleetLifts(t *testing.T) {
	lift := func(v string) func(*Workload) { return annotated(LiftQuarantineAnnotation, v) }
	mem := state.State{Quarantines: map[string]state.Quarantine{
		dB: failedAt("shop", lastRun),
		dC: liftedIn(failedAt("shop", lastRun), "team", now),
	}}
	ws := []*Workload{
		named("a", lift("bbbbbbbbbbbb")),
		named("b", lift("sha256:bbbbbbbbbbbbbbbb")),           // the same lift twice in a namespace
		named("c", inNamespace("team"), lift("cccccccccccc")), // lifted there already
		named("d", inNamespace("dev"), lift("aaaaaaaaaaaa")),  // names nothing quarantined
		named("e", inNamespace("dev"), lift("aaaa")),          // unreadable: left alone
		// Tracking no image of urunner's (another urunner's, or ignored):
		// neither lifts nor is spent.
		named("f", lift("bbbbbbbbbbbb"), func(w *Workload) { w.Containers[0].Ref = "" }),
		named("g", inNamespace("team"), lift("cccccccccccc"), func(w *Workload) { w.Containers = nil }),
	}
	anns, lifts := NewFleet(ws, nil).Lifts(mem)
	var spent []string
	for _, a := range anns {
		spent = append(spent, a.Workload.Namespace+"/"+a.Workload.Name)
	}
	if diff := cmp.Diff([]string{"dev/d", "shop/a", "shop/b", "team/c"}, spent); diff != "" {
		t.Errorf("spent annotations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Lift{{Namespace: "shop", Digest: dB}}, lifts); diff != "" {
		t.Errorf("lifts (-want +got):\n%s", diff)
	}
	other := []*Workload{named("f", lift("bbbbbbbbbbbb"), func(w *Workload) { w.Containers[0].Ref = "" })}
	if anns, lifts := NewFleet(other, nil).Lifts(mem); len(anns) > 0 || len(lifts) > 0 {
		t.Errorf("a workload tracking none of urunner's images: spent %v, lifted %v", anns, lifts)
	}
}

func TestLedgerQuarantines(t *testing.T) {
	failedNow := now.Add(3 * time.Minute) // after the rollout wait
	d := func(ns string) *Decision {
		w := workload(inNamespace(ns))
		return &Decision{Workload: w, Action: Restart, Containers: []ContainerDecision{{Container: &w.Containers[0], Verdict: Moved, From: dA, To: dB}}}
	}
	for _, tc := range []struct {
		name   string
		prev   map[string]state.Quarantine
		fail   []string // namespaces whose rollout onto dB failed
		lifts  []Lift
		digest string // the tag's digest after the run
		want   map[string]state.Quarantine
	}{
		{name: "a failed rollout quarantines the digest, with its reference, namespace and time",
			fail: []string{"shop"}, digest: dB,
			want: map[string]state.Quarantine{dB: {Why: "rollout failed in shop/deployment/web: crash", At: failedNow, Refs: []string{app}, Failed: map[string]time.Time{"shop": failedNow}}}},
		{name: "a quarantine is kept when its tag moves on",
			prev: map[string]state.Quarantine{dB: failedAt("shop", lastRun)}, digest: dC,
			want: map[string]state.Quarantine{dB: failedAt("shop", lastRun)}},
		{name: "a lift is recorded for its namespace, at the run's time",
			prev: map[string]state.Quarantine{dB: failedAt("shop", lastRun)}, lifts: []Lift{{"team", dB}}, digest: dB,
			want: map[string]state.Quarantine{dB: liftedIn(failedAt("shop", lastRun), "team", now)}},
		{name: "a new failure in a lifted namespace holds there again, whatever lift remains",
			prev: map[string]state.Quarantine{dB: liftedIn(failedAt("shop", lastRun), "team", lastRun)}, fail: []string{"team"}, lifts: []Lift{{"team", dB}}, digest: dB,
			want: map[string]state.Quarantine{dB: {Why: "rollout failed in team/deployment/web: crash", At: failedNow, Refs: []string{app},
				Failed: map[string]time.Time{"shop": lastRun, "team": failedNow}, Lifted: map[string]time.Time{"team": now}}}},
		{name: "a lift of nothing quarantined records nothing", lifts: []Lift{{"team", dB}}, digest: dB},
		{name: "a lift is later than the failure it lifts, even one recorded in the run's second",
			prev: map[string]state.Quarantine{dB: failedAt("shop", now)}, lifts: []Lift{{"shop", dB}}, digest: dB,
			want: map[string]state.Quarantine{dB: liftedIn(failedAt("shop", now), "shop", now.Add(time.Second))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := remembered(map[string]string{app: dA})
			mem.Quarantines = tc.prev
			l := NewLedger(Settings{}, mem, now, listedNow)
			l.Observe(Lookup{Ref: app}, Result{Digest: tc.digest})
			l.Lift(tc.lifts)
			for _, ns := range tc.fail {
				l.Quarantine(d(ns), "rollout failed in "+ns+"/deployment/web: crash", failedNow)
			}
			got := l.Next(Listing{Complete: true})
			if diff := cmp.Diff(tc.want, got.Quarantines); diff != "" {
				t.Errorf("quarantines (-want +got):\n%s", diff)
			}
			if len(tc.fail) > 0 && got.Quarantines[dB].HoldsIn(tc.fail[0]) == false {
				t.Errorf("%s not held in %s after its failure there", short(dB), tc.fail[0])
			}
		})
	}
}
