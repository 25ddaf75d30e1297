package run

import (
	"context"
	"errors"
	"time"

	"github.com/urunner/urunner/kube"
)

// rollbackTimeout bounds one rollback (a GET and a PATCH). A rollback runs
// even when the run was stopped (SIGTERM, deadline); with the state's save
// after it (10 s, see record) it fits Kubernetes' default 30 s termination
// grace period, so an API call that hangs cannot keep the pod past it and
// lose the state with its quarantines.
const rollbackTimeout = 15 * time.Second

// rollBack is the act that follows a failed verified rollout
// (URUNNER_CONF_ROLLBACK): it puts wl back to what it ran before its
// restart, from act's record of it, unless someone changed it since, and
// says how it went. It runs even if the wait used up ctx, within its own
// deadline (rollbackTimeout).
func (a *app) rollBack(ctx context.Context, wl *workload) (rollbackResult, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	err := a.kube.Rollback(ctx, *wl.act.before, wl.act.generation)
	switch {
	case err == nil:
		return rolledBack, nil
	case errors.Is(err, kube.ErrChangedSinceRestart):
		return changedSince, err
	default:
		return rollbackFailed, err
	}
}
