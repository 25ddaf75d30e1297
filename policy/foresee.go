package policy

import (
	"maps"
	"time"

	"github.com/urunner/urunner/state"
)

// Foresight: when will a due move restart its workload, and what holds it
// until then? Foresee answers by running the rules themselves (Run.Decide,
// Run.Cap, the Ledger) over the runs to come, on a copy of the workloads:
// there is no second implementation of the rules to drift from the first.
// Between two runs it assumes what a healthy cluster does: nothing is
// pushed, nobody annotates anything, and a restart's rollout completes
// before the next run (a ring waits for it).

// Schedule is when the runs to come start.
type Schedule interface {
	// Next returns the first run after t.
	Next(t time.Time) time.Time
}

// Forecast is what Foresee foresees for one workload a move is due for.
type Forecast struct {
	Workload *Workload
	// Ref and To are the first moved container's reference and the digest
	// it restarts onto.
	Ref, To string
	// At is the run foreseen to restart it; zero when none within the
	// horizon does.
	At time.Time
	// Holds are the holds it meets before, in order.
	Holds []ForecastHold
	// Waits is, when At is zero, the reason of the hold that time alone
	// does not lift, and WaitsRule its name; Waits alone says that the
	// move is no longer due, or that the horizon ended.
	Waits, WaitsRule string
}

// ForecastHold is one hold a forecast meets: from the first run it holds
// at, until time alone lifts it (zero when it does not).
type ForecastHold struct {
	Rule, Why   string
	From, Until time.Time
}

// Foresight is what Foresee starts from: the rules' settings and this
// run's lookups, what urunner will remember when the first run to come
// starts, and the listed workloads (with the namespaces that failed to
// list).
type Foresight struct {
	Settings  Settings
	Results   Results
	Mem       state.State
	Workloads []*Workload
	Failed    map[string]bool
	// Schedule is when the runs to come start; nil steps straight to the
	// time each hold ends, the earliest a run could restart.
	Schedule Schedule
	// Horizon is how far ahead to look (a week covers any window).
	Horizon time.Duration
	// Restarted are the restarts of the run that foresees, at RestartedAt:
	// the runs to come see them done.
	Restarted   []*Decision
	RestartedAt time.Time
}

// maxSteps bounds the runs a foresight decides: each step jumps to the
// end of the nearest hold, so few are needed; a cap with a window, which
// moves one run at a time, is cut off there.
const maxSteps = 64

// Foresee forecasts, for each workload of due (each among f.Workloads),
// which run from first on restarts it. The workloads are not changed.
func (f Foresight) Foresee(due []*Workload, first time.Time) []Forecast {
	sim := &simulation{f: f, mem: f.Mem, ws: make([]*Workload, len(f.Workloads)), forecasts: make([]Forecast, len(due))}
	copies := map[*Workload]*Workload{}
	copyOf := func(w *Workload) *Workload {
		c := *w
		c.Containers = append([]Container(nil), w.Containers...)
		copies[w] = &c
		return &c
	}
	for i, w := range due {
		sim.forecasts[i].Workload = w
		sim.due = append(sim.due, copyOf(w))
	}
	for _, d := range f.Restarted {
		restartCopy(copyOf(d.Workload), d, f.RestartedAt)
	}
	for i, w := range f.Workloads {
		if c, ok := copies[w]; ok {
			w = c
		}
		sim.ws[i] = w
	}
	end := first.Add(f.Horizon)
	t := first
	for step := 0; step < maxSteps && !t.After(end); step++ {
		next, open := sim.step(t)
		if !open {
			return sim.forecasts
		}
		if t = sim.after(t, next); t.IsZero() {
			break
		}
	}
	for i := range sim.forecasts {
		fc := &sim.forecasts[i]
		if fc.At.IsZero() && fc.Waits == "" {
			fc.Waits = "no restart foreseen within " + f.Horizon.String()
		}
	}
	return sim.forecasts
}

// simulation is a foresight under way: the workloads as the runs so far
// left them, and what urunner remembers.
type simulation struct {
	f         Foresight
	mem       state.State
	ws        []*Workload // f.Workloads, the due ones replaced by copies
	due       []*Workload // the copies, by forecast
	forecasts []Forecast
	restarted bool // the last step restarted something
}

