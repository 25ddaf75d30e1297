package main

import (
	"context"
	"errors"
	"sync"

	"github.com/urunner/urunner/report"

	corev1 "k8s.io/api/core/v1"

	"github.com/urunner/urunner/kube"
)

// rolloutReport is one verified rollout, as the run report carries it.
type rolloutReport = report.Rollout

// verifyRollouts waits, all at once and within URUNNER_CONF_ROLLOUT_TIMEOUT
// and the run's deadline, for each restarted workload to roll out; a failed
// one is rolled back when asked, to what it ran before (its images too in
// pin mode), and is then remembered on its old digest. A failed rollout
// that is not rolled back keeps the new digest: retrying it every run would
// fail every run, and a new push retries.
func (a *app) verifyRollouts(ctx context.Context, f *found, done *acted, o *outcome) {
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
				mu.Lock()
				done.rolledOut[i] = true
				mu.Unlock()
				a.log.Info("rollout complete", attrs...)
				a.queueEvent(w, corev1.EventTypeNormal, "RolloutComplete", "the restart urunner made rolled out: "+msg, "complete")
			case res == kube.RolloutManual:
				a.log.Warn("rollout waits for a person: "+msg, attrs...)
			case res == kube.RolloutFailed:
				mu.Lock()
				done.rolloutFailed[i] = msg
				mu.Unlock()
				if a.cfg.Rollback {
					// The rollback must happen even if the wait used up ctx.
					rerr := a.kube.Rollback(context.WithoutCancel(ctx), *done.before[i], done.generation[i])
					switch {
					case rerr == nil:
						rep.RolledBack = true
						mu.Lock()
						done.restarted[i] = false
						mu.Unlock()
						a.log.Error("rollout failed; rolled back to what it ran before", attrs...)
					case errors.Is(rerr, kube.ErrChangedSinceRestart):
						a.log.Error("rollout failed; not rolled back: "+rerr.Error(), attrs...)
					default:
						a.log.Error("rollout failed and the rollback too", append(attrs, "error", rerr)...)
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
