package run

import (
	"context"
	"fmt"

	"github.com/urunner/urunner/registry"
)

// run is one pass, in stages over one record per watched workload (see
// workload: each stage adds its part):
//
//	load      what urunner remembers (the state ConfigMap)
//	discover  the watched workloads, their canonical references and
//	          credentials, as the listing pages arrive
//	resolve   each reference once per credentials, beside discover
//	enrich    what some settings need beyond a digest: pods, platforms,
//	          an index's manifests, signatures
//	decide    the policy, for every workload, from what was found and
//	          remembered; then the cap
//	foresee   for each held workload (each due one in a dry run), the
//	          run that restarts it: the policy stepped over the schedule
//	describe  what each restart changes (change context), beside act
//	act       one PATCH per workload to restart; on a conflict, read again
//	          and decide again
//	verify    each restart's rollout (URUNNER_CONF_VERIFY_ROLLOUT), and
//	          rollBack, the act that follows a failed one
//	record    what urunner remembers, the state's save, Events
//
// A dry run stops after decide, foresees, and prints its plan. Nothing is patched
// before every input is read, and a failure to read one (the state, a
// listing) changes nothing.
func (a *app) run(ctx context.Context) (*outcome, error) {
	o := a.tell.o
	o.start = a.now()
	snap, err := a.load(ctx)
	if err != nil {
		return o, err
	}
	lookups := make(chan registry.Lookup, 256)
	resolved := a.resolve(ctx, lookups, snap.State)
	f, err := a.discover(ctx, lookups, snap.State)
	r := <-resolved
	if err != nil {
		return o, err
	}
	f.results, f.lookups = r.results, r.lookups
	a.takePlanDigest(f)
	a.enrich(ctx, f, snap.State)
	p := a.decide(f, snap.State)
	if a.cfg.DryRun {
		a.logWouldRestart(f, p)
		printPlan(a.out, f, p)
		a.foresee(f, p, snap.State)
		printForecasts(a.out, o.forecasts, a.cfg.Schedule)
		return o, nil
	}
	// Events go out, and the changes are described, while the PATCHes
	// proceed: neither delays a restart.
	a.tell.events.start(ctx)
	described := a.describeChanges(ctx, f, p)
	a.act(ctx, f, p, described)
	if a.cfg.VerifyRollout {
		a.verify(ctx, f, p)
	}
	if err := a.record(ctx, snap, f, p); err != nil {
		return o, err
	}
	if err := ctx.Err(); err != nil {
		return o, fmt.Errorf("run stopped early (%w: SIGTERM or URUNNER_CONF_RUN_TIMEOUT); what was done is saved, the rest waits for the next run", err)
	}
	return o, o.capErr()
}
