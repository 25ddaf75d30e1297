package run

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/urunner/urunner/report"

	corev1 "k8s.io/api/core/v1"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
)

// rolloutReport is one verified rollout, as the run report carries it.
type rolloutReport = report.Rollout

// rollbackTimeout bounds one rollback (a GET and a PATCH). A rollback runs
// even when the run was stopped (SIGTERM, deadline); with the state's save
// after it (10 s, see record) it fits Kubernetes' default 30 s termination
// grace period, so an API call that hangs cannot keep the pod past it and
// lose the state with its quarantines.
const rollbackTimeout = 15 * time.Second

// verifyRollouts waits, all at once and within URUNNER_CONF_ROLLOUT_TIMEOUT
// and the run's deadline, for each restarted workload to roll out; a failed
// one is rolled back when asked, to what it ran before (its images too in
// pin mode), and is then remembered on its old digest. A failed rollout
// that is not rolled back keeps the new digest: retrying it every run would
// fail every run, and a new push retries.
func (a *app) verifyRollouts(ctx context.Context, f *found, p *plan, done *acted, o *outcome) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RolloutTimeout)
	defer cancel()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for i, restarted := range done.restarted {
		if !restarted {
			continue
		}
		w := f.workloads[i].kube
		wg.Go(func() {
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
				delivered, mismatch := a.delivered(ctx, f, p, i, &mu, o)
				if mismatch {
					rep.Result, rep.Message = "undelivered", "rolled out, but its pods run another digest than the one restarted for"
				}
				mu.Lock()
				done.rolledOut[i] = delivered
				mu.Unlock()
			case res == kube.RolloutManual:
				a.log.Warn("rollout waits for a person: "+msg, attrs...)
			case res == kube.RolloutFailed:
				mu.Lock()
				done.rolloutFailed[i] = msg
				mu.Unlock()
				if a.cfg.Rollback {
					rep.RolledBack = a.rollback(ctx, done, i, attrs)
					if rep.RolledBack {
						mu.Lock()
						done.restarted[i] = false
						mu.Unlock()
					}
				} else {
					a.log.Error("rollout failed", attrs...)
				}
				a.queueEvent(w, corev1.EventTypeWarning, "RolloutFailed", "the restart urunner made did not roll out, and its new digest is quarantined in this cluster (nothing restarts onto it, under any tag, until it is lifted: annotation urunner.io/lift-quarantine in a namespace, kubectl urunner lift everywhere): "+msg, msg)
			default:
				a.log.Warn("rollout unfinished when urunner stopped waiting", attrs...)
			}
			mu.Lock()
			o.rollouts = append(o.rollouts, rep)
			mu.Unlock()
		})
	}
	wg.Wait()
}

// delivered checks, once workload i rolled out, that its ready pods run
// what it was restarted for, and says whether they do and whether they run
// another digest. Pods that run another digest are told of and believed to
// run what they run: the restart stays due. A failed read of the pods is
// neither: the next run that reads them checks.
func (a *app) delivered(ctx context.Context, f *found, p *plan, i int, mu *sync.Mutex, o *outcome) (delivered, mismatch bool) {
	w, d := f.workloads[i], p.decisions[i]
	other, err := a.checkDelivered(ctx, f, w, d)
	if err != nil {
		// Not a mismatch, but not a delivery either: the rings do not
		// count the workload healthy on the digest until a listing does.
		a.log.Warn("delivery not checked: cannot read the pods; not counted as healthy on the new digest this run", "namespace", w.kube.Namespace, lowerKind(w), w.kube.Name, "error", err)
		return false, false
	}
	mu.Lock()
	defer mu.Unlock()
	for j := range d.Containers {
		c := &d.Containers[j]
		if runs, ok := other[c.Name]; ok && c.Verdict == policy.Moved {
			c.Delivery = &policy.Delivery{Runs: runs, Cause: policy.DeliveryCause(c.Container, runs, c.From), AfterRestart: true}
			a.notDelivered(w, c, c.To, runs, c.Delivery.Cause, p.run.Fleet, o)
		}
	}
	return len(other) == 0, len(other) > 0
}

// rollback rolls back the i-th restart, whose rollout failed, and says
// whether it did. It runs even if the wait used up ctx, within its own
// deadline (rollbackTimeout).
func (a *app) rollback(ctx context.Context, done *acted, i int, attrs []any) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	err := a.kube.Rollback(ctx, *done.before[i], done.generation[i])
	switch {
	case err == nil:
		a.log.Error("rollout failed; rolled back to what it ran before", attrs...)
		return true
	case errors.Is(err, kube.ErrChangedSinceRestart):
		a.log.Error("rollout failed; not rolled back: "+err.Error(), attrs...)
	default:
		a.log.Error("rollout failed and the rollback too", append(attrs, "error", err)...)
	}
	return false
}
