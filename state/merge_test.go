package state

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMergeKeepsEachWritersNewerObservations(t *testing.T) {
	early, late := t0, t1
	seenAt := func(d string, at time.Time) Ref { return Ref{Digest: d, Seen: at, Checked: at} }
	for _, tc := range []struct {
		name               string
		prev, ours, theirs State
		at                 time.Time
		want               State
	}{
		{
			name:   "a reference only we changed takes our version",
			prev:   State{Refs: map[string]Ref{"r/a:1": seenAt(d1, early)}},
			ours:   State{Refs: map[string]Ref{"r/a:1": seenAt(d2, late)}},
			theirs: State{Refs: map[string]Ref{"r/a:1": seenAt(d1, early), "r/b:1": seenAt(d3, late)}},
			at:     late,
			want:   State{Refs: map[string]Ref{"r/a:1": seenAt(d2, late), "r/b:1": seenAt(d3, late)}},
		},
		{
			name:   "a digest never moves backwards: their later lookup wins over our earlier one",
			prev:   State{Refs: map[string]Ref{"r/a:1": seenAt(d1, early.Add(-time.Hour))}},
			ours:   State{Refs: map[string]Ref{"r/a:1": seenAt(d2, early)}},
			theirs: State{Refs: map[string]Ref{"r/a:1": seenAt(d3, late)}},
			at:     early,
			want:   State{Refs: map[string]Ref{"r/a:1": seenAt(d3, late)}},
		},
		{
			name:   "a reference we did not change is theirs",
			prev:   State{Refs: map[string]Ref{"r/a:1": seenAt(d1, early)}},
			ours:   State{Refs: map[string]Ref{"r/a:1": seenAt(d1, early)}},
			theirs: State{Refs: map[string]Ref{"r/a:1": seenAt(d2, late)}},
			at:     late,
			want:   State{Refs: map[string]Ref{"r/a:1": seenAt(d2, late)}},
		},
		{
			name:   "our prune holds against an older observation",
			prev:   State{Refs: map[string]Ref{"r/a:1": seenAt(d1, early)}},
			ours:   State{Refs: map[string]Ref{}},
			theirs: State{Refs: map[string]Ref{"r/a:1": seenAt(d1, early)}},
			at:     late,
			want:   State{Refs: map[string]Ref{}},
		},
		{
			name:   "a pruned reference is not resurrected, nor is one they saw in use later dropped",
			prev:   State{Refs: map[string]Ref{"r/a:1": seenAt(d1, early)}},
			ours:   State{Refs: map[string]Ref{}},
			theirs: State{Refs: map[string]Ref{"r/a:1": seenAt(d2, late.Add(time.Minute))}},
			at:     late,
			want:   State{Refs: map[string]Ref{"r/a:1": seenAt(d2, late.Add(time.Minute))}},
		},
		{
			name:   "their prune after a newer listing is not undone by our change",
			prev:   State{ListedAt: early, Refs: map[string]Ref{"r/a:1": seenAt(d1, early)}},
			ours:   State{ListedAt: early, Refs: map[string]Ref{"r/a:1": seenAt(d2, early)}},
			theirs: State{ListedAt: late, Refs: map[string]Ref{}},
			at:     early,
			want:   State{ListedAt: late, Refs: map[string]Ref{}},
		},
		{
			// The run that listed earlier waited for its rollout, then
			// quarantined; the other looked the reference up later and
			// saved meanwhile. Before version 4 the quarantine lived in the
			// reference and was lost with our older observation.
			name:   "a quarantine written after a rollout wait survives the other writer's later save",
			prev:   State{Refs: map[string]Ref{"r/a:1": seenAt(d1, early)}},
			ours:   State{Refs: map[string]Ref{"r/a:1": seenAt(d2, early)}, Quarantines: map[string]Quarantine{d2: failedIn("shop", late)}},
			theirs: State{Refs: map[string]Ref{"r/a:1": seenAt(d2, late)}},
			at:     early,
			want:   State{Refs: map[string]Ref{"r/a:1": seenAt(d2, late)}, Quarantines: map[string]Quarantine{d2: failedIn("shop", late)}},
		},
		{
			// We restarted web and waited; the other writer listed web
			// mid-rollout (its record on d2) and saved; we rolled web back
			// to d1 after that listing. Its exception is newer than their
			// reference, and holds only while web records what it was
			// rolled back to.
			name:   "a workload we rolled back after their listing keeps our exception",
			prev:   State{Refs: map[string]Ref{"r/a:1": seenAt(d1, early)}},
			ours:   State{Refs: map[string]Ref{"r/a:1": withExcept(seenAt(d2, early), "shop/Deployment/web/app", Exception{Runs: d1, At: late})}},
			theirs: State{Refs: map[string]Ref{"r/a:1": seenAt(d2, early.Add(time.Second))}},
			at:     late,
			want:   State{Refs: map[string]Ref{"r/a:1": withExcept(seenAt(d2, early.Add(time.Second)), "shop/Deployment/web/app", Exception{Runs: d1, At: late})}},
		},
		{
			name: "our exceptions seen at the listing, or a rollback before their listing, are theirs to decide",
			prev: State{Refs: map[string]Ref{"r/a:1": seenAt(d1, early)}},
			ours: State{Refs: map[string]Ref{"r/a:1": withExcept(withExcept(seenAt(d2, early), "shop/Deployment/held/app", Exception{Runs: d1}),
				"shop/Deployment/web/app", Exception{Runs: d1, At: early})}},
			theirs: State{Refs: map[string]Ref{"r/a:1": seenAt(d2, late)}},
			at:     late,
			want:   State{Refs: map[string]Ref{"r/a:1": seenAt(d2, late)}},
		},
		{
			name:   "their quarantine survives our save of a reference we changed",
			prev:   State{Refs: map[string]Ref{"r/a:1": seenAt(d1, early)}},
			ours:   State{Refs: map[string]Ref{"r/a:1": seenAt(d2, late)}},
			theirs: State{Refs: map[string]Ref{"r/a:1": seenAt(d1, early)}, Quarantines: map[string]Quarantine{d1: failedIn("shop", early)}},
			at:     late,
			want:   State{Refs: map[string]Ref{"r/a:1": seenAt(d2, late)}, Quarantines: map[string]Quarantine{d1: failedIn("shop", early)}},
		},
		{
			name:   "quarantines of one digest merge field by field: why of the later failure, references, namespaces",
			prev:   State{Refs: map[string]Ref{}},
			ours:   State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: {Why: "ours", At: early, Refs: []string{"r/a:1"}, Failed: map[string]time.Time{"shop": early}}}},
			theirs: State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: {Why: "theirs", At: late, Refs: []string{"r/b:1"}, Failed: map[string]time.Time{"team": late}}}},
			at:     late,
			want: State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: {Why: "theirs", At: late, Refs: []string{"r/a:1", "r/b:1"},
				Failed: map[string]time.Time{"shop": early, "team": late}}}},
		},
		{
			name:   "lifts are the union by namespace, each at its later time",
			prev:   State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: failedIn("shop", early)}},
			ours:   State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: lifted(failedIn("shop", early), "team", late, "shop", late)}},
			theirs: State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: lifted(failedIn("shop", early), "shop", late.Add(time.Minute), "dev", late)}},
			at:     late,
			want: State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: lifted(failedIn("shop", early),
				"team", late, "shop", late.Add(time.Minute), "dev", late)}},
		},
		{
			// We read the state before `kubectl urunner lift` and save
			// after it: the lift's time stays, the quarantine stays lifted.
			name:   "a cluster-wide lift is not undone by a writer that read the state before it",
			prev:   State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: failedIn("shop", early)}},
			ours:   State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: lifted(failedIn("shop", early), "team", late)}},
			theirs: State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: liftedAll(failedIn("shop", early), late)}},
			at:     late,
			want:   State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: liftedAll(lifted(failedIn("shop", early), "team", late), late)}},
		},
		{
			// A new failed rollout in shop after its lift: the other
			// writer's copy of the old lift must not lift it again.
			name:   "a lift older than a later failure in its namespace does not lift it again",
			prev:   State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: lifted(failedIn("shop", early), "shop", early.Add(time.Minute))}},
			ours:   State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: lifted(failedIn("shop", late), "shop", early.Add(time.Minute))}},
			theirs: State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: lifted(failedIn("shop", early), "shop", early.Add(time.Minute))}},
			at:     late,
			want:   State{Refs: map[string]Ref{}, Quarantines: map[string]Quarantine{d2: lifted(failedIn("shop", late), "shop", early.Add(time.Minute))}},
		},
		{
			name:   "a ring a person forgot while we ran stays forgotten",
			prev:   State{Refs: map[string]Ref{"r/a:1": withRings(seenAt(d1, early), map[int][]string{0: {"canary"}, 1: {"shop"}, 2: {"eu"}})}},
			ours:   State{Refs: map[string]Ref{"r/a:1": withRings(seenAt(d2, late), map[int][]string{0: {"canary"}, 1: {"shop"}, 2: {"eu"}})}},
			theirs: State{Refs: map[string]Ref{"r/a:1": withRings(seenAt(d1, early), map[int][]string{1: {"shop"}, 2: {"eu"}})}},
			at:     late,
			want:   State{Refs: map[string]Ref{"r/a:1": withRings(seenAt(d2, late), map[int][]string{1: {"shop"}, 2: {"eu"}})}},
		},
		{
			name:   "times merge to the later",
			prev:   State{Refs: map[string]Ref{}},
			ours:   State{ListedAt: late, LastSuccess: early, Refs: map[string]Ref{}},
			theirs: State{ListedAt: early, LastSuccess: late, Refs: map[string]Ref{}},
			at:     late,
			want:   State{ListedAt: late, LastSuccess: late, Refs: map[string]Ref{}},
		},
		{
			name:   "both writers' restarts are counted: each run is its own entry",
			prev:   State{Refs: map[string]Ref{}, Restarts: map[int64]int{1: 1}},
			ours:   State{Refs: map[string]Ref{}, Restarts: map[int64]int{1: 1, 3: 2}},
			theirs: State{Refs: map[string]Ref{}, Restarts: map[int64]int{1: 1, 2: 5}},
			at:     late,
			want:   State{Refs: map[string]Ref{}, Restarts: map[int64]int{1: 1, 2: 5, 3: 2}},
		},
		{
			name:   "two runs starting in the same second are two entries",
			prev:   State{Refs: map[string]Ref{}},
			ours:   State{Refs: map[string]Ref{}, Restarts: map[int64]int{early.UnixNano() + 1: 1}},
			theirs: State{Refs: map[string]Ref{}, Restarts: map[int64]int{early.UnixNano() + 2: 1}},
			at:     late,
			want:   State{Refs: map[string]Ref{}, Restarts: map[int64]int{early.UnixNano() + 1: 1, early.UnixNano() + 2: 1}},
		},
		{
			name:   "one run's entry is not counted twice; the larger count stands",
			prev:   State{Refs: map[string]Ref{}},
			ours:   State{Refs: map[string]Ref{}, Restarts: map[int64]int{1: 2}},
			theirs: State{Refs: map[string]Ref{}, Restarts: map[int64]int{1: 3}},
			at:     late,
			want:   State{Refs: map[string]Ref{}, Restarts: map[int64]int{1: 3}},
		},
		{
			name:   "a restart we dropped out of our window stays theirs: the cap holds early, never late",
			prev:   State{Refs: map[string]Ref{}, Restarts: map[int64]int{1: 1}},
			ours:   State{Refs: map[string]Ref{}, Restarts: map[int64]int{2: 1}},
			theirs: State{Refs: map[string]Ref{}, Restarts: map[int64]int{1: 1}},
			at:     late,
			want:   State{Refs: map[string]Ref{}, Restarts: map[int64]int{1: 1, 2: 1}},
		},
		{
			name:   "the later full run's start is the window's",
			prev:   State{Refs: map[string]Ref{}},
			ours:   State{Refs: map[string]Ref{}, CapSince: late},
			theirs: State{Refs: map[string]Ref{}, CapSince: early},
			at:     late,
			want:   State{Refs: map[string]Ref{}, CapSince: late},
		},
		{
			name:   "their later full run's start stands against ours",
			prev:   State{Refs: map[string]Ref{}},
			ours:   State{Refs: map[string]Ref{}, CapSince: early},
			theirs: State{Refs: map[string]Ref{}, CapSince: late},
			at:     late,
			want:   State{Refs: map[string]Ref{}, CapSince: late},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			theirs := tc.theirs.Clone()
			got := Merge(tc.prev, tc.ours, tc.theirs, tc.at)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(theirs, tc.theirs); diff != "" {
				t.Errorf("Merge modified its input (-before +after):\n%s", diff)
			}
		})
	}
}

