package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// runDefault is `make bench`: 5,000 Deployments, runs (a) to (d), each
// repeated, on a quiet ground; profiles of a steady run; the private
// registry's count; the binary's RSS floor.
func runDefault(ctx context.Context, o options, out io.Writer) (err error) {
	g, err := startGround(ctx, o, out, "urunner-bench-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, g.close()) }()
	fmt.Fprintf(out, "urunner benchmark: %d namespaces (%d enabled), %d Deployments (%d%% urunner=disable), %d containers, %d references on %d registries, latency %s, concurrency %d, %d repetitions of each run\n",
		o.namespaces, o.enabled, o.deployments, o.disabledPct, o.deployments*len(containerNames), o.refs, o.hosts, o.latency, o.concurrency, o.reps)

	p := newPlan(o.seed, o.namespaces, o.enabled, o.deployments, o.disabledPct, o.refs, o.hosts)
	all := make([]int, len(p.refs))
	for i := range all {
		all[i] = i
	}
	t := time.Now()
	if err := pushAll(ctx, p, g.regs, all, o.workers); err != nil {
		return fmt.Errorf("push images: %w", err)
	}
	fmt.Fprintf(out, "ground: pushed %d images in %s\n", len(all), round(time.Since(t)))
	// The moved references of every run are chosen now, so that the
	// Deployments they restart are created last (see creationOrder).
	movedC := p.takeRefs(ceilDiv(o.refs, 100))
	movedD := p.takeRefsForRestarts(o.restarts)
	t = time.Now()
	if err := populate(ctx, g.cs, p, g.regs, p.creationOrder(movedC, movedD), o.pullPolicy, o.workers); err != nil {
		return err
	}
	if err := waitCounts(ctx, g.cs, p, 5*time.Minute); err != nil {
		return err
	}
	created := time.Since(t)
	fmt.Fprintf(out, "ground: created %d namespaces and %d Deployments in %s (%.0f objects/s, %d workers)\n",
		len(p.namespaces), len(p.workloads), round(created), float64(len(p.namespaces)+len(p.workloads))/created.Seconds(), o.workers)
	fmt.Fprintf(out, "ground: %s\n", groundNote(o))

	fresh := func(ctx context.Context) (map[int]bool, error) { return nil, g.deleteState(ctx) }
	push := func(moved map[int]bool) func(context.Context) (map[int]bool, error) {
		return func(ctx context.Context) (map[int]bool, error) {
			return moved, pushMoved(ctx, p, g.regs, moved, o.workers)
		}
	}
	specs := []runSpec{
		{id: "a", title: "first run (baseline)", before: fresh, maxRSS: rssDefault},
		{id: "b", title: "steady state (nothing changed)", wallFactor: wallFactor, maxRSS: rssDefault},
		{id: "c", title: fmt.Sprintf("1%% moved (%d tags pushed anew)", len(movedC)), before: push(movedC), wallFactor: wallFactor, maxRSS: rssDefault},
		{id: "d", title: fmt.Sprintf("%d tags moved for ~%d restarts", len(movedD), o.restarts), before: push(movedD), restartRun: true, maxRSS: rssDefault},
	}
	if err := g.measureAll(ctx, out, p, specs, fmt.Sprintf("Figures: %d Deployments, registry latency %s", o.deployments, o.latency)); err != nil {
		return err
	}

	if o.profile {
		if err := g.profile(ctx, p, "b-prof", "steady state, profiled"); err != nil {
			return err
		}
	}
	if o.auth {
		if err := g.authCount(ctx); err != nil {
			return err
		}
	}
	if err := printFloor(ctx, out, g.bin); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nbenchmark took %s; load average at the end: %s\n", round(time.Since(g.began)), readLoad())
	return nil
}

// groundNote says what runs beside the measured runs.
func groundNote(o options) string {
	if o.controllerManager {
		return "kube-controller-manager runs (-controller-manager): its backlog shares the cores with the measured runs"
	}
	return "quiet: etcd and kube-apiserver only, no controller manager (restarts are PATCHed, not rolled out)"
}

// profile makes one extra run with urunner's --cpuprofile and --memprofile
// and prints pprof's top lines. It is an extra run so that the measured
// ones carry no profiling cost.
func (g *ground) profile(ctx context.Context, p *plan, id, title string) error {
	cpu := filepath.Join(g.dir, id+".cpu.pprof")
	mem := filepath.Join(g.dir, id+".mem.pprof")
	fmt.Fprintf(g.out, "\n== Profile of a %s (extra run; files in %s)\n", title, g.dir)
	r, err := g.measure(ctx, p, runSpec{id: id, title: title, args: []string{"--cpuprofile", cpu, "--memprofile", mem},
		env: []string{"GODEBUG=gctrace=1"}}, 1)
	if err != nil {
		return err
	}
	printRep(g.out, r)
	if gc, err := gcTrace(r.run.Stderr); err != nil {
		fmt.Fprintf(g.out, "   (gctrace: %v)\n", err)
	} else {
		fmt.Fprintf(g.out, "   GODEBUG=gctrace=1: %d collections; heap at most %d MB when a collection started, %d MB live after one, goal at most %d MB, stacks at most %d MB\n",
			gc.n, gc.maxStart, gc.maxLive, gc.maxGoal, gc.maxStacks)
	}
	for _, v := range []struct {
		file  string
		args  []string
		lines int
	}{
		{cpu, []string{"-top", "-nodecount=20"}, 27},
		{cpu, []string{"-top", "-cum", "-nodecount=30"}, 37},
		{mem, []string{"-top", "-sample_index=alloc_space", "-nodecount=20"}, 27},
		{mem, []string{"-top", "-sample_index=alloc_space", "-cum", "-nodecount=25"}, 32},
		{mem, []string{"-top", "-sample_index=inuse_space", "-nodecount=10"}, 17},
	} {
		top, err := pprofTop(ctx, v.file, v.args...)
		fmt.Fprintf(g.out, "\n$ go tool pprof %s %s\n", strings.Join(v.args, " "), filepath.Base(v.file))
		if err != nil {
			fmt.Fprintf(g.out, "   (pprof failed: %v)\n", err)
			continue
		}
		lines := strings.Split(strings.TrimRight(top, "\n"), "\n")
		if len(lines) > v.lines {
			lines = lines[:v.lines]
		}
		fmt.Fprintln(g.out, strings.Join(lines, "\n"))
	}
	return nil
}

// gcStats summarises the runtime's gctrace lines of a run.
type gcStats struct{ n, maxStart, maxLive, maxGoal, maxStacks int }

var gcLine = regexp.MustCompile(`(\d+)->(\d+)->(\d+) MB, (\d+) MB goal, (\d+) MB stacks`)

// gcTrace reads the gctrace lines ("gc 3 @0.2s 2%: …, 4->5->2 MB, 5 MB
// goal, 0 MB stacks, …") of a run's stderr.
func gcTrace(path string) (gcStats, error) {
	var s gcStats
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	for _, m := range gcLine.FindAllStringSubmatch(string(b), -1) {
		n := make([]int, 5)
		for i := range n {
			n[i], _ = strconv.Atoi(m[i+1])
		}
		s.n++
		s.maxStart, s.maxLive, s.maxGoal, s.maxStacks = max(s.maxStart, n[0]), max(s.maxLive, n[2]), max(s.maxGoal, n[3]), max(s.maxStacks, n[4])
	}
	if s.n == 0 {
		return s, errors.New("no gctrace line in " + path)
	}
	return s, nil
}
