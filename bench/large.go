package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// listScopes are URUNNER_CONF_LIST_SCOPE's values: auto (the default)
// first, then each strategy forced.
var listScopes = []string{"auto", "cluster", "namespace"}

// runLarge is `make bench-100k` (-workloads N): the watched Deployments
// alone, then among N workloads, in each list scope (does a run follow the
// watched workloads?), then every workload watched: baseline and steady
// state at full scale, and profiles.
func runLarge(ctx context.Context, o options, out io.Writer) (err error) {
	g, err := startGround(ctx, o, out, "urunner-bench-large-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, g.close()) }()
	fmt.Fprintf(out, "urunner benchmark at scale: %d workloads (%d Deployments in %d enabled namespaces, the others mixed 3:1:1 Deployments, StatefulSets, DaemonSets in %d namespaces), %d containers, %d references on %d registries, latency %s, concurrency %d, %d repetitions of each run\n",
		o.workloads, o.watched, o.watchedNamespaces, o.otherNamespaces, 3*o.workloads, o.refs, o.hosts, o.latency, o.concurrency, o.reps)
	fmt.Fprintf(out, "ground: %s\n", groundNote(o))

	p := newScalePlan(o.seed, o.workloads, o.watched, o.watchedNamespaces, o.otherNamespaces, o.refs, o.hosts)
	all := make([]int, len(p.refs))
	for i := range all {
		all[i] = i
	}
	t := time.Now()
	if err := pushAll(ctx, p, g.regs, all, o.workers); err != nil {
		return fmt.Errorf("push images: %w", err)
	}
	fmt.Fprintf(out, "ground: pushed %d images in %s\n", len(all), round(time.Since(t)))

	// The watched Deployments alone.
	t = time.Now()
	if err := createNamespaces(ctx, g.cs, p, 0, o.watchedNamespaces, o.workers); err != nil {
		return err
	}
	if err := createWorkloads(ctx, g.cs, p, g.regs, indices(0, o.watched), o.pullPolicy, o.workers); err != nil {
		return err
	}
	if err := waitFor(ctx, g.cs, o.watchedNamespaces, map[string]int{kindDeployment: o.watched}, 5*time.Minute); err != nil {
		return err
	}
	fmt.Fprintf(out, "ground: created %d namespaces and %d Deployments in %s\n", o.watchedNamespaces, o.watched, round(time.Since(t)))
	alone, err := g.followRuns(ctx, p, "alone", fmt.Sprintf("%d Deployments alone", o.watched))
	if err != nil {
		return err
	}

	// Among the others.
	t = time.Now()
	if err := createNamespaces(ctx, g.cs, p, o.watchedNamespaces, len(p.namespaces), o.workers); err != nil {
		return err
	}
	if err := createWorkloads(ctx, g.cs, p, g.regs, indices(o.watched, len(p.workloads)), o.pullPolicy, o.workers); err != nil {
		return err
	}
	if err := waitCounts(ctx, g.cs, p, 10*time.Minute); err != nil {
		return err
	}
	created := time.Since(t)
	fmt.Fprintf(out, "\nground: created %d namespaces and %d workloads (%v) in %s (%.0f objects/s, %d workers, no client rate limit); load %s\n",
		len(p.namespaces)-o.watchedNamespaces, len(p.workloads)-o.watched, kindTotals(p, o.watched), round(created),
		float64(len(p.namespaces)-o.watchedNamespaces+len(p.workloads)-o.watched)/created.Seconds(), o.workers, readLoad())
	among, err := g.followRuns(ctx, p, "among", fmt.Sprintf("%d Deployments among %d workloads", o.watched, o.workloads))
	if err != nil {
		return err
	}
	printFollow(out, o, alone, among)

	// Every workload watched.
	t = time.Now()
	if err := enableNamespaces(ctx, g.cs, p, o.watchedNamespaces, len(p.namespaces), o.workers); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nground: labelled the other %d namespaces urunner=enable in %s: %d workloads watched\n",
		len(p.namespaces)-o.watchedNamespaces, round(time.Since(t)), p.expect(nil).watched)
	fresh := func(ctx context.Context) (map[int]bool, error) { return nil, g.deleteState(ctx) }
	specs := []runSpec{
		{id: "A", title: fmt.Sprintf("%d workloads, first run (baseline)", o.workloads), before: fresh, maxRSS: rssLarge},
		{id: "B", title: fmt.Sprintf("%d workloads, steady state", o.workloads), wallFactor: wallFactor, maxRSS: rssLarge},
	}
	if err := g.measureAll(ctx, out, p, specs, fmt.Sprintf("Figures: %d workloads, registry latency %s", o.workloads, o.latency)); err != nil {
		return err
	}
	if o.profile {
		if err := g.profile(ctx, p, "B-prof", fmt.Sprintf("%d-workload steady state, profiled", o.workloads)); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "\nbenchmark took %s; load average at the end: %s\n", round(time.Since(g.began)), readLoad())
	return nil
}

