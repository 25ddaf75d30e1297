package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/urunner/urunner/state"
)

// every5 is a "*/5 * * * *" schedule.
type every5 struct{}

func (every5) Next(t time.Time) time.Time { return t.Truncate(5 * time.Minute).Add(5 * time.Minute) }

// foreseen is what a test expects of a forecast: the run that restarts it
// (minutes after now; -1 for none), the rules of the holds it meets, and
// the rule it waits for.
type foreseen struct {
	At    int
	Rules string
	Waits string
}

func summarizeForecast(fc Forecast) foreseen {
	got := foreseen{At: -1, Waits: fc.WaitsRule}
	if !fc.At.IsZero() {
		got.At = int(fc.At.Sub(now) / time.Minute)
	}
	var rules []string
	for _, h := range fc.Holds {
		rules = append(rules, h.Rule)
	}
	got.Rules = strings.Join(rules, ",")
	return got
}

func inRing(n int) func(*Workload) { return func(w *Workload) { w.Ring = n } }

// TestForesee is the specification of the foresight: app moved from dA to
// dB just before now (12:00), runs every 5 minutes from 12:05, and each
// case says which run restarts each workload, through which holds.
func TestForesee(t *testing.T) {
	signed := func(sig *Signature) Results {
		return func(l Lookup) (*Result, bool) { return &Result{Digest: dB, Signature: sig}, true }
	}
	capped := remembered(map[string]string{app: dA})
	capped.Restarts = map[int64]int{state.RunKey(now.Add(-2 * time.Minute)): 1}
	for _, tc := range []struct {
		name     string
		settings Settings
		mem      state.State
		results  Results
		ws       []*Workload
		want     []foreseen
	}{
		{name: "nothing holds: the next run restarts", ws: []*Workload{named("a")}, want: []foreseen{{At: 5}}},
		{name: "a soak holds from the first run that sees the digest", settings: Settings{Soak: 10 * time.Minute},
			ws: []*Workload{named("a")}, want: []foreseen{{At: 15, Rules: "soak"}}},
		{name: "a cooldown ends between two runs: the run after restarts", settings: Settings{Cooldown: 30 * time.Minute},
			ws: []*Workload{named("a", func(w *Workload) { w.RestartedAt = now.Add(-8 * time.Minute) })}, want: []foreseen{{At: 25, Rules: "cooldown"}}},
		{name: "a window opens between two runs: the run after restarts",
			ws: []*Workload{named("a", annotated(WindowAnnotation, "12:32-13:00"))}, want: []foreseen{{At: 35, Rules: "window"}}},
		{name: "approval waits for a person", settings: Settings{Approval: "approve"},
			ws: []*Workload{named("a")}, want: []foreseen{{At: -1, Rules: "approval", Waits: "approval"}}},
		{name: "an approved digest restarts", settings: Settings{Approval: "approve"},
			ws: []*Workload{named("a", annotated(ApproveAnnotation, dB))}, want: []foreseen{{At: 5}}},
		{name: "ring 1 follows the run that restarts ring 0",
			ws: []*Workload{named("r0"), named("r1", inRing(1))}, want: []foreseen{{At: 5}, {At: 10, Rules: "ring"}}},
		{name: "ring 1 follows ring 0's soak", settings: Settings{Soak: 10 * time.Minute},
			ws: []*Workload{named("r0"), named("r1", inRing(1))}, want: []foreseen{{At: 15, Rules: "soak"}, {At: 30, Rules: "soak,ring,ring"}}},
		{name: "ring 1 follows ring 0's verified rollout and soak", settings: Settings{Soak: 10 * time.Minute, Quarantine: true},
			ws: []*Workload{named("r0"), named("r1", inRing(1))}, want: []foreseen{{At: 15, Rules: "soak"}, {At: 25, Rules: "soak,ring,ring"}}},
		{name: "a paused workload waits for a person",
			ws: []*Workload{named("a", func(w *Workload) { w.Paused = true })}, want: []foreseen{{At: -1, Rules: "paused", Waits: "paused"}}},
		{name: "a cap with a window lifts as its restarts leave it", settings: Settings{MaxRestarts: 1, MaxRestartsWindow: 12 * time.Minute},
			mem: capped, ws: []*Workload{named("a")}, want: []foreseen{{At: 10, Rules: "cap"}}},
		{name: "more moves at once than the cap wait for a person", settings: Settings{MaxRestarts: 1, MaxRestartsWindow: 12 * time.Minute},
			ws: []*Workload{named("a"), named("b")}, want: []foreseen{{At: -1, Rules: "cap", Waits: "cap"}, {At: -1, Rules: "cap", Waits: "cap"}}},
		{name: "holds staggered by the cap restart one at a time", settings: Settings{MaxRestarts: 1, MaxRestartsWindow: 7 * time.Minute},
			ws: []*Workload{named("a"), named("b", annotated(SoakAnnotation, "5m"))}, want: []foreseen{{At: 5}, {At: 15, Rules: "soak,cap"}}},
		{name: "an unsigned digest waits for its grace, then is refused", settings: Settings{RequireSignature: true, SignatureGrace: 10 * time.Minute},
			results: signed(&Signature{Unsigned: true}), ws: []*Workload{named("a")},
			want: []foreseen{{At: -1, Rules: "signature,signature", Waits: "signature"}}},
		{name: "a signed digest restarts", settings: Settings{RequireSignature: true},
			results: signed(&Signature{Verified: true}), ws: []*Workload{named("a")}, want: []foreseen{{At: 5}}},
		{name: "soak, then the window", settings: Settings{Soak: 10 * time.Minute},
			ws: []*Workload{named("a", annotated(WindowAnnotation, "12:32-13:00"))}, want: []foreseen{{At: 35, Rules: "soak,window"}}},
		{name: "a window that opens after the horizon is not foreseen", settings: Settings{Window: mustWindow(t, "Thu 12:00-13:00")},
			ws: []*Workload{named("a")}, want: []foreseen{{At: -1, Rules: "window"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mem.Refs == nil {
				tc.mem = remembered(map[string]string{app: dA})
			}
			if tc.results == nil {
				tc.results = registry(map[string]string{app: dB})
			}
			horizon := 12 * time.Hour
			f := Foresight{Settings: tc.settings, Results: tc.results, Mem: tc.mem, Workloads: tc.ws, Schedule: every5{}, Horizon: horizon}
			before := make([]Workload, len(tc.ws))
			for i, w := range tc.ws {
				before[i] = *w
				before[i].Containers = append([]Container(nil), w.Containers...)
			}
			var got []foreseen
			for _, fc := range f.Foresee(tc.ws, every5{}.Next(now)) {
				got = append(got, summarizeForecast(fc))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("forecasts (-want +got):\n%s", diff)
			}
			for i, w := range tc.ws {
				if diff := cmp.Diff(before[i], *w); diff != "" {
					t.Errorf("Foresee changed %s (-before +after):\n%s", w.Name, diff)
				}
			}
		})
	}
}

// A forecast names each hold's end, and without a schedule foresees the
// earliest time a run could restart.
func TestForeseeWithoutASchedule(t *testing.T) {
	ws := []*Workload{named("a", annotated(WindowAnnotation, "12:32-13:00"))}
	f := Foresight{Settings: Settings{Soak: 10 * time.Minute}, Results: registry(map[string]string{app: dB}),
		Mem: remembered(map[string]string{app: dA}), Workloads: ws, Horizon: time.Hour}
	fcs := f.Foresee(ws, now)
	want := []ForecastHold{
		{Rule: "soak", From: now, Until: now.Add(10 * time.Minute)},
		{Rule: "window", From: now.Add(10 * time.Minute), Until: now.Add(32 * time.Minute)},
	}
	if len(fcs) != 1 || !fcs[0].At.Equal(now.Add(32*time.Minute)) {
		t.Fatalf("forecast %+v, want a restart at 12:32", fcs)
	}
	got := fcs[0].Holds
	for i := range got {
		got[i].Why = ""
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("holds (-want +got):\n%s", diff)
	}
	if fcs[0].Ref != app || fcs[0].To != dB {
		t.Errorf("forecast of %s → %s, want %s → %s", fcs[0].Ref, fcs[0].To, app, dB)
	}
}

// BenchmarkForesee is what a run's foresight costs at 5,000 listed
// workloads on 1,000 references, 100 of them held by a soak (and so
// foreseen; the 400 others of their references restart at once), scheduled
// every 5 minutes: go test -bench Foresee ./policy.
func BenchmarkForesee(b *testing.B) {
	mem := state.State{Refs: map[string]state.Ref{}}
	digests := map[string]string{}
	var ws, due []*Workload
	for i := range 5000 {
		ref := fmt.Sprintf("reg.example.com/team/app%d:latest", i%1000)
		if i < 1000 {
			mem.Refs[ref] = state.Ref{Digest: dA, Seen: lastRun, Checked: lastRun}
			digests[ref] = dA
		}
		w := named(fmt.Sprintf("w%d", i), func(w *Workload) { w.Containers = []Container{container("app", ref)} })
		if i < 100 {
			digests[ref] = dB
			w.Annotations = map[string]string{SoakAnnotation: "1h"}
			due = append(due, w)
		}
		ws = append(ws, w)
	}
	f := Foresight{Settings: Settings{}, Results: registry(digests), Mem: mem, Workloads: ws, Schedule: every5{}, Horizon: 8 * 24 * time.Hour}
	b.ReportAllocs()
	for b.Loop() {
		if fcs := f.Foresee(due, every5{}.Next(now)); len(fcs) != len(due) || fcs[0].At.IsZero() {
			b.Fatalf("forecasts %d, first %+v", len(fcs), fcs[0])
		}
	}
}
