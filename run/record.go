package run

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/urunner/urunner/exit"
	"github.com/urunner/urunner/kube"

	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/state"
)

// record writes what urunner remembers after the run, once the rollouts it
// waits for have ended (verify: a rolled-back workload is remembered on its
// old digest), then sends the run's Events. The state is saved even when the
// run was stopped (SIGTERM, deadline): 10 s fit Kubernetes' default 30 s
// termination grace period. A crash before the save loses no restart: each
// restarted workload records its digest in its own template.
func (a *app) record(ctx context.Context, snap *state.Snapshot, f *found, p *plan, o *outcome) error {
	l := policy.NewLedger(a.settings, snap.State, o.start, f.listedAt)
	for pl, r := range f.results {
		l.Observe(pl, r)
	}
	spent := a.lift(l, p)
	a.recordDecisions(l, f, o)
	next := l.Next(f.listing)
	a.retracted(f, l.Retracted(), o)
	o.rings = ringsReached(p.run.Fleet, next)
	if !f.countedAt.IsZero() {
		next.Workloads, next.CountedAt = f.cluster, f.countedAt
	}
	o.tally(f, p)
	// Only a run that looked everything up has done urunner's job: a
	// pushed run's success must not hide failing scheduled runs from
	// UrunnerNoSuccessfulRun.
	if o.exitCode(nil) == exit.OK && !f.listing.Restricted {
		next.LastSuccess = o.start.UTC().Truncate(time.Second)
	}
	o.lastSuccess, o.failing = next.LastSuccess, failingImages(next)
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := a.store.Save(saveCtx, snap, next, storedReport(o.runReport(a.cfg.ClusterName, o.exitCode(nil), nil, a.resolver.Requests())), f.listedAt)
	if err == nil {
		a.spendLifts(ctx, spent)
	}
	if a.cfg.Events {
		a.decisionEvents(f, p)
	}
	a.flushEvents(ctx)
	return err
}

// recordDecisions records what each decision left, and each failed
// verified rollout: its digests are
// quarantined, from the time the failure was seen.
func (a *app) recordDecisions(l *policy.Ledger, f *found, o *outcome) {
	at := a.now()
	for _, wl := range f.workloads {
		d := wl.final()
		l.Record(d, wl.restarted(), wl.rollout.delivered)
		msg := wl.rollout.failed
		if msg == "" {
			continue
		}
		w := wl.seen().kube
		where := fmt.Sprintf("rollout failed in %s/%s/%s: %s", w.Namespace, strings.ToLower(w.Kind), w.Name, msg)
		l.Quarantine(d, where, at)
		for _, c := range d.Moves() {
			a.log.Error("digest quarantined: nothing restarts onto it, under any tag, until it is lifted",
				"image", c.Ref, "digest", c.To, "reason", where,
				"lift_in_namespace", policy.LiftQuarantineAnnotation+"="+short(c.To), "lift_everywhere", "kubectl urunner lift "+short(c.To))
			o.failure(failure{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name, Image: c.Ref, Error: "quarantined " + c.To + ": " + where})
		}
	}
}

// lift records the quarantines this run's lift annotations lift, each in
// its namespace, and returns the annotations to remove once the state is
// saved: none in notify mode, where urunner changes no workload.
func (a *app) lift(l *policy.Ledger, p *plan) []policy.LiftAnnotation {
	anns, lifts := p.run.Fleet.Lifts(p.run.Mem)
	l.Lift(lifts)
	for _, lf := range lifts {
		a.log.Info("quarantine lifted in a namespace by its lift annotation", "namespace", lf.Namespace, "digest", lf.Digest)
	}
	if a.settings.Approval == "notify" {
		return nil
	}
	return anns
}

// spendLifts removes the lift annotations the saved state has taken into
// account: left in place, one would lift a later quarantine of the digest
// in its namespace. A removal that fails is retried by the next run.
func (a *app) spendLifts(ctx context.Context, anns []policy.LiftAnnotation) {
	if len(anns) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, ann := range anns {
		w := ann.Workload
		err := a.kube.RemoveAnnotation(ctx, w.Kind, w.Namespace, w.Name, policy.LiftQuarantineAnnotation, ann.Value)
		if err != nil {
			a.log.Warn("lift annotation not removed; the next run tries again", "namespace", w.Namespace, strings.ToLower(w.Kind), w.Name, "error", err)
			continue
		}
		a.log.Info("lift annotation removed: the state keeps the lift", "namespace", w.Namespace, strings.ToLower(w.Kind), w.Name, "lift", ann.Value)
	}
}

// retracted tells of each digest a tag left while it soaked: the log, the
// report, and an Event on each workload that waited for it (at most
// maxWarningEvents).
func (a *app) retracted(f *found, rs []policy.Retraction, o *outcome) {
	events := 0
	for _, r := range rs {
		a.log.Warn("retracted: the tag moved again while its digest soaked; that digest restarted nothing",
			"image", r.Ref, "retracted", r.From, "first_seen", r.Seen.UTC().Format(time.RFC3339), "now", r.To)
		o.retractions = append(o.retractions, retraction{Image: r.Ref, From: r.From, To: r.To, FirstSeen: r.Seen.UTC()})
		for _, wl := range f.workloads {
			w := wl.seen()
			if events == maxWarningEvents || !slices.ContainsFunc(w.policy.Containers, func(c policy.Container) bool { return c.Ref == r.Ref }) {
				continue
			}
			events++
			a.queueEvent(w.kube, corev1.EventTypeNormal, kube.ReasonRetracted,
				fmt.Sprintf("image %s: %s was retracted while it soaked (first seen %s); the tag now points at %s",
					r.Ref, short(r.From), r.Seen.UTC().Format(time.RFC3339), short(r.To)), r.Ref+"\x00"+r.From)
		}
	}
}

// ringsReached says, for each reference followed in more than one ring,
// how far its digest has rolled through them.
func ringsReached(fleet *policy.Fleet, st state.State) []ringProgress {
	var out []ringProgress
	for _, k := range st.Keys() {
		r := st.Refs[k]
		if reached, of := fleet.Reached(k, r); of > 1 {
			out = append(out, ringProgress{Image: k, Digest: r.Digest, Reached: reached, Rings: of})
		}
	}
	return out
}
