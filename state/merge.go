package state

import (
	"reflect"
	"time"
)

// Merge returns what to write when another writer saved theirs after this
// run read prev and computed ours at time at. Each reference is merged on
// its own, by observation time, so that neither writer's newer knowledge
// is lost and no digest moves backwards:
//   - a reference this run changed is written as this run saw it, unless
//     the other writer looked it up later; the workloads this run rolled
//     back after that writer's listing keep this run's exception (that
//     writer saw them mid-rollout);
//   - a reference this run pruned is dropped, unless the other writer saw
//     it in use later;
//   - a reference the other writer pruned after a newer listing than this
//     run's stays pruned;
//   - everything else is the other writer's;
//   - restarts counted by the cap are the union of both writers' runs.
//   - quarantines are the union of both, merged field by field (see
//     mergeQuarantine): a quarantine or a lift either writer recorded is
//     never lost, and a cluster-wide lift is not undone by a writer that
//     read the state before it.
//   - what change context read of digests is the union of both, bounded
//     (see BoundProvenance).
//   - a ring the other writer forgot (only a person forgets one: kubectl
//     urunner forget-ring) stays forgotten.
func Merge(prev, ours, theirs State, at time.Time) State {
	out := theirs.Clone()
	if out.Refs == nil {
		out.Refs = map[string]Ref{}
	}
	theirsNewerListing := theirs.ListedAt.After(ours.ListedAt)
	for k, o := range ours.Refs {
		p, inPrev := prev.Refs[k]
		if inPrev && reflect.DeepEqual(p, o) {
			continue // unchanged by this run: theirs stands, pruned or not
		}
		t, inTheirs := theirs.Refs[k]
		switch {
		case inTheirs && t.Checked.After(o.Checked):
			out.Refs[k] = rolledBackSince(out.Refs[k], o)
		case !inTheirs && inPrev && theirsNewerListing:
			// They pruned it after a listing newer than ours.
		default:
			out.Refs[k] = forgotten(o.clone(), p, t, inPrev && inTheirs)
		}
	}
	for k := range prev.Refs {
		if _, kept := ours.Refs[k]; kept {
			continue
		}
		if t, ok := out.Refs[k]; ok && !t.Checked.After(at) {
			delete(out.Refs, k)
		}
	}
	if ours.ListedAt.After(out.ListedAt) {
		out.ListedAt = ours.ListedAt
	}
	if ours.LastSuccess.After(out.LastSuccess) {
		out.LastSuccess = ours.LastSuccess
	}
	if ours.CountedAt.After(out.CountedAt) {
		out.Workloads, out.CountedAt = ours.Workloads, ours.CountedAt
	}
	mergeRestarts(&out, ours)
	out.Quarantines = mergeQuarantines(ours.Quarantines, out.Quarantines)
	mergeProvenance(&out, ours)
	return out
}

// mergeRestarts keeps every run's restarts: a run is keyed by its start,
// so the same key is the same run, whose larger count is kept. What one
// writer dropped out of its window comes back and is dropped again by the
// next run; what it folded is counted twice until then: the cap may hold
// early, never late.
func mergeRestarts(out *State, ours State) {
	if ours.CapSince.After(out.CapSince) {
		out.CapSince = ours.CapSince
	}
	for at, n := range ours.Restarts {
		if out.Restarts == nil {
			out.Restarts = map[int64]int{}
		}
		out.Restarts[at] = max(out.Restarts[at], n)
	}
	BoundRestarts(out.Restarts)
}

// mergeQuarantines returns the union of a and b, each digest in both
// merged by mergeQuarantine. b may be changed.
func mergeQuarantines(a, b map[string]Quarantine) map[string]Quarantine {
	if len(a) == 0 {
		return b
	}
	if b == nil {
		b = make(map[string]Quarantine, len(a))
	}
	for d, q := range a {
		if p, ok := b[d]; ok {
			b[d] = mergeQuarantine(q, p)
		} else {
			b[d] = q.clone()
		}
	}
	return b
}

// mergeQuarantine merges two records of one quarantine: every time is the
// later of the two (per namespace for failures and lifts), the references
// the union, and why the later failure's. Whether a lift holds is decided
// from the merged times (Quarantine.HoldsIn), so a lift recorded before a
// later failure is not resurrected by the merge.
func mergeQuarantine(a, b Quarantine) Quarantine {
	out := a.clone()
	if b.At.After(a.At) || b.At.Equal(a.At) && b.Why > a.Why {
		out.Why, out.At = b.Why, b.At
	}
	for _, ref := range b.Refs {
		out.AddRef(ref)
	}
	out.Failed = laterTimes(out.Failed, b.Failed)
	out.Lifted = laterTimes(out.Lifted, b.Lifted)
	if b.LiftedAll.After(out.LiftedAll) {
		out.LiftedAll = b.LiftedAll
	}
	return out
}

// laterTimes merges b into a, keeping the later time of each key.
func laterTimes(a, b map[string]time.Time) map[string]time.Time {
	for k, t := range b {
		if a == nil {
			a = make(map[string]time.Time, len(b))
		}
		if t.After(a[k]) {
			a[k] = t
		}
	}
	return a

}

// rolledBackSince adds to t, a reference another writer listed later than
// this run, the exceptions this run saw after that listing: the workloads
// it rolled back, which that writer saw on the digest of their failed
// rollout. Each holds only while its workload's record is the one it was
// rolled back to, so a later restart still wins.
func rolledBackSince(t, o Ref) Ref {
	for key, e := range o.Except {
		if e.At.IsZero() || e.At.Before(t.Checked) {
			continue
		}
		if t.Except == nil {
			t.Except = map[string]Exception{}
		}
		t.Except[key] = e
	}
	return t
}

// forgotten drops from o the rings that prev knew and theirs no longer
// does: a run never drops a known ring, so the other writer was a person
// forgetting it, and a run that read before must not bring it back.
func forgotten(o, prev, theirs Ref, both bool) Ref {
	if !both {
		return o
	}
	for ring := range prev.RingMembers {
		if _, kept := theirs.RingMembers[ring]; !kept {
			delete(o.RingMembers, ring)
			delete(o.Rings, ring)
		}
	}
	if len(o.RingMembers) == 0 {
		o.RingMembers = nil
	}
	if len(o.Rings) == 0 {
		o.Rings = nil
	}
	return o
}
