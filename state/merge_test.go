package state

import (
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
