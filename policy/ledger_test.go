package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/urunner/urunner/state"
)

// listedNow is the API server's time of this run's listing.
var listedNow = now.Add(-2 * time.Second)

func named(name string, mods ...func(*Workload)) *Workload {
	return workload(append([]func(*Workload){func(w *Workload) { w.Name = name }}, mods...)...)
}

// ran decides each workload against results and records it, restarted
// when its decision says Restart (unless failed names it).
func ran(t *testing.T, s Settings, mem state.State, results Results, ls Listing, failed map[string]bool, ws ...*Workload) state.State {
	t.Helper()
	l := NewLedger(s, mem, now, listedNow)
	seen := map[Lookup]bool{}
	for _, w := range ws {
		for _, c := range w.Containers {
			if r, ok := results(c.Lookup()); ok && c.Ref != "" && !seen[c.Lookup()] {
				seen[c.Lookup()] = true
				l.Observe(c.Lookup(), *r)
			}
		}
		d := Decide(s, w, results, mem, now)
		l.Record(&d, d.Action == Restart && !failed[w.Name], false)
	}
	return l.Next(ls)
}

func TestLedgerNext(t *testing.T) {
	full := Listing{Complete: true}
	key := func(name string) string { return "shop/Deployment/" + name + "/app" }
	for _, tc := range []struct {
		name     string
		settings Settings
		mem      state.State
		results  Results
		listing  Listing
		failed   map[string]bool
		ws       []*Workload
		want     map[string]state.Ref
	}{
		{
			name:    "a steady state remembers one digest per reference and nothing per workload",
			mem:     remembered(map[string]string{app: dA}),
			results: registry(map[string]string{app: dA}),
			listing: full,
			ws:      []*Workload{named("a"), named("b")},
			want:    map[string]state.Ref{app: {Digest: dA, Seen: lastRun, Checked: listedNow}},
		},
		{
			name:    "a restart moves the reference; the restarted workloads record it themselves",
			mem:     remembered(map[string]string{app: dA}),
			results: registry(map[string]string{app: dB}),
			listing: full,
			ws:      []*Workload{named("a"), named("b")},
			want:    map[string]state.Ref{app: {Digest: dB, Seen: now, Checked: listedNow}},
		},
		{
			name:     "held workloads keep the old digest as the base",
			settings: Settings{Window: mustWindow(t, "Mon 01:00-02:00")},
			mem:      remembered(map[string]string{app: dA}),
			results:  registry(map[string]string{app: dB}),
			listing:  full,
			ws:       []*Workload{named("a"), named("b")},
			want:     map[string]state.Ref{app: {Digest: dB, Seen: now, Checked: listedNow, Base: dA}},
		},
		{
			name:    "a failed restart stays due",
			mem:     remembered(map[string]string{app: dA}),
			results: registry(map[string]string{app: dB}),
			listing: full,
			failed:  map[string]bool{"b": true},
			ws:      []*Workload{named("a"), named("b")},
			want:    map[string]state.Ref{app: {Digest: dB, Seen: now, Checked: listedNow, Base: dA}},
		},
		{
			name:     "a new workload beside held ones is an exception to their base",
			settings: Settings{Window: mustWindow(t, "Mon 01:00-02:00")},
			mem:      remembered(map[string]string{app: dA}),
			results:  registry(map[string]string{app: dB}),
			listing:  full,
			ws:       []*Workload{named("a"), named("b"), named("new", func(w *Workload) { w.Created = now })},
			want: map[string]state.Ref{app: {Digest: dB, Seen: now, Checked: listedNow, Base: dA,
				Except: map[string]state.Exception{key("new"): {Runs: dB}}}},
		},
		{
			name:     "a move recorded without restart, on a workload urunner restarted before, is an exception to its record",
			settings: Settings{SkipCached: true},
			mem:      remembered(map[string]string{app: dA}),
			results:  registry(map[string]string{app: dB}),
			listing:  full,
			ws:       []*Workload{named("a", restartedFor("app", app, dA), withContainerMod(func(c *Container) { c.PullPolicy = "IfNotPresent" }))},
			want:     map[string]state.Ref{app: {Digest: dB, Seen: now, Checked: listedNow, Except: map[string]state.Exception{key("a"): {Runs: dB, Record: dA}}}},
		},
		{
			name:    "a failed lookup keeps everything and starts a failing streak",
			mem:     remembered(map[string]string{app: dA}),
			results: registry(nil),
			listing: full,
			ws:      []*Workload{named("a")},
			want:    map[string]state.Ref{app: {Digest: dA, Seen: lastRun, Checked: lastRun, Failing: now, Error: "not found"}},
		},
		{
			name: "a failing streak keeps its start",
			mem: func() state.State {
				s := remembered(map[string]string{app: dA})
				r := s.Refs[app]
				r.Failing, r.Error = lastRun, "old error"
				s.Refs[app] = r
				return s
			}(),
			results: registry(nil),
			listing: full,
			ws:      []*Workload{named("a")},
			want:    map[string]state.Ref{app: {Digest: dA, Seen: lastRun, Checked: lastRun, Failing: lastRun, Error: "not found"}},
		},
		{
			name: "a success ends the streak",
			mem: func() state.State {
				s := remembered(map[string]string{app: dA})
				r := s.Refs[app]
				r.Failing, r.Error = lastRun, "old error"
				s.Refs[app] = r
				return s
			}(),
			results: registry(map[string]string{app: dA}),
			listing: full,
			ws:      []*Workload{named("a")},
			want:    map[string]state.Ref{app: {Digest: dA, Seen: lastRun, Checked: listedNow}},
		},
		{
			name: "a first-seen time in the future is taken as now",
			mem: func() state.State {
				s := remembered(map[string]string{app: dA})
				r := s.Refs[app]
				r.Seen = now.Add(time.Hour)
				s.Refs[app] = r
				return s
			}(),
			results: registry(map[string]string{app: dA}),
			listing: full,
			ws:      []*Workload{named("a")},
			want:    map[string]state.Ref{app: {Digest: dA, Seen: now, Checked: listedNow}},
		},
		{
			name:    "a reference no workload uses is forgotten after a complete listing",
			mem:     remembered(map[string]string{app: dA, sidecar: dA}),
			results: registry(map[string]string{app: dA}),
			listing: full,
			ws:      []*Workload{named("a")},
			want:    map[string]state.Ref{app: {Digest: dA, Seen: lastRun, Checked: listedNow}},
		},
		{
			name:    "nothing is forgotten after an incomplete listing, and the base and the exceptions of unlisted namespaces stay",
			mem:     withExcept(remembered(map[string]string{app: dA, sidecar: dA}), app, "other/Deployment/x/app", dC, ""),
			results: registry(map[string]string{app: dB}),
			listing: Listing{Failed: map[string]bool{"other": true}},
			ws:      []*Workload{named("a")},
			want: map[string]state.Ref{
				app:     {Digest: dB, Seen: now, Checked: listedNow, Base: dA, Except: map[string]state.Exception{"other/Deployment/x/app": {Runs: dC}}},
				sidecar: {Digest: dA, Seen: lastRun, Checked: lastRun},
			},
		},
		{
			name:    "a run restricted to pushed references leaves the others as they were",
			mem:     remembered(map[string]string{app: dA, sidecar: dA}),
			results: func(l Lookup) (*Result, bool) { return &Result{Digest: dB}, l.Ref == app },
			listing: Listing{Complete: true, Restricted: true},
			ws:      []*Workload{named("a", withContainer(container("side", sidecar)))},
			want: map[string]state.Ref{
				app:     {Digest: dB, Seen: now, Checked: listedNow},
				sidecar: {Digest: dA, Seen: lastRun, Checked: lastRun},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ran(t, tc.settings, tc.mem, tc.results, tc.listing, tc.failed, tc.ws...)
			if diff := cmp.Diff(tc.want, got.Refs); diff != "" {
				t.Errorf("next state (-want +got):\n%s", diff)
			}
		})
	}
}

