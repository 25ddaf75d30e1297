package run

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
)

// patchWorkers bounds concurrent PATCHes; client-go's QPS limiter is the
// real throttle, this only keeps requests in flight while one is slow.
const patchWorkers = 8

// conflictRetries bounds the read-and-decide-again rounds of one workload,
// each after conflictBackoff times 2^round: a workload whose controller is
// writing its status (a rollout under way) changes its resourceVersion
// every few hundred milliseconds, and a read retried at once meets the
// next write too.
const (
	conflictRetries = 5
	conflictBackoff = 20 * time.Millisecond
)

// act patches each workload its decision restarts, a few at a time, and
// writes what it did in the workload's act part. A workload changed since
// it was listed is read again and decided again: a patch decided on an old
// version is never sent, so no one's edit is undone. Once the run is
// stopped, no new PATCH starts; those in flight are seen through, since
// cut off mid-answer they would be applied but not remembered. Each
// restart is logged, with its Event, once described is closed (p.changes
// written), out of the PATCHes' way.
func (a *app) act(ctx context.Context, f *found, p *plan, described <-chan struct{}) {
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, patchWorkers)
	)
	at := a.now()
	for _, w := range f.workloads {
		if w.decision.Action != policy.Restart {
			continue
		}
		w.act = &actResult{}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			a.note(restartNotAttempted{&w.listed.kube})
			w.act.decision = heldInstead(w.decision, "the run was stopped")
			continue
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer cancel()
			a.restart(pctx, w, p.run, at)
			<-sem
			if w.act.restarted {
				<-described
				l := w.seen()
				a.note(restarted{w: l, d: w.final(), changes: p.changes, gitOps: policy.GitOpsAdvice(a.settings, &l.policy)})
			}
		})
	}
	wg.Wait()
	<-described
}

// restart carries out w's decision, deciding again after each conflict,
// and writes the outcome in w.act.
func (a *app) restart(ctx context.Context, w *workload, run *policy.Run, at time.Time) {
	d := w.decision
	for attempt := 0; ; attempt++ {
		l := w.seen()
		actx, answered := a.clock.answered(ctx)
		gen, err := a.kube.Restart(actx, l.kube, kube.Restart{At: at, Records: recordsOf(d), Pins: d.Pins(a.settings)})
		if err == nil {
			before := l.kube
			w.act.restarted, w.act.before, w.act.generation, w.act.answered = true, &before, gen, answered()
			return
		}
		if errors.Is(err, kube.ErrConflict) && attempt < conflictRetries {
			select {
			case <-time.After(conflictBackoff << attempt):
			case <-ctx.Done():
			}
			fresh, gerr := a.kube.Get(ctx, l.kube.Kind, l.kube.Namespace, l.kube.Name)
			if gerr == nil {
				l = a.reread(l, fresh)
				w.act.reread = l
				again := run.Decide(&l.policy)
				d, w.act.decision = &again, &again
				if d.Action == policy.Restart {
					continue
				}
				a.note(decidedAgain{&l.kube, d})
				return
			}
			err = gerr
		}
		w.act.decision, w.act.failed = heldInstead(d, "restart failed: "+err.Error()), err.Error()
		a.note(restartFailed{&l.kube, err})
		return
	}
}

// reread is a workload read again after a conflict (fresh), as the rules
// see it, keeping what was read of each unchanged container besides the
// workload (its pull secrets' credentials, its pods): they are not read
// again. It is read in the run's scope: its namespace's annotations
// (approval, soak, ring) count as they did at the listing.
func (a *app) reread(was *listed, fresh kube.Workload) *listed {
	old := map[string]policy.Container{}
	for _, c := range was.policy.Containers {
		old[c.Name+"\x00"+c.Image] = c
	}
	scope := kube.Scope{Annotations: map[string]map[string]string{was.kube.Namespace: was.policy.NamespaceAnnotations}}
	w, _ := a.watch(context.Background(), fresh, nil, &found{scope: scope})
	l := &w.listed
	for j, c := range l.policy.Containers {
		if o, ok := old[c.Name+"\x00"+c.Image]; ok {
			l.policy.Containers[j].Cred, l.policy.Containers[j].Pods = o.Cred, o.Pods
		}
	}
	return l
}

// recordsOf is what a restart records in restarted-for: each moved
// container's reference and new digest.
func recordsOf(d *policy.Decision) map[string]string {
	out := map[string]string{}
	for c, r := range d.Digests() {
		out[c] = r.Ref + "@" + r.Digest
	}
	return out
}
