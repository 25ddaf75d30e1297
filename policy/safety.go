package policy

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
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
func soaking(d Due) string {
	soak, err := soakOf(d.Settings, d.Workload)
	if err != nil {
		return err.Error()
	}
	if soak == 0 {
		return ""
	}
	for _, c := range d.Moves {
		seen := firstSeen(d.Mem, c.Ref, c.To, d.Now)
		if d.Now.Sub(seen) < soak {
			return fmt.Sprintf("soaking: %s first seen at %s, restarts once unchanged for %s (at %s)", short(c.To),
				seen.UTC().Format(time.RFC3339), soak, seen.Add(soak).UTC().Format(time.RFC3339))
		}
	}
	return ""
}

// unsigned holds a move onto a digest the signature policy did not verify.
// A digest with no signature at all waits for one within the grace; one
// signed by no trusted key or identity, or whose signatures could not be
// read, holds at once. A refusal is the reason given before a wait.
func unsigned(d Due) string {
	if !d.Settings.RequireSignature {
		return ""
	}
	waiting := ""
	for _, c := range d.Moves {
		var sig *Signature
		if c.Result != nil {
			sig = c.Result.Signature
		}
		switch {
		case sig == nil:
			return fmt.Sprintf("%s: signature not checked", short(c.To))
		case sig.Err != nil:
			return fmt.Sprintf("%s: signature could not be checked: %v", short(c.To), sig.Err)
		case sig.Verified:
		case d.AwaitsSignature(c):
			if waiting == "" {
				until, _ := SignatureWait(d.Settings, d.Mem, c.Ref, c.To, d.Now)
				waiting = fmt.Sprintf("waiting for a signature of %s until %s", short(c.To), until.UTC().Format(time.RFC3339))
			}
		default:
			return fmt.Sprintf("%s refused by the signature policy: %s", short(c.To), sig.Reason)
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
func unapproved(d Due) string {
	switch d.Settings.Approval {
	case "notify":
		return "notify mode (URUNNER_CONF_APPROVAL=notify): urunner tells, a person restarts"
	case "approve":
		for _, c := range d.Moves {
			if !approves(d.Workload, c.To) {
				w := d.Workload
				return fmt.Sprintf("waiting for approval: kubectl annotate %s/%s -n %s %s=%s --overwrite",
					strings.ToLower(w.Kind), w.Name, w.Namespace, ApproveAnnotation, short(c.To))
			}
		}
	}
	return ""
}

// approves reports whether w's (or its namespace's) approval names digest.
func approves(w *Workload, digest string) bool {
	hex := strings.TrimPrefix(digest, "sha256:")
	for _, anns := range []map[string]string{w.Annotations, w.NamespaceAnnotations} {
		for _, p := range strings.Split(anns[ApproveAnnotation], ",") {
			p = strings.TrimPrefix(strings.TrimSpace(p), "sha256:")
			if len(p) >= 7 && strings.HasPrefix(hex, p) {
				return true
			}
		}
	}
	return false
}

// Fleet is what the listed workloads say together: which rings follow
// each reference, and the lift annotations of each namespace.
type Fleet struct {
	rings map[string][]int // ref → the rings with a workload following it, sorted
	// liftsIn maps a namespace to its workloads' readable lift annotations.
	liftsIn map[string][]LiftAnnotation
}

// LiftAnnotation is a workload's readable lift annotation.
type LiftAnnotation struct {
	Workload *Workload
	// Value is the annotation as written; Hex what it names.
	Value, Hex string
}

// NewFleet gathers the rings and lifts of ws.
func NewFleet(ws []*Workload) *Fleet {
	sets := map[string]map[int]bool{}
	f := &Fleet{rings: map[string][]int{}, liftsIn: map[string][]LiftAnnotation{}}
	for _, w := range ws {
		if v, ok := w.Annotations[LiftQuarantineAnnotation]; ok {
			if hex, err := ParseLift(v); err == nil {
				f.liftsIn[w.Namespace] = append(f.liftsIn[w.Namespace], LiftAnnotation{Workload: w, Value: v, Hex: hex})
			}
		}
		for _, c := range w.Containers {
			if c.Ref == "" {
				continue
			}
			if sets[c.Ref] == nil {
				sets[c.Ref] = map[int]bool{}
			}
			sets[c.Ref][w.Ring] = true
		}
	}
	for ref, set := range sets {
		f.rings[ref] = slices.Sorted(maps.Keys(set))
	}
	return f
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

// ringBefore is the nearest ring before ring that follows ref, -1 for none.
func (f *Fleet) ringBefore(ref string, ring int) int {
	prev := -1
	for _, r := range f.rings[ref] {
		if r < ring {
			prev = r
		}
	}
	return prev
}

// ringGate holds a move of a ring-N workload until every workload of the
// ring before it that follows the reference has run the new digest
// healthily (its rollout complete) for the soak time.
func ringGate(d Due) string {
	if d.Fleet == nil || d.Workload.Ring == 0 {
		return ""
	}
	soak, err := soakOf(d.Settings, d.Workload)
	if err != nil {
		return err.Error()
	}
	for _, c := range d.Moves {
		before := d.Fleet.ringBefore(c.Ref, d.Workload.Ring)
		if before < 0 {
			continue
		}
		r := d.Mem.Refs[c.Ref]
		since, ok := r.Rings[before]
		if r.Digest != c.To || !ok {
			return fmt.Sprintf("ring %d: waits for ring %d to run %s healthily", d.Workload.Ring, before, short(c.To))
		}
		if d.Now.Sub(since) < soak {
			return fmt.Sprintf("ring %d: ring %d runs %s healthily since %s, waits until %s", d.Workload.Ring, before, short(c.To),
				since.UTC().Format(time.RFC3339), since.Add(soak).UTC().Format(time.RFC3339))
		}
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
// for none yet), and how many rings follow ref.
func (f *Fleet) Reached(ref string, r state.Ref) (reached, of int) {
	rings := f.rings[ref]
	reached = -1
	for _, ring := range rings {
		if _, ok := r.Rings[ring]; !ok {
			break
		}
		reached = ring
	}
	return reached, len(rings)
}