func indices(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func kindTotals(p *plan, from int) map[string]int {
	out := map[string]int{}
	for _, w := range p.workloads[from:] {
		out[w.kind]++
	}
	return out
}

// followed is the watched Deployments' steady runs in one list scope, and
// the uncompressed size of the pages they list.
type followed struct {
	rs  []result
	raw int64
}

// followRuns measures the watched Deployments' steady state in each list
// scope, after an unmeasured baseline that leaves the scope's state (the
// auto scope's count of the cluster) fresh.
func (g *ground) followRuns(ctx context.Context, p *plan, id, title string) (map[string]followed, error) {
	out := map[string]followed{}
	for _, scope := range listScopes {
		env := []string{"URUNNER_CONF_LIST_SCOPE=" + scope}
		if err := g.deleteState(ctx); err != nil {
			return nil, err
		}
		base, err := g.measure(ctx, p, runSpec{id: id + "-" + scope + "-baseline", env: env}, 0)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(g.out, "\n-- %s, URUNNER_CONF_LIST_SCOPE=%s: baseline (not in the figures), listed %s:\n", title, scope, base.scope)
		printRep(g.out, base)
		s := runSpec{id: id + "-" + scope, title: fmt.Sprintf("%s, list scope %s, steady state", title, scope), env: env, maxRSS: rssDefault}
		if scope == "auto" {
			s.wallFactor = wallFactor
		}
		rs, err := g.series(ctx, p, s)
		if err != nil {
			return nil, err
		}
		// The same pages once more, uncompressed: what was listed, apart
		// from how it travelled.
		g.proxy.snapshot()
		if _, err := timeLists(ctx, g.rawList, rs[len(rs)-1].scope); err != nil {
			return nil, fmt.Errorf("uncompressed LISTs: %w", err)
		}
		out[scope] = followed{rs, g.proxy.snapshot().totalBytes()}
	}
	return out, nil
}

// printFollow compares the watched Deployments' runs alone and among the
// others, per list scope: issue 14's "follows the watched workloads".
func printFollow(w io.Writer, o options, alone, among map[string]followed) {
	fmt.Fprintf(w, "\n== Follows the watched workloads: %d Deployments watched, alone vs among %d workloads (medians of %d steady runs; RSS the maximum)\n\n",
		o.watched, o.workloads, o.reps)
	fmt.Fprintln(w, "| list scope | cluster | listed | wall | bare LISTs | peak RSS | API calls | API bytes | LIST pages uncompressed |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	type figs struct {
		wall, lists time.Duration
		rss         float64
		calls       int
		bytes       float64
		raw         int64
		scope       listScope
	}
	fig := func(f followed) figs {
		rs, last := f.rs, f.rs[len(f.rs)-1]
		return figs{
			raw:   f.raw,
			wall:  time.Duration(of(rs, func(r result) float64 { return float64(r.run.Wall) }).med),
			lists: time.Duration(of(rs, func(r result) float64 { return float64(r.lists.took) }).med),
			rss:   of(rs, func(r result) float64 { return float64(r.run.MaxRSSKiB << 10) }).max,
			calls: last.api.total(),
			bytes: of(rs, func(r result) float64 { return float64(r.api.totalBytes()) }).med,
			scope: last.scope,
		}
	}
	var verdicts []string
	for _, scope := range listScopes {
		a, b := fig(alone[scope]), fig(among[scope])
		for _, row := range []struct {
			name string
			f    figs
		}{{fmt.Sprintf("%d alone", o.watched), a}, {fmt.Sprintf("%d workloads", o.workloads), b}} {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.1f MiB | %d | %.2f MiB | %.2f MiB |\n", scope, row.name, row.f.scope,
				round(row.f.wall), round(row.f.lists), mib(int64(row.f.rss)), row.f.calls, mib(int64(row.f.bytes)), mib(row.f.raw))
		}
		rw, rr, rb := ratio(b.wall, a.wall), b.rss/a.rss, b.bytes/a.bytes
		fmt.Fprintf(w, "| %s | **ratio** | | **%.2f×** | %.2f× | **%.2f×** | %.2f× | **%.2f×** | %.2f× |\n", scope, rw,
			ratio(b.lists, a.lists), rr, float64(b.calls)/float64(a.calls), rb, float64(b.raw)/float64(a.raw))
		met := rw <= followFactor && rr <= followFactor && rb <= followFactor
		v := "met"
		if !met {
			v = "MISSED"
		}
		verdicts = append(verdicts, fmt.Sprintf("  [%s] list scope %s: wall %.2f×, peak RSS %.2f×, API bytes %.2f× (target ≤ %.1f× each)", v, scope, rw, rr, rb, followFactor))
	}
	fmt.Fprintf(w, "\ntargets (the default, auto, is the one held to it; the forced scopes show both strategies):\n")
	for _, v := range verdicts {
		fmt.Fprintln(w, v)
	}
}
