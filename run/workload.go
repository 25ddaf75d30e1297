package run

import (
	"slices"
	"strings"
	"time"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
)

// workload is one watched workload's record as it passes through the run.
// Each stage adds its own part and only reads the parts of the stages
// before it; none rewrites another's:
//
//	discover  listed:   the workload as listed, and as the rules see it
//	decide    decision: what the policy decided
//	act       act:      what the PATCH did; after a conflict, the workload
//	                    as read again and the decision taken again
//	verify    rollout:  how the restart rolled out; the rollback, if any
//
// seen and final are the record's latest word on the workload and on what
// was done: what record and the reporter read.
//
// act and rollout are nil for a workload those stages did not touch (most
// of them): at 100,000 workloads their parts would otherwise cost more
// than the decisions.
type workload struct {
	listed   listed
	decision *policy.Decision
	act      *actResult
	rollout  *rolloutResult
}

// listed is a workload as the cluster has it and as the rules see it.
type listed struct {
	kube   kube.Workload
	policy policy.Workload
}

// actResult is what act did to one workload.
type actResult struct {
	// restarted is true once the workload was patched (or found restarted
	// for its digests by another run).
	restarted bool
	// before is the workload as read before its patch, and generation
	// what the patch left: a rollback's inputs (set when restarted).
	before     *kube.Workload
	generation int64
	// answered is the API server's time when the PATCH was answered (see
	// kube.Workload.Restarted).
	answered time.Time
	// reread is the workload as read again after a conflict (nil when
	// there was none).
	reread *listed
	// decision is the decision act carried out when it is not decide's:
	// taken again after a conflict, or a hold because the run stopped or
	// the PATCH failed (nil otherwise).
	decision *policy.Decision
	// failed is the PATCH's (or the read's after a conflict) error, ""
	// when none.
	failed string
}

// rolloutResult is how a verified restart rolled out.
type rolloutResult struct {
	// failed says why the rollout failed ("" when it did not).
	failed string
	// delivered: it completed and its ready pods run what it was
	// restarted for.
	delivered bool
	// rolledBack: it failed and was rolled back to what it ran before.
	rolledBack bool
	// decision is the decision with the deliveries the pods contradicted
	// (nil when none did).
	decision *policy.Decision
}

// seen is the workload as the run last read it.
func (w *workload) seen() *listed {
	if w.act != nil && w.act.reread != nil {
		return w.act.reread
	}
	return &w.listed
}

// final is the decision as the run ended: with what the rollout found, as
// act carried it out, or as decided.
func (w *workload) final() *policy.Decision {
	switch {
	case w.rollout != nil && w.rollout.decision != nil:
		return w.rollout.decision
	case w.act != nil && w.act.decision != nil:
		return w.act.decision
	}
	return w.decision
}

// restarted says whether the run's restart of the workload stands: patched
// and not rolled back.
func (w *workload) restarted() bool {
	return w.patched() && (w.rollout == nil || !w.rollout.rolledBack)
}

// patched says whether act patched the workload (or found it restarted
// for its digests by another run).
func (w *workload) patched() bool { return w.act != nil && w.act.restarted }

// delivered says whether its verified rollout completed with its pods on
// what it was restarted for.
func (w *workload) delivered() bool { return w.rollout != nil && w.rollout.delivered }

// rolloutFailed says why its verified rollout failed, "" when it did not.
func (w *workload) rolloutFailed() string {
	if w.rollout == nil {
		return ""
	}
	return w.rollout.failed
}

// heldInstead is d as a hold for why: act's own decision when it did not
// carry d out.
func heldInstead(d *policy.Decision, why string) *policy.Decision {
	h := *d
	h.Action, h.Reason = policy.Hold, why
	return &h
}

// withDeliveries is d with its own copy of the containers, for the rollout
// to record what the pods contradict without touching decide's.
func withDeliveries(d *policy.Decision) *policy.Decision {
	c := *d
	c.Containers = slices.Clone(d.Containers)
	return &c
}

func lowerKind(w *listed) string { return strings.ToLower(w.kube.Kind) }
