package policy

import (
	"maps"
	"strings"
	"time"

	"github.com/urunner/urunner/state"
)

// Verdict is what the rules say of one container.
type Verdict uint8

const (
	// Untracked: not looked up (see Tracked).
	Untracked Verdict = iota
	// NotLookedUp: tracked, but the run was restricted to other references.
	NotLookedUp
	// LookupFailed: nothing changes, not even what is remembered.
	LookupFailed
	// Baseline: first sight; recorded as running the current digest.
	Baseline
	// Unchanged: it runs what its tag points at.
	Unchanged
	// Moved: its tag points elsewhere than what it runs; a restart is due.
	Moved
	// Recorded: its tag moved, but no restart is needed (Why says why).
	Recorded
)

var verdictNames = [...]string{"untracked", "not looked up", "lookup failed", "baseline", "unchanged", "moved", "recorded"}

func (v Verdict) String() string { return verdictNames[v] }

// ContainerDecision is the verdict on one container. It points at the
// workload's container rather than copying it: a plan holds one decision
// per listed container, and at 300,000 containers the copies were the
// largest part of the heap.
type ContainerDecision struct {
	*Container
	Verdict Verdict
	// Ahead: its ready pods run the new digest already, but a gate judges
	// the workload's digests, so the move is decided (and held) like any
	// other; a move nothing holds is then only recorded.
	Ahead bool
	// Why explains an Untracked, Recorded or converging Moved verdict.
	Why string
	// From is what the container was believed to run ("" on first sight),
	// or, converging, what its pods run; To is its tag's current digest.
	From, To string
	// Result is its lookup's result, shared with the other containers of
	// the lookup; nil when it was not looked up (Untracked, NotLookedUp).
	Result *Result
	// Risky is its pull policy when a move may start the cached old image
	// (IfNotPresent, Never) instead of the new one.
	Risky string
	// Delivery is set when its workload was restarted for the tag's
	// digest, rolled out, and its ready pods run another digest: found by
	// the policy for an earlier restart, or by the run for its own (then
	// AfterRestart).
	Delivery *Delivery
}

// Action is what a decision does to the workload.
type Action int

const (
	// Nothing to patch.
	Nothing Action = iota
	// Restart the workload once, for all its moved containers.
	Restart
	// Hold: a move is due but may not happen now (Reason says why); it
	// stays due, so a later run applies it.
	Hold
)

var actionNames = [...]string{"nothing", "restart", "hold"}

func (a Action) String() string { return actionNames[a] }

// Decision is the verdict on one workload.
type Decision struct {
	Workload *Workload
	Action   Action
	// Reason says why a Hold holds, Rule names the hold (see Holds; "cap"
	// for the cap), and Until is when time alone lifts it (zero when only
	// something else can).
	Reason string
	Rule   string
	Until  time.Time
	// Ignored says why the workload is left alone entirely (see Watched).
	Ignored string
	// Bound: its restart sets tag@digest (pin mode, or a gate judged the
	// digests: see Gates).
	Bound      bool
	Containers []ContainerDecision
}

// Moves returns the containers a restart is for.
func (d *Decision) Moves() []ContainerDecision {
	var out []ContainerDecision
	for _, c := range d.Containers {
		if c.Verdict == Moved {
			out = append(out, c)
		}
	}
	return out
}

// Digests returns container → new digest of the moves: what the restart
// records on the workload (urunner.io/restarted-for).
func (d *Decision) Digests() map[string]Record {
	m := map[string]Record{}
	for _, c := range d.Moves() {
		m[c.Name] = Record{Ref: c.Ref, Digest: c.To}
	}
	return m
}

// Pins returns, for a bound restart (pin mode, or a gate judged it),
// container → image to set: each moved container's reference pinned to its
// new digest; nil otherwise.
func (d *Decision) Pins(s Settings) map[string]string {
	if !s.Pin && !d.Bound {
		return nil
	}
	m := map[string]string{}
	for _, c := range d.Moves() {
		m[c.Name] = pinnedImage(c)
	}
	return m
}

