package run

import (
	"context"
	"sync"

	"github.com/urunner/urunner/report"

	corev1 "k8s.io/api/core/v1"

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
func (a *app) verify(ctx context.Context, f *found, p *plan, o *outcome) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RolloutTimeout)
	defer cancel()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, wl := range f.workloads {
		if !wl.act.restarted {
			continue
		}
		wg.Go(func() {
			rep := a.verifyOne(ctx, f, p, wl, &mu, o)
			mu.Lock()
			o.rollouts = append(o.rollouts, rep)
			mu.Unlock()
		})
	}
	wg.Wait()
}

// verifyOne waits for wl's rollout, rolls it back when it failed and that
// is asked, and returns the rollout's line of the run report.
func (a *app) verifyOne(ctx context.Context, f *found, p *plan, wl *workload, mu *sync.Mutex, o *outcome) rolloutReport {
	w := wl.seen().kube
	res, msg, err := a.kube.WaitRollout(ctx, w)
	rep := rolloutReport{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name, Result: res.String(), Message: msg}
	attrs := []any{"namespace", w.Namespace, "kind", w.Kind, "name", w.Name, "detail", msg}
	switch {
	case err != nil:
		rep.Result, rep.Message = "unknown", err.Error()
		a.log.Warn("rollout not verified", append(attrs, "error", err)...)
	case res == kube.RolloutComplete:
		a.log.Info("rollout complete", attrs...)
		a.queueEvent(w, corev1.EventTypeNormal, "RolloutComplete", "the restart urunner made rolled out: "+msg, "complete")
		delivered, mismatch := a.delivered(ctx, f, p, wl, mu, o)
		if mismatch {
			rep.Result, rep.Message = "undelivered", "rolled out, but its pods run another digest than the one restarted for"
		}
		wl.rollout.delivered = delivered
	case res == kube.RolloutManual:
		a.log.Warn("rollout waits for a person: "+msg, attrs...)
	case res == kube.RolloutFailed:
		wl.rollout.failed = msg
		if a.cfg.Rollback {
			rep.RolledBack = a.rollBack(ctx, wl, attrs)
			wl.rollout.rolledBack = rep.RolledBack
		} else {
			a.log.Error("rollout failed", attrs...)
		}
		a.queueEvent(w, corev1.EventTypeWarning, "RolloutFailed", "the restart urunner made did not roll out, and its new digest is quarantined in this cluster (nothing restarts onto it, under any tag, until it is lifted: annotation urunner.io/lift-quarantine in a namespace, kubectl urunner lift everywhere): "+msg, msg)
	default:
		a.log.Warn("rollout unfinished when urunner stopped waiting", attrs...)
	}
	return rep
}

// delivered checks, once wl rolled out, that its ready pods run what it
// was restarted for, and says whether they do and whether they run another
// digest. Pods that run another digest are told of and believed to run
// what they run (wl.rollout.decision): the restart stays due. A failed
// read of the pods is neither: the next run that reads them checks.
func (a *app) delivered(ctx context.Context, f *found, p *plan, wl *workload, mu *sync.Mutex, o *outcome) (delivered, mismatch bool) {
	w, d := wl.seen(), wl.final()
	other, err := a.checkDelivered(ctx, f, w, d)
	if err != nil {
		// Not a mismatch, but not a delivery either: the rings do not
		// count the workload healthy on the digest until a listing does.
		a.log.Warn("delivery not checked: cannot read the pods; not counted as healthy on the new digest this run", "namespace", w.kube.Namespace, lowerKind(w), w.kube.Name, "error", err)
		return false, false
	}
	if len(other) == 0 {
		return true, false
	}
	d = withDeliveries(d)
	mu.Lock()
	defer mu.Unlock()
	for j := range d.Containers {
		c := &d.Containers[j]
		if runs, ok := other[c.Name]; ok && c.Verdict == policy.Moved {
			c.Delivery = &policy.Delivery{Runs: runs, Cause: policy.DeliveryCause(c.Container, runs, c.From), AfterRestart: true}
			a.notDelivered(w, c, c.To, runs, c.Delivery.Cause, p.run.Fleet, o)
		}
	}
	wl.rollout.decision = d
	return false, true
}
