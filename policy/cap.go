package policy

import (
	"fmt"
	"slices"
	"time"
)

// Capped is what the cap did to a run.
type Capped struct {
	// Held is how many restarts of this run it held; 0 when it did not
	// apply.
	Held int
	// Reason says why, naming the count, the window and the variable.
	Reason string
}

// Cap holds every restart of the run when they, with the restarts already
// counted in the cap's window, are more than Settings.MaxRestarts (0: no
// cap). A registry migration or a rebuilt base image moves every digest at
// once, by one scheduled run or by many pushed ones: rolling the whole
// fleet is a person's decision. The window is, by default, since the start
// of the last full run (a full run counts only its own restarts, a pushed
// run adds its restarts to its window's), or, with MaxRestartsWindow, the
// restarts of any run within that duration. The held moves stay due, so
// raising the cap applies them.
func (r *Run) Cap(ds []*Decision) Capped {
	max := r.Settings.MaxRestarts
	if max <= 0 {
		return Capped{}
	}
	n := 0
	for _, d := range ds {
		if d.Action == Restart {
			n++
		}
	}
	before, window := r.counted()
	if n == 0 || n+before <= max {
		return Capped{}
	}
	reason := fmt.Sprintf("%d workloads would restart, more than URUNNER_CONF_MAX_RESTARTS=%d", n, max)
	if window != "" {
		reason = fmt.Sprintf("%d workloads would restart and %d restarted %s: more than URUNNER_CONF_MAX_RESTARTS=%d", n, before, window, max)
	}
	until := r.capLifts(n)
	for _, d := range ds {
		if d.Action == Restart {
			d.Action, d.Reason, d.Rule, d.Until = Hold, reason, "cap", until
		}
	}
	return Capped{Held: n, Reason: reason}
}

// capLifts returns when enough of the restarts counted in a
// URUNNER_CONF_MAX_RESTARTS_WINDOW leave it for n more to fit, the oldest
// first; zero when time alone does not make room (no such window, or n
// alone is more than the cap).
func (r *Run) capLifts(n int) time.Time {
	w, max := r.Settings.MaxRestartsWindow, r.Settings.MaxRestarts
	if w <= 0 || n > max {
		return time.Time{}
	}
	in := r.Settings.capFrom(r.Mem.CapSince, r.Now)
	var runs []int64
	before := 0
	for at, c := range r.Mem.Restarts {
		if in.holds(at) {
			runs = append(runs, at)
			before += c
		}
	}
	slices.Sort(runs)
	for _, at := range runs {
		if before -= r.Mem.Restarts[at]; n+before <= max {
			return time.Unix(0, at).Add(w)
		}
	}
	return time.Time{}
}

// counted returns the restarts already counted in the run's cap window,
// and the window in words ("" when this run's own restarts are all that
// count: a full run without URUNNER_CONF_MAX_RESTARTS_WINDOW).
func (r *Run) counted() (int, string) {
	if w := r.Settings.MaxRestartsWindow; w > 0 {
		return restartsIn(r.Mem.Restarts, r.Settings.capFrom(r.Mem.CapSince, r.Now)),
			fmt.Sprintf("in the last %s (URUNNER_CONF_MAX_RESTARTS_WINDOW)", w)
	}
	if !r.Restricted {
		return 0, ""
	}
	window := "since the start of the last full run"
	if !r.Mem.CapSince.IsZero() {
		window += " at " + r.Mem.CapSince.UTC().Format(time.RFC3339)
	}
	return restartsIn(r.Mem.Restarts, r.Settings.capFrom(r.Mem.CapSince, r.Now)),
		window + " (pushed runs, URUNNER_CONF_REFERENCES, count in it)"
}

// capWindow is the cap's window of a run at now: it holds the restarts
// of the runs started after from, or at it when inclusive.
type capWindow struct {
	from      time.Time
	inclusive bool
}

// capFrom returns the cap's window at now, the last full run having
// started at since.
func (s Settings) capFrom(since, now time.Time) capWindow {
	if s.MaxRestartsWindow > 0 {
		return capWindow{from: now.Add(-s.MaxRestartsWindow)}
	}
	return capWindow{from: since, inclusive: true}
}

func (w capWindow) holds(runKey int64) bool {
	t := time.Unix(0, runKey)
	return t.After(w.from) || w.inclusive && t.Equal(w.from)
}

// restartsIn counts the restarts of the runs in w.
func restartsIn(restarts map[int64]int, w capWindow) int {
	n := 0
	for at, c := range restarts {
		if w.holds(at) {
			n += c
		}
	}
	return n
}