// pinnedImage is the image a pin sets: the image as written, its digest
// replaced, so that a person's spelling (a mirror name, no docker.io) stays.
// An image written without a tag gains the tag it implies ("app" pins to
// "app:latest@sha256:…"): without it the next run could not tell which tag
// it follows.
func pinnedImage(c ContainerDecision) string {
	img := c.Image
	if c.ImageDigest != "" {
		img = img[:len(img)-len(c.ImageDigest)-1]
	}
	if !strings.Contains(img[strings.LastIndexByte(img, '/')+1:], ":") {
		img += ":" + c.Named[strings.LastIndexByte(c.Named, ':')+1:]
	}
	return img + "@" + c.To
}

// Run is what one run decides with: the settings, the registry's answers,
// what urunner remembers, the run's time, and the fleet (what every listed
// workload says, for the rules that look across workloads).
type Run struct {
	Settings Settings
	Results  Results
	Mem      state.State
	Now      time.Time
	Fleet    *Fleet
	// Restricted is a run that looks up only some references (a push,
	// URUNNER_CONF_REFERENCES): it does not start a new cap window.
	Restricted bool
}

// Decide applies the rules to one workload.
func (r *Run) Decide(w *Workload) Decision {
	d := Decision{Workload: w}
	if why := Watched(r.Settings, w); why != "" {
		d.Ignored = why
		return d
	}
	gates := Gates(r.Settings, r.Fleet, w)
	d.Bound = binds(r.Settings, gates, w)
	how := deciding{bound: d.Bound, gated: len(gates) > 0}
	if len(w.Containers) > 0 {
		d.Containers = make([]ContainerDecision, len(w.Containers))
	}
	for i := range w.Containers {
		d.Containers[i] = decideContainer(r.Settings, how, w, &w.Containers[i], r.Results, r.Mem)
	}
	moves := d.Moves()
	if len(moves) == 0 {
		return d
	}
	if rule, h := holdOf(Due{Run: r, Workload: w, Moves: moves}); h.Why != "" {
		d.Action, d.Reason, d.Rule, d.Until = Hold, h.Why, rule, h.Until
		return d
	}
	if allAhead(moves) {
		// The pods run what the gates let through: nothing to restart.
		for i := range d.Containers {
			if c := &d.Containers[i]; c.Ahead {
				c.Verdict = Recorded
			}
		}
		return d
	}
	d.Action = Restart
	return d
}

func allAhead(moves []ContainerDecision) bool {
	for _, c := range moves {
		if !c.Ahead {
			return false
		}
	}
	return true
}

// deciding is how a workload's containers are decided: whether its
// restart is bound to the digest (see binds) and whether a gate judges it.
type deciding struct{ bound, gated bool }

// Decide applies the rules to one workload, with no fleet: the rules that
// look across workloads (rings) see only w.
func Decide(s Settings, w *Workload, results Results, mem state.State, now time.Time) Decision {
	r := &Run{Settings: s, Results: results, Mem: mem, Now: now, Fleet: NewFleet([]*Workload{w}, nil)}
	return r.Decide(w)
}

