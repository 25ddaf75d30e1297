package policy

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urunner/urunner/state"
)

// setting returns a workload's annotation, else its namespace's.
func (w *Workload) setting(key string) (string, bool) {
	if v, ok := w.Annotations[key]; ok {
		return v, true
	}
	v, ok := w.NamespaceAnnotations[key]
	return v, ok
}

// soakOf is how long a new digest soaks before w restarts onto it.
func soakOf(s Settings, w *Workload) (time.Duration, error) {
	v, ok := w.setting(SoakAnnotation)
	if !ok {
		return s.Soak, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("annotation %s=%q is not a duration", SoakAnnotation, v)
	}
	return d, nil
}

// firstSeen is when urunner first saw ref point at digest: the state's
// time when it already pointed there, else now.
func firstSeen(mem state.State, ref, digest string, now time.Time) time.Time {
	if r := mem.Refs[ref]; r.Digest == digest && !r.Seen.IsZero() && !r.Seen.After(now) {
		return r.Seen
	}
	return now
}

// soaking holds a move onto a digest seen for less than the soak time: a
// tag moved in error is often moved again within minutes, and then the
// digest in between never reaches a workload. A malformed annotation holds.
func soaking(d Due) Held {
	soak, err := soakOf(d.Settings, d.Workload)
	if err != nil {
		return holds(err.Error())
	}
	if soak == 0 {
		return Held{}
	}
	for _, c := range d.Moves {
		seen := firstSeen(d.Mem, c.Ref, c.To, d.Now)
		if d.Now.Sub(seen) < soak {
			return Held{fmt.Sprintf("soaking: %s first seen at %s, restarts once unchanged for %s (at %s)", short(c.To),
				seen.UTC().Format(time.RFC3339), soak, seen.Add(soak).UTC().Format(time.RFC3339)), seen.Add(soak)}
		}
	}
	return Held{}
}

// unsigned holds a move onto a digest the signature policy did not verify.
// A digest with no signature at all waits for one within the grace; one
// signed by no trusted key or identity, or whose signatures could not be
// read, holds at once. A refusal is the reason given before a wait.
func unsigned(d Due) Held {
	if !d.Settings.RequireSignature {
		return Held{}
	}
	var waiting Held
	for _, c := range d.Moves {
		var sig *Signature
		if c.Result != nil {
			sig = c.Result.Signature
		}
		switch {
		case sig == nil:
			return holds(fmt.Sprintf("%s: signature not checked", short(c.To)))
		case sig.Err != nil:
			return holds(fmt.Sprintf("%s: signature could not be checked: %v", short(c.To), sig.Err))
		case sig.Verified:
		case d.AwaitsSignature(c):
			if waiting.Why == "" {
				// When the grace ends the digest is refused, unless signed
				// meanwhile: a change of reason, which the foresight shows.
				until, _ := SignatureWait(d.Settings, d.Mem, c.Ref, c.To, d.Now)
				waiting = Held{fmt.Sprintf("waiting for a signature of %s until %s", short(c.To), until.UTC().Format(time.RFC3339)), until}
			}
		default:
			return holds(fmt.Sprintf("%s refused by the signature policy: %s", short(c.To), sig.Reason))
		}
	}
	return waiting
}

// SignatureWait is when the grace for a signature of digest ends
// (Settings.SignatureGrace, counted from when ref was first seen pointing
// at digest: this run, if the state has not seen it), and whether now is
// within it.
func SignatureWait(s Settings, mem state.State, ref, digest string, now time.Time) (time.Time, bool) {
	if s.SignatureGrace <= 0 {
		return time.Time{}, false
	}
	until := firstSeen(mem, ref, digest, now).Add(s.SignatureGrace)
	return until, now.Before(until)
}

