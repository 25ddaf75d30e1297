package run

import (
	"context"
	"sync"

	"github.com/urunner/urunner/report"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
)

// rolloutReport is one verified rollout, as the run report carries it.
type rolloutReport = report.Rollout

// verify waits, all at once and within URUNNER_CONF_ROLLOUT_TIMEOUT and
// the run's deadline, for each restarted workload to roll out, and writes
// how it went in the workload's rollout part. A failed one is rolled back
// at once when asked (rollBack, the next step's act: to what it ran
// before, its images too in pin mode), and is then remembered on its old
// digest. A failed rollout that is not rolled back keeps the new digest:
// retrying it every run would fail every run, and a new push retries.
func (a *app) verify(ctx context.Context, f *found, p *plan) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RolloutTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, wl := range f.workloads {
		if wl.patched() {
			wg.Go(func() { a.note(rolloutVerified{a.verifyOne(ctx, f, p, wl)}) })
		}
	}
	wg.Wait()
}

// verifyOne waits for wl's rollout, rolls it back when it failed and that
// is asked, and returns the rollout's line of the run report.
func (a *app) verifyOne(ctx context.Context, f *found, p *plan, wl *workload) rolloutReport {
	wl.rollout = &rolloutResult{}
	w := wl.seen().kube
	w.Restarted = wl.act.answered
	res, msg, err := a.kube.WaitRollout(ctx, w)
	rep := rolloutReport{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name, Result: res.String(), Message: msg}
	ended := rolloutEnded{w: &w, result: res, msg: msg, err: err}
	switch {
	case err != nil:
		rep.Result, rep.Message = "unknown", err.Error()
	case res == kube.RolloutComplete:
		a.note(ended)
		delivered, mismatch := a.delivered(ctx, f, p, wl)
		if mismatch {
			rep.Result, rep.Message = "undelivered", "rolled out, but its pods run another digest than the one restarted for"
		}
		wl.rollout.delivered = delivered
		return rep
	case res == kube.RolloutFailed:
		wl.rollout.failed = msg
		if a.cfg.Rollback {
			ended.rollback, ended.rollbackErr = a.rollBack(ctx, wl)
			wl.rollout.rolledBack = ended.rollback == rolledBack
			rep.RolledBack = wl.rollout.rolledBack
		}
	}
	a.note(ended)
	return rep
}

// delivered checks, once wl rolled out, that its ready pods run what it
// was restarted for, and says whether they do and whether they run another
// digest. Pods that run another digest are told of and believed to run
// what they run (wl.rollout.decision): the restart stays due. A failed
// read of the pods is neither: the next run that reads them checks.
func (a *app) delivered(ctx context.Context, f *found, p *plan, wl *workload) (delivered, mismatch bool) {
	w, d := wl.seen(), wl.final()
	other, err := a.checkDelivered(ctx, f, w, d)
	if err != nil {
		// Not a mismatch, but not a delivery either: the rings do not
		// count the workload healthy on the digest until a listing does.
		a.note(deliveryUnchecked{&w.kube, err})
		return false, false
	}
	if len(other) == 0 {
		return true, false
	}
	d = withDeliveries(d)
	gated := len(policy.Gates(a.settings, p.run.Fleet, &w.policy)) > 0
	for j := range d.Containers {
		c := &d.Containers[j]
		if runs, ok := other[c.Name]; ok && c.Verdict == policy.Moved {
			c.Delivery = &policy.Delivery{Runs: runs, Cause: policy.DeliveryCause(c.Container, runs, c.From), AfterRestart: true}
			a.note(notDelivered{w: w, c: *c, to: c.To, runs: runs, cause: c.Delivery.Cause, gated: gated, stage: stageVerify})
		}
	}
	wl.rollout.decision = d
	return false, true
}
