package policy

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/urunner/urunner/state"
)

// Ledger gathers a run's lookups and decisions and turns them into what
// urunner remembers next (see Next). It is the only writer of the state's
// contents.
type Ledger struct {
	settings  Settings
	prev      state.State
	now       time.Time // the run's clock: when a digest was first seen
	listed    time.Time // the API server's clock when the workloads were listed
	refs      map[string]*refLedger
	retracted []Retraction
	restarts  int // workloads restarted this run, for the cap's window
	// failed are this run's failed rollouts, lifts the quarantines it
	// lifted in a namespace.
	failed []failedRollout
	lifts  []Lift
	// rolledBack are the decisions whose failed rollout was rolled back,
	// with when the failure was seen (see exceptions).
	rolledBack map[*Decision]time.Time
}

// failedRollout is a digest whose rollout failed, where and when.
type failedRollout struct {
	digest, ref, namespace, why string
	at                          time.Time
}

// Retraction is a digest a tag pointed at while it soaked, never restarted
// onto, that the tag left again: a push corrected before it reached anyone.
type Retraction struct {
	Ref, From, To string
	// Seen is when urunner first saw the tag point at From.
	Seen time.Time
}

type refLedger struct {
	digest   string // of the first successful lookup
	index    bool
	children map[string]string
	err      error // first failure, when no lookup succeeded
	ok       bool
	// containers decided this run, with what they are believed to run
	// after it and what their workload's annotation records after it.
	entries []entry
}

// entry is one decided container: container i of decision d, with how
// the decision was carried out. What the ledger reads of it is derived
// from the decision, which the run keeps anyway: one entry per listed
// container lives until Next, so it is kept small.
type entry struct {
	d                    *Decision
	i                    int32
	restarted, rolledOut bool
}

func (e entry) container() *ContainerDecision { return &e.d.Containers[e.i] }

// after is what the container is believed to run after the run.
func (e entry) after() string { return e.container().after(e.restarted) }

// annotated is what its workload's restarted-for records after the run.
func (e entry) annotated() string {
	c := e.container()
	if e.restarted && c.Verdict == Moved {
		return c.To
	}
	return recorded(e.d.Workload, *c.Container)
}

// healthy is whether its workload runs its template healthily after the
// run: a restarted one only once its verified rollout completed.
func (e entry) healthy() bool { return e.d.Workload.Healthy && !e.restarted || e.rolledOut }

func (e entry) key() string { return containerKey(e.d.Workload, e.container().Name) }

// NewLedger starts the ledger of a run with settings s that read prev,
// runs at now and listed the workloads at listed (the API server's time).
func NewLedger(s Settings, prev state.State, now, listed time.Time) *Ledger {
	return &Ledger{settings: s, prev: prev, now: now, listed: listed, refs: map[string]*refLedger{}}
}

// Retracted returns the digests Next found retracted.
func (l *Ledger) Retracted() []Retraction { return l.retracted }

func (l *Ledger) ref(r string) *refLedger {
	rl := l.refs[r]
	if rl == nil {
		rl = &refLedger{}
		l.refs[r] = rl
	}
	return rl
}

// Observe records a lookup's result. Several lookups of one reference
// (with different credentials) make one record: it succeeded if any did.
func (l *Ledger) Observe(lk Lookup, r Result) {
	rl := l.ref(lk.Ref)
	switch {
	case r.Err == nil && !rl.ok:
		rl.ok, rl.digest, rl.index, rl.children, rl.err = true, r.Digest, r.Index, r.Children, nil
	case r.Err != nil && !rl.ok && rl.err == nil:
		rl.err = r.Err
	}
}

// Record adds what a decision leaves each of its containers running, once
// carried out: restarted says whether the workload's restart was patched
// (or found done by another run), rolledOut whether its verified rollout
// then completed (a restarted workload is healthy on its new digest only
// then). The ledger reads d until Next: d must not change before.
func (l *Ledger) Record(d *Decision, restarted, rolledOut bool) {
	if restarted {
		l.restarts++
	}
	for i, c := range d.Containers {
		if c.Verdict == Untracked || c.Verdict == NotLookedUp {
			continue
		}
		rl := l.ref(c.Ref)
		rl.entries = append(rl.entries, entry{d, int32(i), restarted, rolledOut})
	}
}

