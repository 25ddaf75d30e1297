package main

import (
	"context"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/urunner/urunner/kube"
)

// rolloutReport is one verified rollout, as the run report carries it.
type rolloutReport struct {
	Namespace  string `json:"namespace"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Result     string `json:"result"`
	Message    string `json:"message"`
	RolledBack bool   `json:"rolledBack,omitempty"`
}

// verifyRollouts waits, all at once and within URUNNER_CONF_ROLLOUT_TIMEOUT
// and the run's deadline, for each restarted workload to roll out; a failed
// one is rolled back when asked. The new digests stay recorded either way:
// retrying a digest whose rollout failed would fail again every run, and a
// new push retries. It returns the number of failed rollouts.
func (a *app) verifyRollouts(ctx context.Context, s *summary) (failed int) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RolloutTimeout)
	defer cancel()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, w := range s.restartedWorkloads {
		wg.Go(func() {
			res, msg, err := a.kube.WaitRollout(ctx, w)
			rep := rolloutReport{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name, Result: res.String(), Message: msg}
			attrs := []any{"namespace", w.Namespace, strings.ToLower(w.Kind), w.Name, "detail", msg}
			switch {
			case err != nil:
				rep.Result, rep.Message = "unknown", err.Error()
				a.log.Warn("rollout not verified", append(attrs, "error", err)...)
			case res == kube.RolloutComplete:
				a.log.Info("rollout complete", attrs...)
				a.queueEvent(w, corev1.EventTypeNormal, "RolloutComplete", "the restart urunner made rolled out: "+msg, "complete")
			case res == kube.RolloutFailed:
				mu.Lock()
				failed++
				mu.Unlock()
				if a.cfg.Rollback {
					// The rollback must happen even if the wait used up ctx.
					if rerr := a.kube.Rollback(context.WithoutCancel(ctx), w); rerr != nil {
						a.log.Error("rollout failed and the rollback too", append(attrs, "error", rerr)...)
					} else {
						rep.RolledBack = true
						a.log.Error("rollout failed; rolled back to the previous template; this digest is not retried, a new push is", attrs...)
					}
				} else {
					a.log.Error("rollout failed", attrs...)
				}
				a.queueEvent(w, corev1.EventTypeWarning, "RolloutFailed", "the restart urunner made did not roll out: "+msg, msg)
			default:
				a.log.Warn("rollout unfinished when urunner stopped waiting", attrs...)
			}
			mu.Lock()
			s.rollouts = append(s.rollouts, rep)
			mu.Unlock()
		})
	}
	wg.Wait()
	return failed
}