// AwaitsSignature reports whether c's move waits quietly for a signature
// rather than being refused: none was found at all, within the grace. Such
// a move is held, and is no failure: no Warning, no exit code 1.
func (r *Run) AwaitsSignature(c ContainerDecision) bool {
	if c.Result == nil || c.Result.Signature == nil {
		return false
	}
	sig := c.Result.Signature
	if sig.Verified || sig.Err != nil || !sig.Unsigned {
		return false
	}
	_, ok := SignatureWait(r.Settings, r.Mem, c.Ref, c.To, r.Now)
	return ok
}

// unapproved holds everything in notify mode, and in approve mode a move
// onto a digest no annotation of the workload or its namespace approves.
// The command it prints names the full digest: only that approves.
func unapproved(d Due) string {
	switch d.Settings.Approval {
	case "notify":
		return "notify mode (URUNNER_CONF_APPROVAL=notify): urunner tells, a person restarts"
	case "approve":
		for _, c := range d.Moves {
			ok, prefix := approves(d.Workload, c.To)
			if ok {
				continue
			}
			w := d.Workload
			cmd := fmt.Sprintf("kubectl annotate %s/%s -n %s %s=%s --overwrite", strings.ToLower(w.Kind), w.Name, w.Namespace, ApproveAnnotation, c.To)
			if prefix != "" {
				return fmt.Sprintf("%s=%s: a prefix approves nothing since urunner 0.4; approve the full digest: %s", ApproveAnnotation, prefix, cmd)
			}
			return "waiting for approval: " + cmd
		}
	}
	return ""
}

// approves reports whether w's (or its namespace's) approval names digest
// in full. A prefix approves nothing: anyone who can push can make an
// image whose digest starts with a few chosen hex characters (7 take
// about 2^28 tries), and it would approve a digest pushed after it. The
// first entry that is not a full digest is returned, with where it is,
// for the hold to say why it approves nothing.
func approves(w *Workload, digest string) (bool, string) {
	hex := strings.TrimPrefix(digest, "sha256:")
	var prefix string
	for i, anns := range []map[string]string{w.Annotations, w.NamespaceAnnotations} {
		v, ok := anns[ApproveAnnotation]
		if !ok {
			continue
		}
		for _, p := range strings.Split(v, ",") {
			p = strings.ToLower(strings.TrimSpace(p))
			h := strings.TrimPrefix(p, "sha256:")
			switch {
			case fullHex(h) && h == hex:
				return true, ""
			case !fullHex(h) && p != "" && prefix == "":
				prefix = p
				if i == 1 {
					prefix += " (on namespace " + w.Namespace + ")"
				}
			}
		}
	}
	return false, prefix
}

