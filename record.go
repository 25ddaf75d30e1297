package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/state"
)

// record writes what urunner remembers after the run, once the rollouts it
// waits for have ended (a rolled-back workload is remembered on its old
// digest), then sends the run's Events. The state is saved even when the
// run was stopped (SIGTERM, deadline): 10 s fit Kubernetes' default 30 s
// termination grace period. A crash before the save loses no restart: each
// restarted workload records its digest in its own template.
func (a *app) record(ctx context.Context, snap *state.Snapshot, f *found, p *plan, done *acted, o *outcome) error {
	if a.cfg.VerifyRollout {
		a.verifyRollouts(ctx, f, done, o)
	}
	l := policy.NewLedger(snap.State, o.start, f.listedAt)
	for pl, r := range f.results {
		l.Observe(pl, r)
	}
	for i, d := range p.decisions {
		l.Record(d, done.restarted[i])
		if msg := done.rolloutFailed[i]; msg != "" {
			w := f.workloads[i].kube
			where := fmt.Sprintf("rollout failed in %s/%s/%s: %s", w.Namespace, strings.ToLower(w.Kind), w.Name, msg)
			l.Quarantine(d, where)
			for _, c := range d.Moves() {
				a.log.Error("digest quarantined: nothing restarts onto it until the tag moves or a person lifts it",
					"image", c.Ref, "digest", c.To, "reason", where, "lift", policy.LiftQuarantineAnnotation+"="+short(c.To))
				o.failure(failure{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name, Image: c.Ref, Error: "quarantined " + c.To + ": " + where})
			}
		}
	}
	next := l.Next(f.listing)
	if !f.countedAt.IsZero() {
		next.Workloads, next.CountedAt = f.cluster, f.countedAt
	}
	o.tally(f, p, done)
	if o.exitCode(nil) == exitOK {
		next.LastSuccess = o.start.UTC().Truncate(time.Second)
	}
	o.lastSuccess, o.failing = next.LastSuccess, failingImages(next)
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := a.store.Save(saveCtx, snap, next, o.runReport(a.cfg.ClusterName, o.exitCode(nil), nil, a.resolver.Requests()).stored(), f.listedAt)
	if a.cfg.Events {
		a.decisionEvents(f, p)
	}
	a.flushEvents(ctx)
	return err
}
