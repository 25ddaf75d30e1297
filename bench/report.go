package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// The targets urunner is held to (BENCHMARKS.md).
const (
	wallFactor    = 1.5
	maxRSSKiB     = 96 << 10
	maxStateBytes = 512 << 10
	patchesIn     = time.Minute
	patchesTarget = 1000
	extraAPICalls = 3 // state read and write, and one to spare
	listPageSize  = 500
)

// result is one measured urunner run.
type result struct {
	id, title string
	// restartRun marks the run that measures the patch throughput.
	restartRun bool
	exp        expectations
	run        urunnerRun
	registry   []map[string]int // per host, Registry.Requests()
	hosts      []string
	api        apiCounts
	stateBytes int
	stateItems int // workloads in the stored state
	bound      time.Duration
}

// lowerBound is the time the lookups need at least: each host's unique
// references, concurrency at a time, each one latency long.
func lowerBound(refsPerHost []int, concurrency int, latency time.Duration) time.Duration {
	var worst int
	for _, n := range refsPerHost {
		worst = max(worst, (n+concurrency-1)/concurrency)
	}
	return time.Duration(worst) * latency
}

func sumKind(regs []map[string]int, key string) int {
	n := 0
	for _, m := range regs {
		n += m[key]
	}
	return n
}

// check is one target evaluated on one run.
type check struct {
	target  string
	applies bool
	met     bool
	detail  string
}

func (c check) verdict() string {
	switch {
	case !c.applies:
		return "n/a"
	case c.met:
		return "met"
	default:
		return "MISSED"
	}
}