// A workload rolled back after a failed rollout is remembered on its old
// digest with the time the failure was seen, even when that is its
// default: a run that listed it mid-rollout and saved first believes it on
// the failed digest, and the save merges by that time (state.Merge).
func TestARolledBackWorkloadIsRememberedAsOfItsRollback(t *testing.T) {
	mem := remembered(map[string]string{app: dA})
	failedAt := now.Add(time.Minute)
	l := NewLedger(Settings{}, mem, now, listedNow)
	results := registry(map[string]string{app: dB})
	w, stays := named("web"), named("stays", func(w *Workload) { w.Paused = true })
	r, _ := results(w.Containers[0].Lookup())
	l.Observe(w.Containers[0].Lookup(), *r)
	d := Decide(Settings{}, w, results, mem, now)
	held := Decide(Settings{}, stays, results, mem, now)
	l.Record(&d, false, false) // restarted, then rolled back
	l.Record(&held, false, false)
	l.Quarantine(&d, "rollout failed in shop/deployment/web: crash", failedAt)
	want := map[string]state.Exception{"shop/Deployment/web/app": {Runs: dA, At: failedAt}}
	if diff := cmp.Diff(want, l.Next(Listing{Complete: true}).Refs[app].Except); diff != "" {
		t.Errorf("exceptions (-want +got):\n%s", diff)
	}
}

