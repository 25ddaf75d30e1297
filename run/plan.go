package run

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urunner/urunner/policy"
)

// printPlan writes the dry run's table: every tracked image, grouped by
// what its workloads are believed to run and what the run would do.
func printPlan(w io.Writer, f *found, p *plan) {
	type row struct{ image, runs, current, action string }
	rows := map[row][]string{}
	for _, w := range f.workloads {
		wl, d := &w.listed, w.decision
		if d.Ignored != "" {
			continue
		}
		for _, c := range d.Containers {
			if c.Verdict == policy.Untracked {
				continue
			}
			r := row{image: c.Ref, runs: short(c.From), current: short(c.To), action: action(d, c)}
			if r.runs == "" {
				r.runs = "-"
			}
			switch c.Verdict {
			case policy.LookupFailed:
				r.current = "lookup failed"
			case policy.NotLookedUp:
				r.current = "not looked up"
			}
			rows[r] = append(rows[r], fmt.Sprintf("%s/%s/%s:%s", wl.kube.Namespace, lowerKind(wl), wl.kube.Name, c.Name))
		}
	}
	tw := tabwriter.NewWriter(w, 1, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tRUNS\tCURRENT\tACTION\tWORKLOADS")
	keys := slices.SortedFunc(maps.Keys(rows), func(a, b row) int {
		return strings.Compare(a.image+a.runs+a.action, b.image+b.runs+b.action)
	})
	for _, r := range keys {
		ws := rows[r]
		slices.Sort(ws)
		list := strings.Join(ws[:min(3, len(ws))], ", ")
		if len(ws) > 3 {
			list += fmt.Sprintf(" and %d more", len(ws)-3)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.image, r.runs, r.current, r.action, list)
	}
	_ = tw.Flush()
}

// logWouldRestart logs what a dry run would restart, as a run logs it.
func (a *app) logWouldRestart(f *found, p *plan) {
	for _, wl := range f.workloads {
		w, d := &wl.listed, wl.decision
		if d.Action != policy.Restart {
			continue
		}
		for _, c := range d.Moves() {
			a.note(wouldRestart{&w.kube, c})
		}
	}
}

// action says what the run would do to a container.
func action(d *policy.Decision, c policy.ContainerDecision) string {
	switch c.Verdict {
	case policy.Moved:
		switch d.Action {
		case policy.Restart:
			if c.Risky != "" {
				return "restart (pull policy " + c.Risky + "!)"
			}
			return "restart"
		case policy.Hold:
			return "wait (" + d.Reason + ")"
		}
	case policy.Recorded:
		return "record (" + c.Why + ")"
	case policy.Baseline:
		return "baseline"
	case policy.Unchanged:
		return "none"
	case policy.LookupFailed:
		return "keep"
	case policy.NotLookedUp:
		return "keep (not looked up)"
	}
	return c.Verdict.String()
}

// short returns a digest's first 12 hex characters, as docker shows them.
func short(d string) string {
	if h, ok := strings.CutPrefix(d, "sha256:"); ok && len(h) >= 12 {
		return h[:12]
	}
	return d
}
