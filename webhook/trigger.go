package webhook

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"
)

// runs is what the trigger needs of the cluster: whether a run of the
// CronJob is in progress, and starting one. refs nil means a full run.
type runs interface {
	Active() bool
	Start(ctx context.Context, refs []string) (job string, err error)
}

// retryDelay is how long the trigger waits after a Job could not be
// created (API server unreachable, forbidden) before trying again.
const retryDelay = 2 * time.Second

// recheckEvery is how often a waiting batch looks again whether the run
// it waits for is over, besides the Job events that say so.
const recheckEvery = 5 * time.Second

// flushTimeout bounds the last Job creation when the receiver stops.
const flushTimeout = 5 * time.Second

// trigger coalesces pushed references into runs: the first push after a
// quiet spell opens a window of debounce; when it closes, one run starts
// for everything pushed meanwhile, unless a run is in progress, in which
// case the references wait (one pending batch at most, the union of all
// of them) until it finishes.
type trigger struct {
	debounce time.Duration
	maxRefs  int
	runs     runs
	log      *slog.Logger

	add  chan []string
	wake chan struct{}
}

func newTrigger(r runs, debounce time.Duration, maxRefs int, log *slog.Logger) *trigger {
	return &trigger{
		debounce: debounce,
		maxRefs:  maxRefs,
		runs:     r,
		log:      log,
		add:      make(chan []string),
		wake:     make(chan struct{}, 1),
	}
}

// Push hands pushed references to the trigger; it returns once the loop
// has them, or ctx ends.
func (t *trigger) Push(ctx context.Context, refs []string) error {
	select {
	case t.add <- refs:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wake tells the trigger that a run may have finished. It never blocks.
func (t *trigger) Wake() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// batch is the pending references: a set, or "everything" once more than
// maxRefs were pushed.
type batch struct {
	refs  map[string]struct{}
	full  bool
	due   time.Time // the debounce window's end
	since time.Time // the first push of the batch
}

func (b *batch) empty() bool { return !b.full && len(b.refs) == 0 }

// list returns the references to look up, sorted; nil for a full run.
func (b *batch) list() []string {
	if b.full {
		return nil
	}
	return slices.Sorted(maps.Keys(b.refs))
}

// Run is the trigger's loop, until ctx ends; then it makes one last
// attempt to start what is pending.
func (t *trigger) Run(ctx context.Context) {
	b := batch{refs: map[string]struct{}{}}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	waiting := false // logged that the batch waits for a run
	for {
		select {
		case refs := <-t.add:
			now := time.Now()
			if b.empty() {
				b.since, b.due = now, now.Add(t.debounce)
				timer.Reset(t.debounce)
			}
			for _, r := range refs {
				b.refs[r] = struct{}{}
			}
			if !b.full && len(b.refs) > t.maxRefs {
				t.log.Info("more pushed references than a targeted run takes: the run looks up everything", "references", len(b.refs), "max", t.maxRefs)
				b.full, b.refs = true, map[string]struct{}{}
			}
		case <-t.wake:
		case <-timer.C:
		case <-ctx.Done():
			t.flush(b)
			return
		}
		if b.empty() || time.Now().Before(b.due) {
			continue
		}
		if t.runs.Active() {
			if !waiting {
				t.log.Info("a run is in progress: the pushed references wait for it", "references", len(b.refs), "full", b.full)
				waiting = true
			}
			// A Job event wakes the loop when the run ends; the timer is
			// a safety net should that event never come.
			timer.Reset(recheckEvery)
			continue
		}
		job, err := t.runs.Start(ctx, b.list())
		if err != nil {
			t.log.Error("could not start a run; retrying", "err", err, "in", retryDelay)
			timer.Reset(retryDelay)
			continue
		}
		t.log.Info("run started", "job", job, "references", len(b.refs), "full", b.full, "waited", time.Since(b.since).Round(time.Millisecond))
		b, waiting = batch{refs: map[string]struct{}{}}, false
	}
}

// flush starts a run for what is pending when the receiver stops, if no
// run is in progress; otherwise the next scheduled run finds the changes.
func (t *trigger) flush(b batch) {
	if b.empty() {
		return
	}
	if t.runs.Active() {
		t.log.Warn("stopping with pushed references pending behind a run in progress: the next scheduled run looks them up", "references", len(b.refs))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	job, err := t.runs.Start(ctx, b.list())
	if err != nil {
		t.log.Error("stopping: could not start a run for the pending references; the next scheduled run looks them up", "err", err, "references", len(b.refs))
		return
	}
	t.log.Info("run started", "job", job, "references", len(b.refs), "full", b.full, "on", "shutdown")
}