// What the ledger remembers must make the next run believe what this one
// left: a restarted workload its new digest, a held one its old digest.
func TestTheNextRunBelievesWhatThisRunLeft(t *testing.T) {
	s := Settings{}
	held := named("held", func(w *Workload) { w.Paused = true })
	done := named("done")
	mem := remembered(map[string]string{app: dA})
	next := ran(t, s, mem, registry(map[string]string{app: dB}), Listing{Complete: true}, nil, held, done)
	// done was restarted: its template now records dB.
	restartedFor("app", app, dB)(done)
	for _, tc := range []struct {
		w    *Workload
		want string
	}{{held, dA}, {done, dB}} {
		if got := believe(tc.w, tc.w.Containers[0], next); got.digest != tc.want {
			t.Errorf("%s is believed to run %s, want %s", tc.w.Name, got.digest, tc.want)
		}
	}
}

func mustWindow(t *testing.T, spec string) *Window {
	t.Helper()
	w, err := ParseWindow(spec)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// With workloads in more than one ring, the ledger records since when each
// ring runs the digest healthily: what lets the next ring go.
func TestLedgerRecordsRingsRunningTheDigestHealthily(t *testing.T) {
	ring := func(n int, healthy bool) func(*Workload) {
		return func(w *Workload) { w.Ring, w.Healthy = n, healthy }
	}
	mem := remembered(map[string]string{app: dA})
	results := registry(map[string]string{app: dB})
	for _, tc := range []struct {
		name string
		prev map[int]time.Time
		ws   []*Workload
		want map[int]time.Time
	}{
		{
			name: "ring 0 restarted this run is not healthy yet; ring 1 is held",
			ws:   []*Workload{named("a", ring(0, true)), named("b", ring(1, true))},
			want: nil,
		},
		{
			name: "ring 0 healthy on the digest is recorded now",
			ws:   []*Workload{named("a", ring(0, true), restartedFor("app", app, dB)), named("b", ring(1, true))},
			want: map[int]time.Time{0: now},
		},
		{
			name: "a ring healthy since an earlier run keeps its time",
			prev: map[int]time.Time{0: lastRun},
			ws:   []*Workload{named("a", ring(0, true), restartedFor("app", app, dB)), named("b", ring(1, true))},
			want: map[int]time.Time{0: lastRun},
		},
		{
			name: "one workload of the ring not healthy holds the ring back",
			ws:   []*Workload{named("a", ring(0, true), restartedFor("app", app, dB)), named("c", ring(0, false), restartedFor("app", app, dB)), named("b", ring(1, true))},
			want: nil,
		},
		{
			name: "a single ring records nothing",
			ws:   []*Workload{named("a", ring(0, true), restartedFor("app", app, dB))},
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mem.Clone()
			r := m.Refs[app]
			if tc.prev != nil {
				r.Digest, r.Base, r.Rings = dB, dA, tc.prev
			}
			m.Refs[app] = r
			l := NewLedger(Settings{}, m, now, listedNow)
			l.Observe(Lookup{Ref: app}, Result{Digest: dB})
			run := &Run{Settings: Settings{}, Results: results, Mem: m, Now: now, Fleet: NewFleet(tc.ws, nil)}
			for _, w := range tc.ws {
				d := run.Decide(w)
				l.Record(&d, d.Action == Restart, false)
			}
			if diff := cmp.Diff(tc.want, l.Next(Listing{Complete: true}).Refs[app].Rings); diff != "" {
				t.Errorf("rings (-want +got):\n%s", diff)
			}
		})
	}
}