// Quarantine records that the restart d decided did not roll out (why
// says where and how), as found at time at: each digest it moved to is
// quarantined, and a lift of it in the workload's namespace no longer
// counts. at is when the failure was seen, after the rollout wait: a lift
// another run applies meanwhile is older, and does not lift it. A decision
// recorded as not restarted was rolled back: its containers are
// remembered on their old digests as of at (see exceptions).
func (l *Ledger) Quarantine(d *Decision, why string, at time.Time) {
	for _, c := range d.Moves() {
		l.failed = append(l.failed, failedRollout{digest: c.To, ref: c.Ref, namespace: d.Workload.Namespace, why: why, at: at})
	}
	if l.rolledBack == nil {
		l.rolledBack = map[*Decision]time.Time{}
	}
	l.rolledBack[d] = at
}

// Lift records the quarantines the run lifted (see Fleet.Lifts).
func (l *Ledger) Lift(lifts []Lift) { l.lifts = append(l.lifts, lifts...) }

// Listing says how much of the cluster this run saw.
type Listing struct {
	// Complete is true when every watched namespace was listed.
	Complete bool
	// Restricted is true when the run looked up only some references (a
	// push): the others were not decided and are left as they were.
	Restricted bool
	// Failed are the namespaces whose listing failed: what is remembered
	// of their workloads is kept.
	Failed map[string]bool
}

// Next returns what urunner remembers after the run:
//   - a reference looked up successfully records its digest (and since
//     when it has pointed there, and when it was last checked); one whose
//     lookups all failed keeps everything and records the failure;
//   - its base is what most of its containers without a restarted-for
//     record run now, and every container that runs something else than
//     its default (its record, else the base) is an exception;
//   - a reference no listed workload uses any more is forgotten, but only
//     after a complete, unrestricted listing.
func (l *Ledger) Next(ls Listing) state.State {
	next := state.State{ListedAt: l.prev.ListedAt, LastSuccess: l.prev.LastSuccess, Workloads: l.prev.Workloads,
		CountedAt: l.prev.CountedAt, Refs: make(map[string]state.Ref, len(l.prev.Refs))}
	prune := ls.Complete && !ls.Restricted
	if prune {
		next.ListedAt = l.listed
	}
	next.CapSince, next.Restarts = l.capWindow(ls)
	for k, r := range l.prev.Refs {
		if _, decided := l.refs[k]; !decided && !prune {
			next.Refs[k] = r
		}
	}
	for k, rl := range l.refs {
		prev, had := l.prev.Refs[k]
		if n, keep := l.nextRef(k, prev, had, rl, ls); keep {
			next.Refs[k] = n
		}
	}
	next.Quarantines = l.quarantines()
	return next
}

// quarantines are the remembered quarantines, with this run's lifts (at
// the run's time) and failed rollouts (at the time each was seen), within
// their bounds. A quarantine is never forgotten when its tag moves.
func (l *Ledger) quarantines() map[string]state.Quarantine {
	out := state.State{Quarantines: l.prev.Quarantines}.Clone().Quarantines
	if out == nil {
		out = map[string]state.Quarantine{}
	}
	for _, lf := range l.lifts {
		q, ok := out[lf.Digest]
		if !ok {
			continue
		}
		if q.Lifted == nil {
			q.Lifted = map[string]time.Time{}
		}
		// The lift is of the failures this run saw: later than each, even
		// when one was recorded in the second the run started.
		at := l.now
		if f := q.Failed[lf.Namespace]; !at.After(f) {
			at = f.Add(time.Second)
		}
		if at.After(q.Lifted[lf.Namespace]) {
			q.Lifted[lf.Namespace] = at
		}
		out[lf.Digest] = q
	}
	for _, f := range l.failed {
		q := out[f.digest]
		if f.at.After(q.At) || q.At.IsZero() {
			q.At, q.Why = f.at, state.BoundError(f.why)
		}
		q.AddRef(f.ref)
		if q.Failed == nil {
			q.Failed = map[string]time.Time{}
		}
		if f.at.After(q.Failed[f.namespace]) {
			q.Failed[f.namespace] = f.at
		}
		out[f.digest] = q
	}
	state.BoundQuarantines(out, l.now)
	if len(out) == 0 {
		return nil
	}
	return out
}

