package main

import (
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The targets of issue 14 (BENCHMARKS.md).
const (
	wallFactor     = 1.2       // steady state and 1% moved: wall ≤ 1.2× the bound
	rssDefault     = 48 << 20  // peak RSS at 5,000 Deployments
	rssLarge       = 128 << 20 // peak RSS at 100,000 workloads
	stateAim       = 256 << 10 // the state document
	configMapLimit = 1 << 20   // what the API server stores at most
	followFactor   = 1.2       // watching 5,000 among 100,000 vs alone
	patchesIn      = time.Minute
	patchesTarget  = 1000
	stateCalls     = 2 // the state's read and write
)

func round(d time.Duration) time.Duration {
	switch {
	case d > 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d > time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
func kib(b int) float64   { return float64(b) / (1 << 10) }

func sumKind(regs []map[string]int, key string) int {
	n := 0
	for _, m := range regs {
		n += m[key]
	}
	return n
}

// formatCounts prints a map as sorted "key=value" pairs.
func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// apiCalls is what a run asked of the API server besides its PATCHes and
// Events, which the restarts cost.
func apiCalls(c apiCounts) int {
	return c.total() - c.Requests["patch deployments"] - c.Requests["patch statefulsets"] - c.Requests["patch daemonsets"] - c.Requests["create events"]
}

func patches(c apiCounts) int {
	return c.Requests["patch deployments"] + c.Requests["patch statefulsets"] + c.Requests["patch daemonsets"]
}

// check is one target evaluated on a run's repetitions.
type check struct {
	target string
	met    bool
	detail string
}

func (c check) verdict() string {
	if c.met {
		return "met"
	}
	return "MISSED"
}

// checks evaluates every target of s on its repetitions.
func checks(rs []result, s runSpec) []check {
	var out []check
	all := func(f func(r result) (bool, string)) (bool, string) {
		var bad []string
		_, first := f(rs[0])
		for _, r := range rs {
			if ok, d := f(r); !ok {
				bad = append(bad, fmt.Sprintf("rep %d: %s", r.rep, d))
			}
		}
		if len(bad) > 0 {
			return false, strings.Join(bad, "; ")
		}
		return true, first + ", every repetition"
	}

	met, detail := all(func(r result) (bool, string) {
		ok := true
		var per []string
		for h, n := range r.exp.refsPerHost {
			got := r.registry[h]["HEAD manifest"]
			ok = ok && got == n
			per = append(per, fmt.Sprintf("%d/%d", got, n))
		}
		return ok, fmt.Sprintf("%d HEADs for %d refs (per host %s)", sumKind(r.registry, "HEAD manifest"), r.exp.refs(), strings.Join(per, " "))
	})
	out = append(out, check{"one HEAD per reference (anonymous hosts: no challenge)", met, detail})

	met, detail = all(func(r result) (bool, string) {
		n, want := sumKind(r.registry, "GET manifest"), 2*r.exp.moved
		return n <= want, fmt.Sprintf("%d GET manifest for %d moved refs", n, r.exp.moved)
	})
	out = append(out, check{"manifest GETs ≤ 2 per moved reference (change context reads the digests moved from and to), none when nothing moved", met, detail})

	met, detail = all(func(r result) (bool, string) {
		ok := true
		var per []string
		for h, m := range r.registry {
			n := m["GET token"] + m["POST token"]
			ok = ok && n <= r.exp.reposPerHost[h]
			per = append(per, fmt.Sprintf("%d/%d", n, r.exp.reposPerHost[h]))
		}
		return ok, "tokens/repositories per host " + strings.Join(per, " ")
	})
	out = append(out, check{"≤ 1 token per repository", met, detail})

	met, detail = all(func(r result) (bool, string) {
		budget := r.lists.requests + stateCalls
		got := apiCalls(r.api)
		d := fmt.Sprintf("%d calls for %d LISTs of the scope + %d", got, r.lists.requests, stateCalls)
		if got > budget {
			d += fmt.Sprintf(": %d over (%s)", got-budget, formatCounts(r.api.Requests))
		}
		return got <= budget, d
	})
	out = append(out, check{"API calls besides PATCHes and Events ≤ the scope's LISTs + state read and write", met, detail})

	met, detail = all(func(r result) (bool, string) {
		p, restarted := patches(r.api), r.run.restarted()
		return p == restarted && restarted == r.exp.restarts, fmt.Sprintf("%d PATCH, restarted=%d, expected %d, %d Events", p, restarted, r.exp.restarts, r.api.Requests["create events"])
	})
	out = append(out, check{"one PATCH per restart, the restarts expected", met, detail})

	if s.wallFactor > 0 {
		w := of(rs, func(r result) float64 { return ratio(r.run.Wall, r.bound()) })
		out = append(out, check{fmt.Sprintf("wall ≤ %.1f× bound (median)", s.wallFactor), w.med <= s.wallFactor,
			fmt.Sprintf("wall/bound %s", w.format("%.2f"))})
	}
	if s.maxRSS > 0 {
		m := of(rs, func(r result) float64 { return float64(r.run.MaxRSSKiB << 10) })
		out = append(out, check{fmt.Sprintf("peak RSS ≤ %.0f MiB (every repetition)", mib(s.maxRSS)), m.max <= float64(s.maxRSS),
			fmt.Sprintf("%.1f MiB at most (median %.1f)", mib(int64(m.max)), mib(int64(m.med)))})
	}
	st := of(rs, func(r result) float64 { return float64(r.stateBytes) })
	cm := of(rs, func(r result) float64 { return float64(r.cmBytes) })
	out = append(out, check{fmt.Sprintf("state ≤ %.0f KiB (aim), ConfigMap < 1 MiB", kib(stateAim)), st.max <= stateAim && cm.max < configMapLimit,
		fmt.Sprintf("state %.1f KiB for %d refs, ConfigMap %.1f KiB with the run report", kib(int(st.max)), rs[len(rs)-1].stateRefs, kib(int(cm.max)))})

	if s.restartRun && rs[0].exp.restarts >= patchesTarget*9/10 {
		p := of(rs, func(r result) float64 { return float64(r.api.PatchSpan) })
		out = append(out, check{fmt.Sprintf("%d PATCHes in under a minute (median)", patchesTarget), p.med < float64(patchesIn),
			fmt.Sprintf("%d PATCHes took %s", patches(rs[0].api), p.durations())})
	}
	met, detail = all(func(r result) (bool, string) { return r.run.ExitCode == 0, fmt.Sprintf("exit %d", r.run.ExitCode) })
	out = append(out, check{"exit code 0", met, detail})
	return out
}

// printRep writes one repetition's line.
func printRep(w io.Writer, r result) {
	fmt.Fprintf(w, "   rep %d  load %.2f  wall %-8s bare LISTs %-7s (%d req, %.1f MiB)  bound %-8s wall/bound %.2f  HEAD %d  API %d calls %.2f MiB  PATCH %d  restarted %d/%d  RSS %.1f MiB  state %.1f KiB  exit %d\n",
		r.rep, r.load[0], round(r.run.Wall), round(r.lists.took), r.lists.requests, mib(r.lists.bytes), round(r.bound()), ratio(r.run.Wall, r.bound()),
		sumKind(r.registry, "HEAD manifest"), r.api.total(), mib(r.api.totalBytes()), patches(r.api), r.run.restarted(), r.exp.restarts,
		mib(r.run.MaxRSSKiB<<10), kib(r.stateBytes), r.run.ExitCode)
	if len(r.api.Spans) > 0 {
		at := func(t time.Time) string { return "+" + round(t.Sub(r.run.Start)).String() }
		all := r.api.span(func(string) bool { return true })
		lists := r.api.span(func(k string) bool { return strings.HasPrefix(k, "list ") })
		line := fmt.Sprintf("          timeline: first API request %s, LISTs %s…%s", at(all.first), at(lists.first), at(lists.last))
		for _, k := range []string{"patch deployments", "create events", "update configmaps", "create configmaps"} {
			if sp, ok := r.api.Spans[k]; ok {
				line += fmt.Sprintf(", %s %s…%s", k, at(sp.first), at(sp.last))
			}
		}
		fmt.Fprintf(w, "%s, exit +%s\n", line, round(r.run.Wall))
	}
	if r.run.Warnings+r.run.Errors > 0 {
		fmt.Fprintf(w, "          log: %d WRN and %d ERR lines (%s), the first:\n", r.run.Warnings, r.run.Errors, r.run.Stderr)
		for _, p := range r.run.Problems {
			if len(p) > 220 {
				p = p[:220] + "…"
			}
			fmt.Fprintf(w, "               %s\n", p)
		}
	}
}

// printSeries writes a run's summary and its targets.
func printSeries(w io.Writer, rs []result, s runSpec, o options) {
	last := rs[len(rs)-1]
	fmt.Fprintf(w, "   wall        %s (urunner's own duration of the last: %s)\n", of(rs, func(r result) float64 { return float64(r.run.Wall) }).durations(), last.run.Summary["duration"])
	fmt.Fprintf(w, "   bare LISTs  %s: %d requests, %d items, %.2f MiB, listed %s\n", of(rs, func(r result) float64 { return float64(r.lists.took) }).durations(),
		last.lists.requests, last.lists.items, mib(last.lists.bytes), last.scope)
	var worst []string
	for _, n := range last.exp.refsPerHost {
		worst = append(worst, fmt.Sprint(n))
	}
	fmt.Fprintf(w, "   bound       registry %s (max over hosts of ceil(refs/%d) × %s; refs per host %s) + bare LISTs = %s\n",
		last.regBound, o.concurrency, o.latency, strings.Join(worst, "/"), of(rs, func(r result) float64 { return float64(r.bound()) }).durations())
	fmt.Fprintf(w, "   wall/bound  %s\n", of(rs, func(r result) float64 { return ratio(r.run.Wall, r.bound()) }).format("%.2f"))
	fmt.Fprintf(w, "   load        %s (1-minute average when each repetition started; %d CPUs)\n", of(rs, func(r result) float64 { return r.load[0] }).format("%.2f"), runtime.NumCPU())
	fmt.Fprintf(w, "   API         %s; %.2f MiB, %d responses gzipped (last repetition)\n", formatCounts(last.api.Requests), mib(last.api.totalBytes()), last.api.Gzipped)
	if len(last.api.Failures) > 0 {
		fmt.Fprintf(w, "   API errors  %s\n", formatCounts(last.api.Failures))
	}
	for h, m := range last.registry {
		fmt.Fprintf(w, "   registry %d  %s (%d refs, %d repos): %s\n", h, last.hosts[h], last.exp.refsPerHost[h], last.exp.reposPerHost[h], formatCounts(m))
	}
	fmt.Fprintf(w, "   budget      %s (urunner's own count, from its summary line)\n", budgetOf(last.run.Summary))
	if last.api.PatchSpan > 0 {
		fmt.Fprintf(w, "   PATCHes     %d, %s from first to last\n", patches(last.api), of(rs, func(r result) float64 { return float64(r.api.PatchSpan) }).durations())
	}
	fmt.Fprintf(w, "   summary     %s\n", formatSummary(last.run.Summary))
	fmt.Fprintf(w, "   peak RSS    %s MiB\n", of(rs, func(r result) float64 { return mib(r.run.MaxRSSKiB << 10) }).format("%.1f"))
	fmt.Fprintf(w, "   state       %d bytes (%.1f KiB) for %d references; ConfigMap %.1f KiB\n", last.stateBytes, kib(last.stateBytes), last.stateRefs, kib(last.cmBytes))
	fmt.Fprintf(w, "   targets:\n")
	for _, c := range checks(rs, s) {
		fmt.Fprintf(w, "     %-8s %s: %s\n", "["+c.verdict()+"]", c.target, c.detail)
	}
}

func formatSummary(s map[string]string) string {
	if s == nil {
		return "(no summary line)"
	}
	var parts []string
	for _, k := range []string{"namespaces", "workloads", "images", "resolved", "changed", "restarted", "baselined", "held", "failed"} {
		if v, ok := s[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

// measured is a run's repetitions and what they are held to.
type measured struct {
	spec runSpec
	rs   []result
}

// printTables writes the figures and the targets as Markdown tables, to
// paste into BENCHMARKS.md.
func printTables(w io.Writer, title string, ms []measured) {
	fmt.Fprintf(w, "\n== %s\n\n", title)
	fmt.Fprintln(w, "| run | load (1 min) | wall min / median / max | bare LISTs (median) | bound (median) | wall/bound min / median / max | HEAD | API calls | API bytes | PATCH | restarts (expected) | peak RSS (max) | state |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, m := range ms {
		rs, last := m.rs, m.rs[len(m.rs)-1]
		wall := of(rs, func(r result) float64 { return float64(r.run.Wall) })
		wb := of(rs, func(r result) float64 { return ratio(r.run.Wall, r.bound()) })
		d := func(v float64) time.Duration { return round(time.Duration(v)) }
		fmt.Fprintf(w, "| (%s) %s | %.2f–%.2f | %s / %s / %s | %s (%d req) | %s | %.2f / %.2f / %.2f | %d | %d | %.2f MiB | %d | %d (%d) | %.1f MiB | %.1f KiB |\n",
			m.spec.id, m.spec.title, of(rs, func(r result) float64 { return r.load[0] }).min, of(rs, func(r result) float64 { return r.load[0] }).max,
			d(wall.min), d(wall.med), d(wall.max),
			d(of(rs, func(r result) float64 { return float64(r.lists.took) }).med), last.lists.requests,
			d(of(rs, func(r result) float64 { return float64(r.bound()) }).med),
			wb.min, wb.med, wb.max,
			sumKind(last.registry, "HEAD manifest"), last.api.total(), mib(last.api.totalBytes()), patches(last.api),
			last.run.restarted(), last.exp.restarts,
			of(rs, func(r result) float64 { return mib(r.run.MaxRSSKiB << 10) }).max, kib(last.stateBytes))
	}
	fmt.Fprintf(w, "\n| target |")
	for _, m := range ms {
		fmt.Fprintf(w, " (%s) |", m.spec.id)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---|", len(ms)))
	rows := map[string][]string{}
	var order []string
	for i, m := range ms {
		for _, c := range checks(m.rs, m.spec) {
			if _, ok := rows[c.target]; !ok {
				order = append(order, c.target)
				rows[c.target] = make([]string, len(ms))
			}
			rows[c.target][i] = c.verdict() + ": " + c.detail
		}
	}
	for _, t := range order {
		fmt.Fprintf(w, "| %s |", t)
		for _, cell := range rows[t] {
			if cell == "" {
				cell = "n/a"
			}
			fmt.Fprintf(w, " %s |", strings.ReplaceAll(cell, ", every repetition", ""))
		}
		fmt.Fprintln(w)
	}
	missed := 0
	for _, m := range ms {
		for _, c := range checks(m.rs, m.spec) {
			if !c.met {
				if missed == 0 {
					fmt.Fprintf(w, "\nMissed:\n")
				}
				missed++
				fmt.Fprintf(w, "  (%s) %s: %s\n", m.spec.id, c.target, c.detail)
			}
		}
	}
	if missed == 0 {
		fmt.Fprintf(w, "\nEvery target met.\n")
	}
}
