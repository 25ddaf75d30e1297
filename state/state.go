package state

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"
)

// State is urunner's memory.
type State struct {
	// ListedAt is when the last complete listing of workloads was taken,
	// in the API server's clock: a workload created at or after it was not
	// there to be seen, and is new to the next run.
	ListedAt time.Time
	// LastSuccess is when the last run that exited 0 started.
	LastSuccess time.Time
	// Workloads is how many workloads of the watched kinds the cluster
	// held at CountedAt: what decides between listing cluster-wide and
	// per namespace.
	Workloads int
	CountedAt time.Time
	// Refs maps a canonical image reference (registry/repository:tag) to
	// what urunner knows of it.
	Refs map[string]Ref
	// CapSince is when the last full (unrestricted) run started, to the
	// nanosecond (its RunKey): the restart cap's default window
	// (URUNNER_CONF_MAX_RESTARTS) runs from there.
	CapSince time.Time
	// Restarts are the restarts of recent runs, which the cap counts: how
	// many workloads each run restarted, keyed by the run's start in Unix
	// nanoseconds (see RunKey). The start, to the nanosecond, tells two
	// runs apart, so that merging two writers' restarts never loses one.
	Restarts map[int64]int
	// Quarantines maps a digest whose verified rollout failed in this
	// cluster to its quarantine: it belongs to the digest, not to a tag, so
	// a tag that moves on and back, or another tag of the same digest, is
	// still held.
	Quarantines map[string]Quarantine
	// Provenance maps a digest to what change context read of it, so that
	// a move from it reads only the digest it moves to. A cache, kept under
	// ProvenanceKey beside the document (see BoundProvenance).
	Provenance map[string]Provenance
}

// Quarantine is what urunner remembers of a quarantined digest. Every field
// only grows (times move forward, sets gain members), which is what lets
// overlapping runs merge quarantines without losing one (see Merge).
type Quarantine struct {
	// Why is the latest failure, bounded; At is when it was recorded.
	Why string
	At  time.Time
	// Refs are the references whose rollouts failed with it, sorted, at
	// most maxQuarantineRefs.
	Refs []string
	// Failed maps a namespace to its latest failed rollout onto the
	// digest: a lift there counts only when later.
	Failed map[string]time.Time
	// Lifted maps a namespace to when a run applied a workload's lift
	// annotation there: its workloads may restart onto the digest.
	Lifted map[string]time.Time
	// LiftedAll is when `kubectl urunner lift` lifted it everywhere. It
	// counts while later than At: a later failure quarantines again.
	LiftedAll time.Time
}

// HoldsIn reports whether the quarantine holds the digest's restarts in
// namespace ns.
func (q Quarantine) HoldsIn(ns string) bool {
	if q.LiftedAll.After(q.At) {
		return false
	}
	l, ok := q.Lifted[ns]
	return !ok || !l.After(q.Failed[ns])
}

// LiftedEverywhere reports whether a cluster-wide lift holds.
func (q Quarantine) LiftedEverywhere() bool { return q.LiftedAll.After(q.At) }

// LiftedNamespaces returns the namespaces where a lift holds, sorted.
func (q Quarantine) LiftedNamespaces() []string {
	var out []string
	for _, ns := range slices.Sorted(maps.Keys(q.Lifted)) {
		if q.Lifted[ns].After(q.Failed[ns]) {
			out = append(out, ns)
		}
	}
	return out
}

func (q Quarantine) clone() Quarantine {
	q.Refs = slices.Clone(q.Refs)
	q.Failed = maps.Clone(q.Failed)
	q.Lifted = maps.Clone(q.Lifted)
	return q
}

// Bounds of the quarantines: they are few (each is a failed rollout a
// person should look at), and must never crowd out the references.
const (
	maxQuarantines    = 1000
	maxQuarantineRefs = 10
	// QuarantineTombstone is how long a quarantine lifted everywhere is
	// kept: a run that read the state before the lift and saves after it
	// merges with the lift instead of bringing the quarantine back. Runs
	// last minutes; a week leaves room for a stuck one.
	QuarantineTombstone = 7 * 24 * time.Hour
)

// BoundQuarantines forgets, at now, the quarantines lifted everywhere for
// longer than QuarantineTombstone, then, past maxQuarantines, the oldest
// lifted everywhere and then the oldest by At.
func BoundQuarantines(qs map[string]Quarantine, now time.Time) {
	for d, q := range qs {
		if q.LiftedEverywhere() && now.Sub(q.LiftedAll) > QuarantineTombstone {
			delete(qs, d)
		}
	}
	if len(qs) <= maxQuarantines {
		return
	}
	order := slices.SortedFunc(maps.Keys(qs), func(a, b string) int {
		qa, qb := qs[a], qs[b]
		if la, lb := qa.LiftedEverywhere(), qb.LiftedEverywhere(); la != lb {
			if la {
				return -1
			}
			return 1
		}
		return cmp.Or(qa.At.Compare(qb.At), strings.Compare(a, b))
	})
	for _, d := range order[:len(qs)-maxQuarantines] {
		delete(qs, d)
	}
}

// AddRef adds ref to the references that failed with q, sorted; past
// maxQuarantineRefs no more are added (they only inform a person).
func (q *Quarantine) AddRef(ref string) {
	if i, found := slices.BinarySearch(q.Refs, ref); !found && len(q.Refs) < maxQuarantineRefs {
		q.Refs = slices.Insert(q.Refs, i, ref)
	}
}