// Past the bound, the oldest runs fold into the oldest kept: the count
// the cap reads never drops.
func TestBoundRestartsKeepsTheCount(t *testing.T) {
	r := map[int64]int{}
	total := 0
	for i := range MaxRestartEntries + 5 {
		r[int64(i+1)] = i%3 + 1
		total += i%3 + 1
	}
	BoundRestarts(r)
	sum := 0
	for _, n := range r {
		sum += n
	}
	if len(r) != MaxRestartEntries || sum != total {
		t.Errorf("%d entries counting %d, want %d counting %d", len(r), sum, MaxRestartEntries, total)
	}
	if _, kept := r[1]; kept {
		t.Error("the oldest entry was kept, a newer one folded")
	}
}

func failedIn(ns string, at time.Time) Quarantine {
	return Quarantine{Why: "rollout failed in " + ns, At: at, Refs: []string{"r/a:1"}, Failed: map[string]time.Time{ns: at}}
}

// lifted adds lifts: namespace, time, namespace, time…
func lifted(q Quarantine, nsAt ...any) Quarantine {
	q.Lifted = map[string]time.Time{}
	for i := 0; i < len(nsAt); i += 2 {
		q.Lifted[nsAt[i].(string)] = nsAt[i+1].(time.Time)
	}
	return q
}

