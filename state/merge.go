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
//     the other writer looked it up later;
//   - a reference this run pruned is dropped, unless the other writer saw
//     it in use later;
//   - a reference the other writer pruned after a newer listing than this
//     run's stays pruned;
//   - a ring the other writer forgot (only a person forgets one: kubectl
//     urunner forget-ring) stays forgotten;
//   - everything else is the other writer's.
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
	return out
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