func (l *Ledger) nextRef(ref string, prev state.Ref, had bool, rl *refLedger, ls Listing) (state.Ref, bool) {
	if !rl.ok {
		if rl.err == nil {
			return prev, had // only decided containers, nothing looked up
		}
		n := prev.Clone()
		if n.Failing.IsZero() || n.Failing.After(l.now) {
			n.Failing = l.now
		}
		n.Error = state.BoundError(rl.err.Error())
		return n, true
	}
	l.retraction(ref, prev, rl, ls)
	n := state.Ref{Digest: rl.digest, Seen: prev.Seen, Checked: l.listed}
	if prev.Digest != rl.digest || n.Seen.IsZero() || n.Seen.After(l.now) {
		n.Seen = l.now
	}
	n.Base = l.base(prev, had, rl, ls)
	if n.Base == n.Digest {
		n.Base = ""
	}
	n.Except = l.exceptions(prev, rl, n.BaseDigest(), ls)
	n.Children = children(prev, rl, n)
	n.Rings = l.rings(prev, rl, n.Digest)
	n.RingMembers = ringMembers(prev, rl, ls)
	return n, true
}

// retraction notes a digest that soaked and was left: the tag pointed at
// it (and no workload ran it) and now points elsewhere, within the longest
// soak of the reference's workloads. Whether a workload ran it is read
// from this run's entries, not from the base: once every workload carries
// a restarted-for record the base defaults to the tag's digest, which no
// one runs. Only while a namespace could not be listed does a base on the
// digest say an unlisted workload may run it.
func (l *Ledger) retraction(ref string, prev state.Ref, rl *refLedger, ls Listing) {
	if prev.Digest == "" || prev.Digest == rl.digest || len(ls.Failed) > 0 && prev.Digest == prev.BaseDigest() {
		return
	}
	var soak time.Duration
	for _, e := range rl.entries {
		if e.after() == prev.Digest || e.annotated() == prev.Digest {
			return // it reached a workload: not retracted, moved on
		}
		s, _ := soakOf(l.settings, e.d.Workload)
		soak = max(soak, s)
	}
	if soak > 0 && l.now.Sub(prev.Seen) < soak {
		l.retracted = append(l.retracted, Retraction{Ref: ref, From: prev.Digest, To: rl.digest, Seen: prev.Seen})
	}
}