// step decides one run at t, carries its restarts out on the copies, and
// returns the earliest time a hold of a forecast still open ends (zero:
// none ends by time alone), and whether a forecast is still open.
func (s *simulation) step(t time.Time) (next time.Time, open bool) {
	r := &Run{Settings: s.f.Settings, Results: s.f.Results, Mem: s.mem, Now: t, Fleet: NewFleet(s.ws, s.f.Failed)}
	ds := make([]Decision, len(s.ws))
	ptrs := make([]*Decision, len(s.ws))
	index := map[*Workload]int{}
	for i, w := range s.ws {
		ds[i], ptrs[i] = r.Decide(w), &ds[i]
		index[w] = i
	}
	r.Cap(ptrs)
	restart := map[*Workload]bool{}
	s.restarted = false
	for i, w := range s.due {
		fc := &s.forecasts[i]
		if !fc.At.IsZero() || fc.Waits != "" && fc.WaitsRule == "" {
			continue
		}
		d := &ds[index[w]]
		if m := d.Moves(); fc.Ref == "" && len(m) > 0 {
			fc.Ref, fc.To = m[0].Ref, m[0].To
		}
		switch {
		case d.Action == Restart:
			fc.At, restart[w] = t, true
			fc.Waits, fc.WaitsRule = "", ""
			s.restarted = true
		case d.Action == Hold:
			fc.held(d, t)
			if !d.Until.IsZero() && (next.IsZero() || d.Until.Before(next)) {
				next = d.Until
			}
			open = true
		default:
			fc.Waits, fc.WaitsRule = "no longer due at "+t.UTC().Format(time.RFC3339), ""
		}
	}
	l := NewLedger(s.f.Settings, s.mem, t, t)
	for i := range ds {
		for _, c := range ds[i].Containers {
			if c.Result != nil {
				l.Observe(c.Lookup(), *c.Result)
			}
		}
		// A run records a restart rolled out only when it verifies rollouts;
		// else the next run finds it healthy.
		restarted := restart[s.ws[i]]
		l.Record(&ds[i], restarted, restarted && s.f.Settings.Quarantine)
	}
	s.mem = l.Next(Listing{Failed: s.f.Failed})
	for w := range restart {
		restartCopy(w, &ds[index[w]], t)
	}
	return next, open
}

// held records the hold d is under at t: a new one, or the one it was
// already under; one time alone does not lift is what it waits for.
func (fc *Forecast) held(d *Decision, t time.Time) {
	if n := len(fc.Holds); n == 0 || fc.Holds[n-1].Rule != d.Rule || fc.Holds[n-1].Why != d.Reason {
		fc.Holds = append(fc.Holds, ForecastHold{Rule: d.Rule, Why: d.Reason, From: t, Until: d.Until})
	}
	fc.Waits, fc.WaitsRule = "", ""
	if d.Until.IsZero() {
		fc.Waits, fc.WaitsRule = d.Reason, d.Rule
	}
}

// after returns the run after t to decide next: the next one when t
// restarted something (a later ring, or the cap, may follow it) or a cap
// with a window holds, else the first run at or after the nearest end of a
// hold; zero when nothing but a person can lift what holds.
func (s *simulation) after(t, next time.Time) time.Time {
	if s.restarted || s.capMoves() {
		return s.f.next(t)
	}
	if next.IsZero() {
		return time.Time{}
	}
	return s.f.next(next.Add(-time.Nanosecond))
}

// capMoves reports whether a forecast is held by a cap whose window moves
// with the runs (URUNNER_CONF_MAX_RESTARTS_WINDOW).
func (s *simulation) capMoves() bool {
	if s.f.Settings.MaxRestartsWindow <= 0 {
		return false
	}
	for _, fc := range s.forecasts {
		if n := len(fc.Holds); fc.At.IsZero() && n > 0 && fc.Holds[n-1].Rule == "cap" {
			return true
		}
	}
	return false
}

// next is the first run after t; without a schedule, t itself a moment
// later (the earliest a run could start).
func (f Foresight) next(t time.Time) time.Time {
	if f.Schedule == nil {
		return t.Add(time.Nanosecond)
	}
	return f.Schedule.Next(t)
}

// restartCopy carries a foreseen restart out on a copied workload: its
// restart annotations, and its pods on the new digests once the rollout
// completes.
func restartCopy(w *Workload, d *Decision, t time.Time) {
	w.RestartedAt = t
	w.RestartedFor = maps.Clone(w.RestartedFor)
	if w.RestartedFor == nil {
		w.RestartedFor = map[string]Record{}
	}
	w.Healthy = true
	for _, m := range d.Moves() {
		w.RestartedFor[m.Name] = Record{Ref: m.Ref, Digest: m.To}
		for i := range w.Containers {
			if c := &w.Containers[i]; c.Name == m.Name && c.Pods != nil {
				c.Pods = &Pods{Digests: []string{m.To}, AllReady: true}
			}
		}
	}
}