func liftedAll(q Quarantine, at time.Time) Quarantine {
	q.LiftedAll = at
	return q
}

func TestQuarantineHolds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		q     Quarantine
		ns    string
		holds bool
	}{
		{"held where it failed", failedIn("shop", t0), "shop", true},
		{"held in every other namespace", failedIn("shop", t0), "team", true},
		{"a lift in a namespace lifts it there", lifted(failedIn("shop", t0), "team", t1), "team", false},
		{"a lift in one namespace does not lift another", lifted(failedIn("shop", t0), "team", t1), "dev", true},
		{"a failure after a namespace's lift holds there again", lifted(failedIn("shop", t1), "shop", t0), "shop", true},
		{"a lift in the same second as the failure does not count", lifted(failedIn("shop", t0), "shop", t0), "shop", true},
		{"a cluster-wide lift lifts it everywhere", liftedAll(failedIn("shop", t0), t1), "dev", false},
		{"a failure after a cluster-wide lift holds again", liftedAll(failedIn("shop", t1), t0), "dev", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.q.HoldsIn(tc.ns); got != tc.holds {
				t.Errorf("HoldsIn(%s) = %v, want %v", tc.ns, got, tc.holds)
			}
		})
	}
}

func TestBoundQuarantinesForgetsOldTombstonesFirst(t *testing.T) {
	qs := map[string]Quarantine{}
	for i := range maxQuarantines + 2 {
		qs[fmt.Sprintf("sha256:%064x", i)] = failedIn("shop", t0.Add(time.Duration(i)*time.Second))
	}
	recent, old := fmt.Sprintf("sha256:%064x", 5), fmt.Sprintf("sha256:%064x", 6)
	qs[recent] = liftedAll(qs[recent], t1)
	qs[old] = liftedAll(qs[old], t1)
	BoundQuarantines(qs, t1.Add(time.Hour))
	if len(qs) != maxQuarantines {
		t.Fatalf("%d quarantines kept, want %d", len(qs), maxQuarantines)
	}
	for _, gone := range []string{recent, old} {
		if _, ok := qs[gone]; ok {
			t.Errorf("quarantine %s lifted everywhere kept over ones that hold", gone)
		}
	}
	BoundQuarantines(qs, t1.Add(QuarantineTombstone+time.Hour))
	if len(qs) != maxQuarantines {
		t.Errorf("quarantines that hold were forgotten: %d left", len(qs))
	}
	q := liftedAll(failedIn("shop", t0), t1)
	qs = map[string]Quarantine{d1: q, d2: failedIn("shop", t0)}
	BoundQuarantines(qs, t1.Add(QuarantineTombstone-time.Minute))
	if _, ok := qs[d1]; !ok {
		t.Errorf("a tombstone younger than %s was forgotten", QuarantineTombstone)
	}
	BoundQuarantines(qs, t1.Add(QuarantineTombstone+time.Minute))
	if _, ok := qs[d1]; ok || len(qs) != 1 {
		t.Errorf("after %s: %v, want only the quarantine that holds", QuarantineTombstone, qs)
	}
}

// withRings is r with rings known to follow it in namespaces, each
// healthy since r was checked.
func withRings(r Ref, members map[int][]string) Ref {
	r.RingMembers = members
	r.Rings = map[int]time.Time{}
	for ring := range members {
		r.Rings[ring] = r.Checked
	}
	return r
}

func withExcept(r Ref, key string, e Exception) Ref {
	r = r.clone()
	if r.Except == nil {
		r.Except = map[string]Exception{}
	}
	r.Except[key] = e
	return r
}
