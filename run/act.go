package run

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
)

// patchWorkers bounds concurrent PATCHes; client-go's QPS limiter is the
// real throttle, this only keeps requests in flight while one is slow.
const patchWorkers = 8

// conflictRetries bounds the read-and-decide-again rounds of one workload.
const conflictRetries = 3

// acted is what the act stage did, in the order of found.workloads.
type acted struct {
	// restarted is true for each workload patched (or found restarted for
	// its digests by another run).
	restarted []bool
	// before is each restarted workload as read before its patch (nil for
	// the others: most workloads are not restarted), and generation what
	// the patch left, for a rollback.
	before     []*kube.Workload
	generation []int64
	// rolloutFailed says why a restarted workload's verified rollout
	// failed ("" when it did not); rolledOut is true once it completed.
	rolloutFailed []string
	rolledOut     []bool

	mu       sync.Mutex
	failures []failure
}

// act patches each workload its decision restarts, a few at a time. A
// workload changed since it was listed is read again and decided again: a
// patch decided on an old version is never sent, so no one's edit is
// undone. Once the run is stopped, no new PATCH starts; those in flight are
// seen through, since cut off mid-answer they would be applied but not
// remembered. Each restart is logged, with its Event, once described is
// closed (p.changes written), out of the PATCHes' way.
func (a *app) act(ctx context.Context, f *found, p *plan, described <-chan struct{}) *acted {
	n := len(f.workloads)
	done := &acted{restarted: make([]bool, n), before: make([]*kube.Workload, n), generation: make([]int64, n), rolloutFailed: make([]string, n), rolledOut: make([]bool, n)}
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, patchWorkers)
	)
	at := a.now()
	for i, d := range p.decisions {
		if d.Action != policy.Restart {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			w := f.workloads[i]
			a.log.Warn("run stopped; restart not attempted, it stays due", "namespace", w.kube.Namespace, lowerKind(w), w.kube.Name)
			d.Action, d.Reason = policy.Hold, "the run was stopped"
			continue
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer cancel()
			w := a.restart(pctx, f, i, d, p.run, at, done)
			<-sem
			if w != nil {
				<-described
				a.restarted(w, d, p.changes)
			}
		})
	}
	wg.Wait()
	<-described
	return done
}

// restart carries out one decision, deciding again after each conflict,
// and returns the workload as patched (nil when it was not).
func (a *app) restart(ctx context.Context, f *found, i int, d *policy.Decision, run *policy.Run, at time.Time, done *acted) *watched {
	w := f.workloads[i]
	for attempt := 0; ; attempt++ {
		gen, err := a.kube.Restart(ctx, w.kube, kube.Restart{At: at, Records: recordsOf(d), Pins: d.Pins(a.settings)})
		if err == nil {
			before := w.kube
			done.restarted[i], done.before[i], done.generation[i] = true, &before, gen
			return w
		}
		if errors.Is(err, kube.ErrConflict) && attempt < conflictRetries {
			fresh, gerr := a.kube.Get(ctx, w.kube.Kind, w.kube.Namespace, w.kube.Name)
			if gerr == nil {
				w = a.rewatch(f, i, fresh)
				*d = run.Decide(&w.policy)
				if d.Action == policy.Restart {
					continue
				}
				a.log.Info("changed since listed; decided again: "+d.Action.String(), "namespace", w.kube.Namespace, lowerKind(w), w.kube.Name, "reason", d.Reason)
				return nil
			}
			err = gerr
		}
		d.Action, d.Reason = policy.Hold, "restart failed: "+err.Error()
		a.log.Error("restart failed; it stays due, the next run retries", "namespace", w.kube.Namespace, lowerKind(w), w.kube.Name, "error", err)
		a.queueEvent(w.kube, corev1.EventTypeWarning, kube.ReasonRestartFailed, fmt.Sprintf("urunner could not restart it: %v", err), err.Error())
		done.mu.Lock()
		done.failures = append(done.failures, failure{Namespace: w.kube.Namespace, Kind: w.kube.Kind, Name: w.kube.Name, Error: err.Error()})
		done.mu.Unlock()
		return nil
	}
}

// rewatch replaces workload i with its fresh read, keeping what was read
// of each unchanged container besides the workload (its pull secrets'
// credentials, its pods): they are not read again. It is read in the
// run's scope: its namespace's annotations (approval, soak, ring) count
// as they did at the listing.
func (a *app) rewatch(f *found, i int, fresh kube.Workload) *watched {
	old := map[string]policy.Container{}
	for _, c := range f.workloads[i].policy.Containers {
		old[c.Name+"\x00"+c.Image] = c
	}
	w, _ := a.watch(context.Background(), fresh, nil, &found{scope: f.scope})
	for j, c := range w.policy.Containers {
		if o, ok := old[c.Name+"\x00"+c.Image]; ok {
			w.policy.Containers[j].Cred, w.policy.Containers[j].Pods = o.Cred, o.Pods
		}
	}
	f.workloads[i] = w
	return w
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

// restarted logs a restart, once per moved container, and queues its Event.
func (a *app) restarted(w *watched, d *policy.Decision, changes map[string]string) {
	for _, c := range d.Moves() {
		attrs := []any{"namespace", w.kube.Namespace, lowerKind(w), w.kube.Name, "container", c.Name, "image", c.Ref, "from", c.From, "to", c.To}
		if ch := changes[c.Ref+"@"+c.From+"@"+c.To]; ch != "" {
			attrs = append(attrs, "change", ch)
		}
		a.log.Info("restarted", attrs...)
	}
	if w.kube.OnDelete {
		a.log.Warn("patched, but its OnDelete update strategy restarts nothing until its pods are deleted", "namespace", w.kube.Namespace, lowerKind(w), w.kube.Name)
	}
	if advice := policy.GitOpsAdvice(a.settings, &w.policy); advice != "" {
		a.log.Warn(advice, "namespace", w.kube.Namespace, lowerKind(w), w.kube.Name,
			"annotations", kube.RestartedAtAnnotation+","+kube.RestartedForAnnotation)
	}
	a.restartEvent(w, d, changes)
}
