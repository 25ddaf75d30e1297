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