// viewQuarantines fills each reference's Quarantine view.
func (s *State) viewQuarantines() {
	for d, q := range s.Quarantines {
		if q.LiftedEverywhere() {
			continue
		}
		for _, ref := range q.Refs {
			r, ok := s.Refs[ref]
			if !ok || r.Digest != d {
				continue
			}
			if r.Quarantine == nil {
				r.Quarantine = map[string]string{}
			}
			r.Quarantine[d] = q.Why
			s.Refs[ref] = r
		}
	}
}

// Ref is what urunner knows of one image reference.
type Ref struct {
	// Digest is what the tag pointed at in its last successful lookup.
	// Empty only while every lookup of a reference seen for the first time
	// has failed.
	Digest string
	// Seen is when urunner first saw the tag point at Digest.
	Seen time.Time
	// Checked is when the reference was last looked up, successfully or
	// not: the observation time by which concurrent writers are merged.
	Checked time.Time
	// Base is the digest the reference's workloads are believed to run
	// when nothing else says otherwise; empty means Digest.
	Base string
	// Children holds, for Digest and Base when they are multi-platform
	// indexes, their child manifest digests by watched platform.
	Children map[string]map[string]string
	// Failing is when the current streak of failed lookups began; zero
	// when the last lookup succeeded. Error is the last failure, bounded.
	Failing time.Time
	Error   string
	// Except holds, for the few containers (WorkloadContainer) believed to
	// run something else than their default (their workload's restarted-for
	// record, else Base), what they run.
	Except map[string]Exception
	// Quarantine is a view, not stored: the digest the tag points at, to
	// why, when a rollout of the reference failed with it and it is not
	// lifted everywhere (State.Quarantines). Decode fills it for readers of
	// the version 3 field; the rules read State.Quarantines.
	Quarantine map[string]string
	// Rings maps a ring to since when all its workloads following the
	// reference have run Digest healthily (only while rings are used).
	Rings map[int]time.Time
	// RingMembers maps each ring known to follow the reference (while its
	// workloads are in more than one ring) to the namespaces its members
	// were last listed in. A known ring missing from a later listing, or
	// in a namespace that did not list, holds the rings after it: only a
	// person forgets it (kubectl urunner forget-ring).
	RingMembers map[int][]string
}

// BaseDigest returns the digest the reference's workloads are believed
// to run by default.
func (r Ref) BaseDigest() string {
	if r.Base != "" {
		return r.Base
	}
	return r.Digest
}

// Exception is what a container runs, recorded with the digest its
// workload's restarted-for annotation recorded for it then ("" for none):
// once the workload is restarted again, the exception no longer holds.
type Exception struct {
	Runs   string
	Record string
	// At is when the run saw it after its listing: it rolled the workload
	// back. Merge keeps such an exception over another writer's reference
	// listed before then, which saw the workload mid-rollout. Not stored:
	// it only matters between two writers of one save.
	At time.Time
}

// WorkloadContainer names a container of a workload in Except:
// "namespace/Kind/name/container".
func WorkloadContainer(namespace, kind, name, container string) string {
	return namespace + "/" + kind + "/" + name + "/" + container
}

// Clone returns a deep copy.
func (s State) Clone() State {
	c := s
	c.Restarts = maps.Clone(s.Restarts)
	c.Refs = make(map[string]Ref, len(s.Refs))
	for k, r := range s.Refs {
		c.Refs[k] = r.clone()
	}
	if s.Quarantines != nil {
		c.Quarantines = make(map[string]Quarantine, len(s.Quarantines))
		for d, q := range s.Quarantines {
			c.Quarantines[d] = q.clone()
		}
	}
	c.Provenance = maps.Clone(s.Provenance)
	return c
}

// Clone returns a deep copy.
func (r Ref) Clone() Ref { return r.clone() }

func (r Ref) clone() Ref {
	r.Except = maps.Clone(r.Except)
	r.Quarantine = maps.Clone(r.Quarantine)
	r.Rings = maps.Clone(r.Rings)
	if r.RingMembers != nil {
		rm := make(map[int][]string, len(r.RingMembers))
		for ring, nss := range r.RingMembers {
			rm[ring] = slices.Clone(nss)
		}
		r.RingMembers = rm
	}
	if r.Children != nil {
		ch := make(map[string]map[string]string, len(r.Children))
		for d, m := range r.Children {
			ch[d] = maps.Clone(m)
		}
		r.Children = ch
	}
	return r
}

// Keys returns the references in a stable order.
func (s State) Keys() []string { return slices.Sorted(maps.Keys(s.Refs)) }

// maxError bounds a stored error: a registry may answer with a page of
// HTML, and ten thousand of those must still fit in a ConfigMap.
const maxError = 200

// BoundError returns msg cut to at most maxError bytes, on a rune boundary.
func BoundError(msg string) string {
	if len(msg) <= maxError {
		return msg
	}
	cut := maxError - len("…")
	for cut > 0 && !utf8RuneStart(msg[cut]) {
		cut--
	}
	return strings.ToValidUTF8(msg[:cut], "") + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// RunKey is a run's key in State.Restarts: its start in Unix nanoseconds.
func RunKey(start time.Time) int64 { return start.UnixNano() }

// MaxRunRestarts bounds one entry of State.Restarts.
const MaxRunRestarts = 1 << 30

// MaxRestartEntries bounds State.Restarts; older runs are folded into the
// oldest one kept, so that a bound never undercounts.
const MaxRestartEntries = 1000

// BoundRestarts folds the oldest entries of r beyond MaxRestartEntries
// into the oldest one kept.
func BoundRestarts(r map[int64]int) {
	if len(r) <= MaxRestartEntries {
		return
	}
	keys := slices.Sorted(maps.Keys(r))
	fold := keys[:len(keys)-MaxRestartEntries]
	into := keys[len(fold)]
	for _, k := range fold {
		r[into] = min(r[into]+r[k], MaxRunRestarts)
		delete(r, k)
	}
}