// apiBound is the steady-state API call budget of the brief.
func apiBound(namespaces, deployments int) int {
	return ceilDiv(namespaces, listPageSize) + ceilDiv(deployments, listPageSize) + extraAPICalls
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// checks evaluates every target on r. namespaces and deployments are the
// cluster's totals, for the API budget.
func checks(r result, namespaces, deployments int) []check {
	var out []check

	heads := sumKind(r.registry, "HEAD manifest")
	want := 0
	var perHost []string
	headsOK := true
	for h, n := range r.exp.refsPerHost {
		want += n
		got := r.registry[h]["HEAD manifest"]
		headsOK = headsOK && got == n
		perHost = append(perHost, fmt.Sprintf("%d/%d", got, n))
	}
	c := check{target: "one HEAD per unique reference", applies: true, met: headsOK,
		detail: fmt.Sprintf("%d HEADs for %d refs (per host %s)", heads, want, strings.Join(perHost, " "))}
	if !headsOK {
		c.detail += fmt.Sprintf(": off by %+d", heads-want)
	}
	out = append(out, c)

	gets := sumKind(r.registry, "GET manifest")
	out = append(out, check{target: "zero manifest GETs", applies: true, met: gets == 0,
		detail: fmt.Sprintf("%d GET manifest", gets)})

	tokensOK := true
	var tokens []string
	for h, m := range r.registry {
		n := m["GET token"] + m["POST token"]
		tokensOK = tokensOK && n <= r.exp.reposPerHost[h]
		tokens = append(tokens, fmt.Sprintf("%d/%d", n, r.exp.reposPerHost[h]))
	}
	out = append(out, check{target: "≤ 1 token request per repository", applies: true, met: tokensOK,
		detail: "tokens/repositories per host " + strings.Join(tokens, " ")})

	budget := apiBound(namespaces, deployments)
	patches := r.api.Requests["patch deployments"]
	others := r.api.total() - patches
	c = check{target: fmt.Sprintf("API calls besides PATCH ≤ %d", budget), applies: true, met: others <= budget,
		detail: fmt.Sprintf("%d calls besides PATCH", others)}
	if !c.met {
		c.detail += fmt.Sprintf(": %d over", others-budget)
	}
	out = append(out, c)

	restarted := r.run.restarted()
	extra := extraCalls(r.api)
	c = check{target: "one PATCH per restarted workload, nothing else", applies: true,
		met:    patches == restarted && restarted == r.exp.restarts && len(extra) == 0,
		detail: fmt.Sprintf("%d PATCH, restarted=%d, expected %d", patches, restarted, r.exp.restarts)}
	if len(extra) > 0 {
		c.detail += "; besides LISTs and the state: " + formatCounts(extra)
	}
	out = append(out, c)

	limit := time.Duration(float64(r.bound) * wallFactor)
	c = check{target: fmt.Sprintf("wall ≤ %.1f× lower bound", wallFactor), applies: !r.restartRun && r.bound > 0,
		met:    r.run.Wall <= limit,
		detail: fmt.Sprintf("%s vs %s (%.2f× bound)", round(r.run.Wall), round(limit), ratio(r.run.Wall, r.bound))}
	if c.applies && !c.met {
		c.detail += fmt.Sprintf(": %s over", round(r.run.Wall-limit))
	}
	if r.restartRun {
		c.detail += " (run d is bound by the API client's QPS, not the registry)"
	}
	out = append(out, c)

	// At a scale with fewer restarts the target says nothing.
	c = check{target: fmt.Sprintf("%d patches in under a minute", patchesTarget), applies: r.restartRun && r.exp.restarts >= patchesTarget*9/10,
		met:    patches >= patchesTarget*9/10 && r.api.PatchSpan < patchesIn,
		detail: fmt.Sprintf("%d PATCHes took %s", patches, round(r.api.PatchSpan))}
	if patches > 0 && r.api.PatchSpan > 0 {
		c.detail += fmt.Sprintf(" (%.0f/s)", float64(patches)/r.api.PatchSpan.Seconds())
	}
	out = append(out, c)

	c = check{target: "peak RSS ≤ 96 MiB", applies: true, met: r.run.MaxRSSKiB <= maxRSSKiB,
		detail: fmt.Sprintf("%.1f MiB", mib(r.run.MaxRSSKiB<<10))}
	if !c.met {
		c.detail += fmt.Sprintf(": %.1f MiB over", mib((r.run.MaxRSSKiB-maxRSSKiB)<<10))
	}
	out = append(out, c)

	c = check{target: "state ≤ 512 KiB", applies: true, met: r.stateBytes <= maxStateBytes,
		detail: fmt.Sprintf("%.1f KiB for %d workloads", kib(r.stateBytes), r.stateItems)}
	if !c.met {
		c.detail += fmt.Sprintf(": %.1f KiB over", kib(r.stateBytes-maxStateBytes))
	}
	out = append(out, c)

	out = append(out, check{target: "exit code 0", applies: true, met: r.run.ExitCode == 0,
		detail: fmt.Sprintf("exit %d", r.run.ExitCode)})
	return out
}

// extraCalls returns the requests that are neither a LIST, a Deployment
// PATCH nor the state ConfigMap's read and write.
func extraCalls(c apiCounts) map[string]int {
	out := map[string]int{}
	for k, v := range c.Requests {
		switch {
		case strings.HasPrefix(k, "list "), k == "patch deployments",
			k == "get configmaps", k == "create configmaps", k == "update configmaps":
		default:
			out[k] = v
		}
	}
	return out
}

func round(d time.Duration) time.Duration {
	if d > 10*time.Second {
		return d.Round(100 * time.Millisecond)
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

// formatCounts prints a map as sorted "key=value" pairs.
func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	return strings.Join(parts, " ")
}

// printRun writes one run's figures and targets.
func printRun(w io.Writer, r result, namespaces, deployments int) {
	fmt.Fprintf(w, "\n== run (%s) %s\n", r.id, r.title)
	fmt.Fprintf(w, "   wall            %s (urunner's own duration=%s), exit %d\n", round(r.run.Wall), r.run.Summary["duration"], r.run.ExitCode)
	fmt.Fprintf(w, "   lower bound     %s = max over hosts of ceil(refs/concurrency) × latency; wall/bound %.2f\n", r.bound, ratio(r.run.Wall, r.bound))
	for h, m := range r.registry {
		fmt.Fprintf(w, "   registry %-6s %s (%d refs, %d repos): %s\n", fmt.Sprint(h), r.hosts[h], r.exp.refsPerHost[h], r.exp.reposPerHost[h], formatCounts(m))
	}
	fmt.Fprintf(w, "   API             %s (total %d)\n", formatCounts(r.api.Requests), r.api.total())
	if len(r.api.Spans) > 0 {
		at := func(t time.Time) string { return "+" + round(t.Sub(r.run.Start)).String() }
		all := r.api.span(func(string) bool { return true })
		lists := r.api.span(func(k string) bool { return strings.HasPrefix(k, "list ") })
		fmt.Fprintf(w, "   timeline        first API request %s, LISTs done %s", at(all.first), at(lists.last))
		for _, k := range slices.Sorted(maps.Keys(r.api.Spans)) {
			if sp := r.api.Spans[k]; !strings.HasPrefix(k, "list ") && !strings.HasSuffix(k, " configmaps") {
				fmt.Fprintf(w, ", %s %s…%s", k, at(sp.first), at(sp.last))
			}
		}
		fmt.Fprintf(w, ", exit +%s\n", round(r.run.Wall))
	}
	if len(r.api.Failures) > 0 {
		fmt.Fprintf(w, "   API failures    %s\n", formatCounts(r.api.Failures))
	}
	if r.api.PatchSpan > 0 {
		fmt.Fprintf(w, "   patches         %d in %s\n", r.api.Requests["patch deployments"], round(r.api.PatchSpan))
	}
	fmt.Fprintf(w, "   restarts        %d (expected %d); summary: %s\n", r.run.restarted(), r.exp.restarts, formatSummary(r.run.Summary))
	fmt.Fprintf(w, "   peak RSS        %.1f MiB\n", mib(r.run.MaxRSSKiB<<10))
	fmt.Fprintf(w, "   state           %d bytes (%.1f KiB) for %d workloads\n", r.stateBytes, kib(r.stateBytes), r.stateItems)
	if r.run.Warnings+r.run.Errors > 0 {
		fmt.Fprintf(w, "   log             %d WRN and %d ERR lines (%s), the first:\n", r.run.Warnings, r.run.Errors, r.run.Stderr)
		for _, p := range r.run.Problems {
			if len(p) > 220 {
				p = p[:220] + "…"
			}
			fmt.Fprintf(w, "                   %s\n", p)
		}
	}
	fmt.Fprintf(w, "   targets:\n")
	for _, c := range checks(r, namespaces, deployments) {
		if c.applies {
			fmt.Fprintf(w, "     %-7s %-48s %s\n", "["+c.verdict()+"]", c.target, c.detail)
		}
	}
}

func formatSummary(s map[string]string) string {
	if s == nil {
		return "(no summary line)"
	}
	var parts []string
	for _, k := range []string{"namespaces", "workloads", "images", "resolved", "changed", "restarted", "baselined", "failed"} {
		parts = append(parts, k+"="+s[k])
	}
	return strings.Join(parts, " ")
}

// printTables writes the figures and the targets as Markdown tables, to
// paste into BENCHMARKS.md.
func printTables(w io.Writer, rs []result, namespaces, deployments int) {
	fmt.Fprintf(w, "\n== Figures\n\n")
	fmt.Fprintln(w, "| run | wall | urunner duration | lower bound | wall/bound | HEAD | GET manifest | token | API calls | LIST | PATCH | patches took | restarts (expected) | peak RSS | state |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		took := "–"
		if r.api.PatchSpan > 0 {
			took = round(r.api.PatchSpan).String()
		}
		fmt.Fprintf(w, "| (%s) %s | %s | %s | %s | %.2f | %d | %d | %d | %d | %d | %d | %s | %d (%d) | %.1f MiB | %.1f KiB |\n",
			r.id, r.title, round(r.run.Wall), r.run.Summary["duration"], r.bound, ratio(r.run.Wall, r.bound),
			sumKind(r.registry, "HEAD manifest"), sumKind(r.registry, "GET manifest"),
			sumKind(r.registry, "GET token")+sumKind(r.registry, "POST token"),
			r.api.total(), r.api.byVerb("list"), r.api.Requests["patch deployments"], took,
			r.run.restarted(), r.exp.restarts, mib(r.run.MaxRSSKiB<<10), kib(r.stateBytes))
	}
	fmt.Fprintf(w, "\n== Targets\n\n")
	header := "| target |"
	sep := "|---|"
	for _, r := range rs {
		header += fmt.Sprintf(" (%s) |", r.id)
		sep += "---|"
	}
	fmt.Fprintln(w, header)
	fmt.Fprintln(w, sep)
	all := make([][]check, len(rs))
	for i, r := range rs {
		all[i] = checks(r, namespaces, deployments)
	}
	for t := range all[0] {
		row := "| " + all[0][t].target + " |"
		for i := range rs {
			c := all[i][t]
			cell := c.verdict()
			if c.applies {
				cell += ": " + c.detail
			}
			row += " " + cell + " |"
		}
		fmt.Fprintln(w, row)
	}
	missed := 0
	for i, r := range rs {
		for _, c := range all[i] {
			if c.applies && !c.met {
				if missed == 0 {
					fmt.Fprintf(w, "\nMissed:\n")
				}
				missed++
				fmt.Fprintf(w, "  (%s) %s: %s\n", r.id, c.target, c.detail)
			}
		}
	}
	if missed == 0 {
		fmt.Fprintf(w, "\nEvery target met.\n")
	}
}
