package run

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

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
func (a *app) record(ctx context.Context, snap *state.Snapshot, f *found, p *plan) error {
	l := policy.NewLedger(a.settings, snap.State, a.tell.started(), f.listedAt)
	for pl, r := range f.results {
		l.Observe(pl, r)
	}
	spent := a.lift(l, p)
	a.recordDecisions(l, f)
	next := l.Next(f.listing)
	keepProvenance(&next, snap.State, p)
	a.retracted(f, l.Retracted())
	if !f.countedAt.IsZero() {
		next.Workloads, next.CountedAt = f.cluster, f.countedAt
	}
	a.note(stood{f, p})
	// Only a run that looked everything up has done urunner's job: a
	// pushed run's success must not hide failing scheduled runs from
	// UrunnerNoSuccessfulRun.
	if a.tell.succeeded() && !f.listing.Restricted {
		next.LastSuccess = a.tell.started().UTC().Truncate(time.Second)
	}
	a.note(nextState{next, p.run.Fleet})
	a.foresee(f, p, next)
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := a.store.Save(saveCtx, snap, next, a.tell.stored(a.cfg.ClusterName, a.resolver), f.listedAt)
	if err == nil {
		a.spendLifts(ctx, spent)
	}
	a.tell.saved()
	a.tell.events.flush(ctx)
	return err
}

// recordDecisions records what each decision left, and each failed
// verified rollout: its digests are
// quarantined, from the time the failure was seen.
func (a *app) recordDecisions(l *policy.Ledger, f *found) {
	at := a.now()
	for _, wl := range f.workloads {
		d := wl.final()
		l.Record(d, wl.restarted(), wl.delivered())
		msg := wl.rolloutFailed()
		if msg == "" {
			continue
		}
		w := wl.seen().kube
		where := fmt.Sprintf("rollout failed in %s/%s/%s: %s", w.Namespace, strings.ToLower(w.Kind), w.Name, msg)
		l.Quarantine(d, where, at)
		for _, c := range d.Moves() {
			a.note(quarantined{&w, c.Ref, c.To, where})
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
		a.note(liftedInNamespace{lf.Namespace, lf.Digest})
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
		a.note(liftAnnotationRemoved{ann, err})
	}
}

// retracted notes each digest a tag left while it soaked, with the
// workloads that waited for it.
func (a *app) retracted(f *found, rs []policy.Retraction) {
	for _, r := range rs {
		var waiting []kube.Workload
		for _, wl := range f.workloads {
			w := wl.seen()
			if slices.ContainsFunc(w.policy.Containers, func(c policy.Container) bool { return c.Ref == r.Ref }) {
				waiting = append(waiting, w.kube)
			}
		}
		a.note(retracted{r, waiting})
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