// A tag moved again (or back) while its digest soaked restarts nothing,
// and the digest in between is reported retracted.
func TestASoakingDigestLeftByItsTagIsRetracted(t *testing.T) {
	s := Settings{Soak: time.Hour}
	recordsA := restartedFor("app", app, dA)
	for _, tc := range []struct {
		name      string
		seen      time.Time
		base      string // the base remembered with dB; "" is dB itself
		mod       func(*Workload)
		listing   Listing
		now       string
		retracted bool
	}{
		{name: "moved again within the soak", seen: now.Add(-10 * time.Minute), base: dA, now: dC, retracted: true},
		{name: "moved back within the soak", seen: now.Add(-10 * time.Minute), base: dA, now: dA, retracted: true},
		{name: "moved after the soak: it was due, not retracted", seen: now.Add(-2 * time.Hour), base: dA, now: dC},
		{name: "moved again within the soak, the workload recording its last restart (the base defaults to the tag's digest)",
			seen: now.Add(-10 * time.Minute), mod: recordsA, now: dC, retracted: true},
		{name: "moved back within the soak, the workload recording its last restart",
			seen: now.Add(-10 * time.Minute), mod: recordsA, now: dA, retracted: true},
		{name: "a namespace not listed may run the base: not said retracted",
			seen: now.Add(-10 * time.Minute), mod: recordsA, listing: Listing{Failed: map[string]bool{"other": true}}, now: dC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The tag pointed at dB, first seen at tc.seen; web still runs dA.
			mem := state.State{Refs: map[string]state.Ref{app: {Digest: dB, Base: tc.base, Seen: tc.seen, Checked: lastRun}}}
			results := registry(map[string]string{app: tc.now})
			l := NewLedger(s, mem, now, listedNow)
			l.Observe(Lookup{Ref: app}, Result{Digest: tc.now})
			w := workload()
			if tc.mod != nil {
				w = workload(tc.mod)
			}
			d := Decide(s, w, results, mem, now)
			if d.Action == Restart {
				t.Fatalf("restarted while soaking: %+v", d)
			}
			l.Record(&d, false, false)
			ls := tc.listing
			if ls.Failed == nil {
				ls.Complete = true
			}
			l.Next(ls)
			var got []Retraction
			if tc.retracted {
				got = []Retraction{{Ref: app, From: dB, To: tc.now, Seen: tc.seen}}
			}
			if diff := cmp.Diff(got, l.Retracted()); diff != "" {
				t.Errorf("retracted (-want +got):\n%s", diff)
			}
		})
	}
}

// The ledger remembers which rings follow a reference and the namespaces
// of their members; a ring missing from a listing, or in a namespace that
// did not list, stays known (only a person forgets it).
func TestLedgerRemembersTheRingsThatFollowAReference(t *testing.T) {
	in := func(ns string, ring int) func(*Workload) {
		return func(w *Workload) { w.Namespace, w.Ring = ns, ring }
	}
	results := registry(map[string]string{app: dB})
	for _, tc := range []struct {
		name   string
		prev   map[int][]string
		failed map[string]bool
		ws     []*Workload
		want   map[int][]string
	}{
		{
			name: "two rings are remembered with their namespaces",
			ws:   []*Workload{named("a", in("canary", 0)), named("b", in("shop", 1)), named("c", in("shop-eu", 1))},
			want: map[int][]string{0: {"canary"}, 1: {"shop", "shop-eu"}},
		},
		{
			name: "a single ring records nothing",
			ws:   []*Workload{named("a", in("canary", 0)), named("b", in("shop", 0))},
		},
		{
			name: "a ring missing from the listing stays known",
			prev: map[int][]string{0: {"canary"}, 1: {"shop"}},
			ws:   []*Workload{named("b", in("shop", 1))},
			want: map[int][]string{0: {"canary"}, 1: {"shop"}},
		},
		{
			name:   "a namespace that did not list keeps its membership",
			prev:   map[int][]string{0: {"canary", "edge"}, 1: {"shop"}},
			failed: map[string]bool{"edge": true},
			ws:     []*Workload{named("a", in("canary", 0)), named("b", in("shop", 1))},
			want:   map[int][]string{0: {"canary", "edge"}, 1: {"shop"}},
		},
		{
			name: "a listed ring takes this listing's namespaces",
			prev: map[int][]string{0: {"canary", "edge"}, 1: {"shop"}},
			ws:   []*Workload{named("a", in("canary", 0)), named("b", in("shop", 1))},
			want: map[int][]string{0: {"canary"}, 1: {"shop"}},
		},
		{
			name: "a ring seen for the first time is added",
			prev: map[int][]string{0: {"canary"}, 1: {"shop"}},
			ws:   []*Workload{named("a", in("canary", 0)), named("b", in("shop", 1)), named("c", in("late", 2))},
			want: map[int][]string{0: {"canary"}, 1: {"shop"}, 2: {"late"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := remembered(map[string]string{app: dA})
			r := m.Refs[app]
			r.RingMembers = tc.prev
			m.Refs[app] = r
			l := NewLedger(Settings{}, m, now, listedNow)
			l.Observe(Lookup{Ref: app}, Result{Digest: dB})
			run := &Run{Settings: Settings{}, Results: results, Mem: m, Now: now, Fleet: NewFleet(tc.ws, tc.failed)}
			for _, w := range tc.ws {
				d := run.Decide(w)
				l.Record(&d, d.Action == Restart, false)
			}
			ls := Listing{Complete: len(tc.failed) == 0, Failed: tc.failed}
			if diff := cmp.Diff(tc.want, l.Next(ls).Refs[app].RingMembers); diff != "" {
				t.Errorf("ring members (-want +got):\n%s", diff)
			}
		})
	}
}
