package policy

import (
	"fmt"
	"slices"
	"strings"
)

// A gate (signatures, approval, soak, rings, quarantine) judges one digest.
// A restart by annotation alone does not deliver that digest: each new pod
// pulls the tag when it starts, seconds to minutes after the gate looked,
// and a push in between runs unjudged. So a restart a gate judged is bound:
// it sets the image to tag@digest, as pin mode does, and the pods pull
// exactly what was judged, whatever their pull policy.

// Gates names the gates that judge the digests w restarts onto, in the
// order of Holds; none when w's restarts are judged by no gate. fleet may
// be nil (no rings known).
func Gates(s Settings, fleet *Fleet, w *Workload) []string {
	var out []string
	if s.Quarantine {
		out = append(out, "quarantine")
	}
	if s.RequireSignature {
		out = append(out, "signature")
	}
	if soak, err := soakOf(s, w); err != nil || soak > 0 {
		out = append(out, "soak")
	}
	if ringed(fleet, w) {
		out = append(out, "ring")
	}
	if s.Approval == "approve" {
		out = append(out, "approval")
	}
	return out
}

// ringed reports whether w is in a ring the ring gate reads: a ring above
// 0, or ring 0 of a reference later rings follow (what ring 0 runs is what
// the later rings are let through onto).
func ringed(fleet *Fleet, w *Workload) bool {
	if w.Ring > 0 {
		return true
	}
	if fleet == nil {
		return false
	}
	for _, c := range w.Containers {
		if c.Ref != "" && len(fleet.rings(c.Ref)) > 1 {
			return true
		}
	}
	return false
}

// binds reports whether a restart of w sets tag@digest: in pin mode, and
// whenever a gate judges its digests. A workload a GitOps controller
// manages keeps its image string (the controller would revert a pin and
// roll again); its delivery is checked from its pods instead (see
// Undelivered).
func binds(s Settings, gates []string, w *Workload) bool {
	return s.Pin || len(gates) > 0 && w.GitOps == ""
}

// Delivery is how a workload's pods match the digest urunner restarted a
// container for.
type Delivery struct {
	// Runs are the digests the ready pods report instead.
	Runs []string
	// Cause is the likely reason, for people.
	Cause string
	// AfterRestart: found by the run, once this run's restart rolled out;
	// the container is then believed to run Runs[0].
	AfterRestart bool
}

// undelivered checks, for a container whose workload records a restart
// for digest rec and whose rollout is complete, that its ready pods run
// rec: its index digest, or one of its platforms' manifests as runtimes
// other than containerd report. nil when they do, or when it cannot be
// told (pods not read or not all ready, an index whose children are not
// known).
func undelivered(c *Container, rec string, r *Result, known map[string]string, base string) *Delivery {
	p := c.Pods
	if p == nil || !p.AllReady || len(p.Digests) == 0 {
		return nil
	}
	accepted := map[string]bool{rec: true}
	for _, ch := range known {
		accepted[ch] = true
	}
	if r.Digest == rec {
		for _, ch := range r.Children {
			accepted[ch] = true
		}
		for _, ch := range r.Members {
			accepted[ch] = true
		}
	}
	var other []string
	for _, d := range p.Digests {
		if !accepted[d] {
			other = append(other, d)
		}
	}
	if len(other) == 0 {
		return nil
	}
	if r.Index && r.Digest == rec && r.Members == nil {
		// A platform's digest cannot be told from another image's until
		// the index's manifests are read (the run reads them, then asks
		// again).
		return nil
	}
	return &Delivery{Runs: other, Cause: deliveryCause(c, other, base)}
}

// DeliveryCause guesses why c's pods run another digest (runs) than the
// one they were restarted for; base is what the reference's workloads ran
// before ("" when not known).
func DeliveryCause(c *Container, runs []string, base string) string {
	return deliveryCause(c, runs, base)
}

func deliveryCause(c *Container, runs []string, base string) string {
	switch {
	case mayKeepCached(c.PullPolicy) && c.ImageDigest == "":
		return "imagePullPolicy " + c.PullPolicy + ": a node started the image it had cached under the tag"
	case slices.Contains(runs, base):
		return "they run the digest of before: a node's cached image, or a mirror or pull-through cache serving the tag stale"
	default:
		return "they run a digest urunner did not restart them for: the tag moved during the rollout, or a mirror serves another image"
	}
}

// Undelivered says, for a bound container decision, why its pods do not
// run what its workload was restarted for; "" when they do.
func (c *ContainerDecision) Undelivered() string {
	if c.Delivery == nil {
		return ""
	}
	return fmt.Sprintf("restarted for %s, but its ready pods run %s: %s", short(c.To), shorts(c.Delivery.Runs), c.Delivery.Cause)
}

func shorts(ds []string) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = short(d)
	}
	return strings.Join(out, ", ")
}