// fullHex reports whether h is a whole sha256 digest's hex.
func fullHex(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, r := range h {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// Fleet is what this run's listing says across workloads: which rings
// follow each reference, their members, the namespaces that did not list
// (the ring gate reads this listing's health there), and the lift
// annotations of each namespace.
type Fleet struct {
	members map[string]map[int][]member // ref → ring → workloads following it
	failed  map[string]bool
	// liftsIn maps a namespace to its workloads' readable lift annotations.
	liftsIn map[string][]LiftAnnotation

	mu     sync.Mutex // decisions are taken again concurrently after a conflict
	health map[ringKey]string
}

// LiftAnnotation is a workload's readable lift annotation.
type LiftAnnotation struct {
	Workload *Workload
	// Value is the annotation as written; Hex what it names.
	Value, Hex string
}

// member is a listed workload's container that follows a reference.
type member struct {
	w *Workload
	c *Container
}

type ringKey struct {
	ref    string
	ring   int
	digest string
}

// NewFleet gathers the rings and lifts of ws, listed with the namespaces
// failed failing to list.
func NewFleet(ws []*Workload, failed map[string]bool) *Fleet {
	f := &Fleet{members: map[string]map[int][]member{}, failed: failed, health: map[ringKey]string{},
		liftsIn: map[string][]LiftAnnotation{}}
	// Members are kept only for references some workload follows in a
	// ring after 0: only those are gated, and most fleets use no rings.
	ringed := map[string]bool{}
	for _, w := range ws {
		// Only a workload urunner tracks an image of: another urunner in
		// the cluster, watching other registries, must neither spend its
		// lifts nor touch its workloads (an annotation's removal bumps a
		// Deployment's generation, which would stop that urunner's
		// rollback of it).
		if v, ok := w.Annotations[LiftQuarantineAnnotation]; ok && tracksAny(w) {
			if hex, err := ParseLift(v); err == nil {
				f.liftsIn[w.Namespace] = append(f.liftsIn[w.Namespace], LiftAnnotation{Workload: w, Value: v, Hex: hex})
			}
		}
		for _, c := range w.Containers {
			if w.Ring > 0 && c.Ref != "" {
				ringed[c.Ref] = true
			}
		}
	}
	for _, w := range ws {
		for i := range w.Containers {
			c := &w.Containers[i]
			if !ringed[c.Ref] {
				continue
			}
			if f.members[c.Ref] == nil {
				f.members[c.Ref] = map[int][]member{}
			}
			f.members[c.Ref][w.Ring] = append(f.members[c.Ref][w.Ring], member{w, c})
		}
	}
	return f
}

// tracksAny reports whether some container of w is tracked.
func tracksAny(w *Workload) bool {
	return slices.ContainsFunc(w.Containers, func(c Container) bool { return c.Ref != "" })
}

// lifts reports whether a lift annotation of namespace ns in this listing
// names digest.
func (f *Fleet) lifts(ns, digest string) bool {
	if f == nil {
		return false
	}
	for _, l := range f.liftsIn[ns] {
		if namesDigest(l.Hex, digest) {
			return true
		}
	}
	return false
}

// Lift is a quarantine a run lifts in a namespace.
type Lift struct {
	Namespace, Digest string
}

// Lifts returns the listing's lift annotations, and the quarantines of mem
// they lift: each quarantine that holds in an annotation's namespace and
// that it names. Every returned annotation is spent once the run's state
// is saved (see LiftQuarantineAnnotation), whether it named a quarantine
// or not: one set before a quarantine must not lift it.
func (f *Fleet) Lifts(mem state.State) ([]LiftAnnotation, []Lift) {
	var anns []LiftAnnotation
	var lifts []Lift
	for _, ns := range slices.Sorted(maps.Keys(f.liftsIn)) {
		seen := map[string]bool{}
		for _, l := range f.liftsIn[ns] {
			anns = append(anns, l)
			for _, dg := range slices.Sorted(maps.Keys(mem.Quarantines)) {
				if namesDigest(l.Hex, dg) && mem.Quarantines[dg].HoldsIn(ns) && !seen[dg] {
					seen[dg] = true
					lifts = append(lifts, Lift{Namespace: ns, Digest: dg})
				}
			}
		}
	}
	return anns, lifts
}

// rings are the rings with a listed workload following ref, sorted.
func (f *Fleet) rings(ref string) []int { return slices.Sorted(maps.Keys(f.members[ref])) }

// ringGate holds a move of a ring-N workload onto a digest while a lower
// ring is not seen whole in this listing (a ring remembered for the
// reference is missing, or one of its namespaces did not list), or while
// a member of a lower ring does not run the digest healthily now (its
// rollout complete), or, with a soak, has not for the soak time since
// the first run that saw its ring healthy on it. It fails closed.
func ringGate(d Due) Held {
	if d.Fleet == nil || d.Workload.Ring == 0 {
		return Held{}
	}
	soak, err := soakOf(d.Settings, d.Workload)
	if err != nil {
		return holds(err.Error())
	}
	for _, c := range d.Moves {
		if h := d.Fleet.waitFor(d.Mem, c.Ref, c.To, d.Workload.Ring, soak, d.Now); h.Why != "" {
			h.Why = fmt.Sprintf("ring %d: %s", d.Workload.Ring, h.Why)
			return h
		}
	}
	return Held{}
}

// waitFor says why a ring may not move onto digest of ref yet (and, for a
// lower ring's soak, until when), a zero Held when it may.
func (f *Fleet) waitFor(mem state.State, ref, digest string, ring int, soak time.Duration, now time.Time) Held {
	r := mem.Refs[ref]
	for _, k := range slices.Sorted(maps.Keys(r.RingMembers)) {
		if k >= ring {
			break
		}
		if why := f.missing(ref, k, r.RingMembers[k]); why != "" {
			return holds(why)
		}
	}
	for _, k := range f.rings(ref) {
		if k >= ring {
			break
		}
		if why := f.healthOf(mem, ref, k, digest); why != "" {
			return holds(fmt.Sprintf("waits for ring %d to run %s healthily (%s)", k, short(digest), why))
		}
		since, ok := r.Rings[k]
		if !ok || r.Digest != digest || since.After(now) {
			since = now
		}
		if now.Sub(since) < soak {
			return Held{fmt.Sprintf("ring %d runs %s healthily since %s, waits until %s", k, short(digest),
				since.UTC().Format(time.RFC3339), since.Add(soak).UTC().Format(time.RFC3339)), since.Add(soak)}
		}
	}
	return Held{}
}

// missing says why a ring remembered with members in namespaces nss is
// not seen whole in this listing, "" when it is.
func (f *Fleet) missing(ref string, ring int, nss []string) string {
	var failed []string
	for _, ns := range nss {
		if f.failed[ns] {
			failed = append(failed, ns)
		}
	}
	where := fmt.Sprintf("ring %d of %s (%s %s)", ring, ref, plural(len(nss), "namespace"), strings.Join(nss, ", "))
	switch {
	case len(failed) > 0:
		return fmt.Sprintf("waits — %s is not fully listed: %s %s failed to list (see the run's log)", where, plural(len(failed), "namespace"), strings.Join(failed, ", "))
	case len(f.members[ref][ring]) == 0:
		return fmt.Sprintf("waits — %s is missing from this listing: not listed, disabled or deleted; if it is gone for good: kubectl urunner forget-ring %s %d", where, ref, ring)
	}
	return ""
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// healthOf says which listed member of ring does not run digest of ref
// healthily now, "" when every one does. A member counts when it is
// believed to run the digest (recorded for it, or every ready pod runs
// it) and its rollout is complete at this listing. Computed once per
// ring and digest.
func (f *Fleet) healthOf(mem state.State, ref string, ring int, digest string) string {
	key := ringKey{ref, ring, digest}
	f.mu.Lock()
	defer f.mu.Unlock()
	if why, ok := f.health[key]; ok {
		return why
	}
	why := ""
	for _, m := range f.members[ref][ring] {
		if why = memberHealth(m, mem, digest); why != "" {
			break
		}
	}
	f.health[key] = why
	return why
}

func memberHealth(m member, mem state.State, digest string) string {
	name := fmt.Sprintf("%s/%s -n %s", strings.ToLower(m.w.Kind), m.w.Name, m.w.Namespace)
	b := believe(m.w, *m.c, mem).digest
	switch {
	case b != digest && !m.c.Pods.runsOnly(digest) && b == "":
		return name + " is new: what it runs is not known yet"
	case b != digest && !m.c.Pods.runsOnly(digest):
		return name + " runs " + short(b)
	case !m.w.Healthy:
		return name + ": rollout not complete"
	}
	return ""
}

// ParseRing reads a ring annotation or label: a small non-negative number.
func ParseRing(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n > 99 {
		return 0, fmt.Errorf("%s=%q is not a ring number (0 to 99)", RingAnnotation, v)
	}
	return n, nil
}

// Reached says how far digest has rolled through the rings following ref:
// the highest ring whose workloads, and all before, run it healthily (-1
// for none yet), and how many rings follow ref (listed or remembered).
func (f *Fleet) Reached(ref string, r state.Ref) (reached, of int) {
	set := map[int]bool{}
	for k := range f.members[ref] {
		set[k] = true
	}
	for k := range r.RingMembers {
		set[k] = true
	}
	reached = -1
	for _, ring := range slices.Sorted(maps.Keys(set)) {
		if _, ok := r.Rings[ring]; !ok {
			break
		}
		reached = ring
	}
	return reached, len(set)
}
