package state

import (
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
	// Quarantine maps a digest of the reference whose verified rollout
	// failed to why: nothing restarts onto it until the tag moves on or a
	// person lifts it.
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
}

// WorkloadContainer names a container of a workload in Except:
// "namespace/Kind/name/container".
func WorkloadContainer(namespace, kind, name, container string) string {
	return namespace + "/" + kind + "/" + name + "/" + container
}

// Clone returns a deep copy.
func (s State) Clone() State {
	c := s
	c.Refs = make(map[string]Ref, len(s.Refs))
	for k, r := range s.Refs {
		c.Refs[k] = r.clone()
	}
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