func decideContainer(s Settings, how deciding, w *Workload, c *Container, results Results, mem state.State) ContainerDecision {
	cd := ContainerDecision{Container: c}
	if c.Ref == "" {
		_, cd.Why = Tracked(s, w, *c)
		cd.Verdict = Untracked
		return cd
	}
	b := believe(w, *c, mem)
	cd.From = b.digest
	r, looked := results(c.Lookup())
	switch {
	case !looked:
		cd.Verdict = NotLookedUp
		return cd
	case r.Err != nil:
		cd.Verdict, cd.Result = LookupFailed, r
		return cd
	}
	cd.Result, cd.To = r, r.Digest
	switch {
	case b.digest == "" && s.Converge && c.Pods != nil && c.Pods.AllReady && len(c.Pods.Digests) == 1 &&
		c.Pods.Digests[0] != r.Digest && !r.Index:
		// An index's digest is not compared: pods may report their
		// platform's manifest digest instead of the index's.
		cd.Verdict, cd.From, cd.Why = Moved, c.Pods.Digests[0], "first sight, and every ready pod runs another digest (converge)"
	case b.digest == "":
		cd.Verdict, cd.Why = Baseline, b.source
	case b.digest == r.Digest:
		cd.Verdict = Unchanged
		checkDelivery(&cd, how, w, mem)
	case c.Pods.runsOnly(r.Digest) && how.gated:
		cd.Verdict, cd.Ahead, cd.Why = Moved, true, "every ready pod runs the new digest already"
	case c.Pods.runsOnly(r.Digest):
		cd.Verdict, cd.Why = Recorded, "every ready pod runs the new digest already"
	case len(s.Platforms) > 0 && r.Index && r.Children != nil && sameChildren(mem.Refs[c.Ref].Children[b.digest], r.Children):
		cd.Verdict, cd.Why = Recorded, "moved only for platforms not watched (URUNNER_CONF_PLATFORMS)"
	case !how.bound && mayKeepCached(c.PullPolicy) && s.SkipCached:
		cd.Verdict, cd.Why, cd.Risky = Recorded, "imagePullPolicy "+c.PullPolicy+" may keep the old image (URUNNER_CONF_PULL_POLICY_MISMATCH=skip)", c.PullPolicy
	default:
		cd.Verdict = Moved
		if !how.bound && mayKeepCached(c.PullPolicy) {
			// A pinned image names its digest: nodes pull it whatever the
			// pull policy. A restart by annotation may start the cache.
			cd.Risky = c.PullPolicy
		}
	}
	return cd
}

// checkDelivery looks, for a container believed to run what its tag points
// at because its workload records a restart for it, at what its ready pods
// run once the rollout is complete. Pods that run another digest were not
// delivered what they were restarted for: the move is due again, from what
// they run. A restart by annotation whose pods' pull policy keeps the
// cache would start the same cached image again: that one is only told.
func checkDelivery(cd *ContainerDecision, how deciding, w *Workload, mem state.State) {
	rec := recorded(w, *cd.Container)
	if rec == "" || rec != cd.To || !w.Healthy {
		return
	}
	ref := mem.Refs[cd.Ref]
	dl := undelivered(cd.Container, rec, cd.Result, ref.Children[rec], ref.BaseDigest())
	if dl == nil {
		return
	}
	cd.Delivery = dl
	if !how.bound && mayKeepCached(cd.PullPolicy) {
		cd.Risky = cd.PullPolicy
		return
	}
	cd.Verdict, cd.From, cd.Why = Moved, dl.Runs[0], "not delivered"
}

// mayKeepCached reports whether a pull policy lets a node start an image
// it has cached under the tag instead of pulling the tag anew.
func mayKeepCached(policy string) bool { return policy == "IfNotPresent" || policy == "Never" }

// sameChildren reports whether an index's watched platforms kept their
// manifests: every platform of the new index has the child it had.
func sameChildren(old, cur map[string]string) bool {
	return old != nil && maps.Equal(old, cur)
}

// After returns, for each tracked and decided container, the digest it is
// believed to run once the decision is carried out, given whether the
// workload was restarted; "" when not known. The ledger records it.
func (d *Decision) After(restarted bool) map[string]string {
	out := map[string]string{}
	for _, c := range d.Containers {
		if c.Verdict != Untracked {
			out[c.Name] = c.after(restarted)
		}
	}
	return out
}

// after is the digest c is believed to run once its decision is carried
// out (see Decision.After).
func (c *ContainerDecision) after(restarted bool) string {
	switch c.Verdict {
	case Baseline, Recorded:
		return c.To
	case Moved:
		if restarted && c.Delivery != nil && c.Delivery.AfterRestart {
			return c.Delivery.Runs[0] // restarted, but not delivered
		}
		if restarted {
			return c.To
		}
		return c.From
	default: // Unchanged, LookupFailed, NotLookedUp
		return c.From
	}
}