// rings records, while a reference's workloads are in more than one ring,
// since when each ring's workloads have all run the digest healthily.
func (l *Ledger) rings(prev state.Ref, rl *refLedger, digest string) map[int]time.Time {
	members := map[int]bool{} // ring → all healthy on the digest
	for _, e := range rl.entries {
		ring := e.d.Workload.Ring
		ok, seen := members[ring]
		members[ring] = (ok || !seen) && e.after() == digest && e.healthy()
	}
	if len(members) < 2 {
		return nil
	}
	out := map[int]time.Time{}
	for ring, healthy := range members {
		if !healthy {
			continue
		}
		since, had := prev.Rings[ring]
		if !had || prev.Digest != digest || since.After(l.now) {
			since = l.now
		}
		out[ring] = since
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// ringMembers remembers, while a reference's workloads are in more than
// one ring, the namespaces each ring's members are in: this listing's,
// and for a ring missing from it or a namespace that did not list, what
// was remembered. A known ring is forgotten only by a person (kubectl
// urunner forget-ring); until then a missing one holds the rings after
// it. A ring seen for the first time is simply added.
func ringMembers(prev state.Ref, rl *refLedger, ls Listing) map[int][]string {
	sets := map[int]map[string]bool{}
	add := func(ring int, ns string) {
		if sets[ring] == nil {
			sets[ring] = map[string]bool{}
		}
		sets[ring][ns] = true
	}
	for _, e := range rl.entries {
		add(e.d.Workload.Ring, e.d.Workload.Namespace)
	}
	for ring, nss := range prev.RingMembers {
		_, listed := sets[ring]
		for _, ns := range nss {
			if !listed || ls.Failed[ns] {
				add(ring, ns)
			}
		}
	}
	if len(sets) < 2 {
		return nil
	}
	out := make(map[int][]string, len(sets))
	for ring, set := range sets {
		out[ring] = slices.Sorted(maps.Keys(set))
	}
	return out
}

// base is the digest most containers without a restarted-for record are
// believed to run after the run: the default that needs no exception.
// While a namespace could not be listed, the base stays, since the
// unlisted workloads may rely on it.
func (l *Ledger) base(prev state.Ref, had bool, rl *refLedger, ls Listing) string {
	if len(ls.Failed) > 0 && had && prev.Digest != "" {
		return prev.BaseDigest()
	}
	count := map[string]int{}
	for _, e := range rl.entries {
		if after := e.after(); after != "" && e.annotated() == "" {
			count[after]++
		}
	}
	if len(count) == 0 {
		return rl.digest
	}
	return slices.MaxFunc(slices.Sorted(maps.Keys(count)), func(a, b string) int {
		return cmp.Or(cmp.Compare(count[a], count[b]), cmp.Compare(boolInt(a == rl.digest), boolInt(b == rl.digest)), strings.Compare(b, a))
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (l *Ledger) exceptions(prev state.Ref, rl *refLedger, base string, ls Listing) map[string]state.Exception {
	out := map[string]state.Exception{}
	for key, d := range prev.Except {
		if ns, _, _ := strings.Cut(key, "/"); ls.Failed[ns] {
			out[key] = d
		}
	}
	for _, e := range rl.entries {
		after, annotated := e.after(), e.annotated()
		def := annotated
		if def == "" {
			def = base
		}
		if at, ok := l.rolledBack[e.d]; ok && !e.restarted && after != "" {
			// Rolled back after the listing: kept as seen then, even when it
			// is the default, should another run that listed the workload
			// mid-rollout save first (state.Merge).
			out[e.key()] = state.Exception{Runs: after, Record: annotated, At: at}
		} else if after != "" && after != def {
			out[e.key()] = state.Exception{Runs: after, Record: annotated}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// children keeps the watched platforms' children of the digest and the
// base: the ones a later move is compared with.
func children(prev state.Ref, rl *refLedger, n state.Ref) map[string]map[string]string {
	out := map[string]map[string]string{}
	if rl.children != nil {
		out[n.Digest] = maps.Clone(rl.children)
	} else if c, ok := prev.Children[n.Digest]; ok {
		out[n.Digest] = c
	}
	if c, ok := prev.Children[n.BaseDigest()]; ok && n.BaseDigest() != n.Digest {
		out[n.BaseDigest()] = c
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// capWindow returns what the cap counts after the run (see Run.Cap): a
// full run starts a new window; this run's restarts are added, and the
// runs out of the window forgotten.
func (l *Ledger) capWindow(ls Listing) (time.Time, map[int64]int) {
	since := l.prev.CapSince
	if !ls.Restricted {
		since = time.Unix(0, state.RunKey(l.now)).UTC()
	}
	w := l.settings.capFrom(since, l.now)
	out := map[int64]int{}
	for at, n := range l.prev.Restarts {
		if w.holds(at) {
			out[at] = n
		}
	}
	if l.restarts > 0 {
		out[state.RunKey(l.now)] += l.restarts
	}
	state.BoundRestarts(out)
	if len(out) == 0 {
		out = nil
	}
	return since, out
}

// Succeeded records that the run exited 0.
func Succeeded(s *state.State, start time.Time) { s.LastSuccess = start }
