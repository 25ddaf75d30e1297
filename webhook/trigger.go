package webhook

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// runs is what the trigger needs of the cluster: whether a run of the
// CronJob is in progress, and starting one. refs nil means a full run.
type runs interface {
	Active() bool
	Start(ctx context.Context, refs []string) (job string, err error)
}

// A failed Job creation (API server unreachable, forbidden, a Job it
// refuses) is retried maxStartAttempts times in all, waiting retryDelay,
// then twice as long each time (2+4+8+16 s); then the batch is dropped
// with an error: the next scheduled run looks its references up.
const (
	retryDelay       = 2 * time.Second
	maxStartAttempts = 5
)

// errSuspended is Start's answer while the CronJob is suspended: the
// batch is dropped, not retried.
var errSuspended = errors.New("the CronJob is suspended")

// errStopping is Push's answer once the trigger has stopped.
var errStopping = errors.New("the receiver is stopping")

// recheckEvery is how often a waiting batch looks again whether the run
// it waits for is over, besides the Job events that say so.
const recheckEvery = 5 * time.Second

// flushTimeout bounds the last Job creation when the receiver stops.
const flushTimeout = 5 * time.Second

// trigger coalesces pushed references into runs: the first push after a
// quiet spell opens a window of debounce; when it closes, one run starts
// for everything pushed meanwhile, unless a run is in progress, in which
// case the references wait (one pending batch, the union of all of them)
// until it finishes. A batch whose Job could not be created is retried
// alone: what is pushed meanwhile waits in the next batch.
type trigger struct {
	debounce time.Duration
	maxRefs  int
	runs     runs
	log      *slog.Logger
	retry    time.Duration // the first retry's delay

	mu      sync.Mutex
	inbox   [][]string // pushed, not yet in a batch
	stopped bool
	kick    chan struct{}
	wake    chan struct{}
}

func newTrigger(r runs, debounce time.Duration, maxRefs int, log *slog.Logger) *trigger {
	return &trigger{
		debounce: debounce,
		maxRefs:  maxRefs,
		runs:     r,
		log:      log,
		retry:    retryDelay,
		kick:     make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
	}
}

// Push hands pushed references to the trigger. It never waits on the
// trigger's loop (which may be creating a Job): a notification is answered
// at once.
func (t *trigger) Push(_ context.Context, refs []string) error {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return errStopping
	}
	t.inbox = append(t.inbox, refs)
	t.mu.Unlock()
	signal(t.kick)
	return nil
}

// Wake tells the trigger that a run may have finished. It never blocks.
func (t *trigger) Wake() { signal(t.wake) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// batch is the pending references: a set, or "everything" once more than
// maxRefs were pushed.
type batch struct {
	refs     map[string]struct{}
	full     bool
	due      time.Time // the debounce window's end, or the next attempt
	since    time.Time // the first push of the batch
	attempts int       // failed Job creations
}

func newBatch() *batch { return &batch{refs: map[string]struct{}{}} }

func (b *batch) empty() bool { return !b.full && len(b.refs) == 0 }

// list returns the references to look up, sorted; nil for a full run.
func (b *batch) list() []string {
	if b.full {
		return nil
	}
	return slices.Sorted(maps.Keys(b.refs))
}

// add puts refs into b, opening its window if it was empty.
func (t *trigger) add(b *batch, refs []string, now time.Time) {
	if b.empty() {
		b.since, b.due = now, now.Add(t.debounce)
	}
	for _, r := range refs {
		b.refs[r] = struct{}{}
	}
	if !b.full && len(b.refs) > t.maxRefs {
		t.log.Info("more pushed references than a targeted run takes: the run looks up everything", "references", len(b.refs), "max", t.maxRefs)
		b.full, b.refs = true, map[string]struct{}{}
	}
}

// drain moves the inbox into cur, or into next while cur is being
// retried: later pushes never join a batch whose Job failed.
func (t *trigger) drain(cur, next *batch) {
	t.mu.Lock()
	in := t.inbox
	t.inbox = nil
	t.mu.Unlock()
	to := cur
	if cur.attempts > 0 {
		to = next
	}
	now := time.Now()
	for _, refs := range in {
		t.add(to, refs, now)
	}
}

// Run is the trigger's loop, until ctx ends; then it makes one last
// attempt to start what is pending.
func (t *trigger) Run(ctx context.Context) {
	cur, next := newBatch(), newBatch()
	timer := time.NewTimer(time.Hour)
	waiting := false // logged that the batch waits for a run
	for {
		select {
		case <-t.kick:
		case <-t.wake:
		case <-timer.C:
		case <-ctx.Done():
			t.mu.Lock()
			t.stopped = true
			t.mu.Unlock()
			t.drain(cur, next)
			t.flush(cur)
			t.flush(next)
			return
		}
		t.drain(cur, next)
		if cur.empty() && !next.empty() {
			cur, next = next, newBatch()
		}
		if cur.empty() {
			continue
		}
		if wait := time.Until(cur.due); wait > 0 {
			timer.Reset(wait)
			continue
		}
		if t.runs.Active() {
			if !waiting {
				t.log.Info("a run is in progress: the pushed references wait for it", "references", len(cur.refs), "full", cur.full)
				waiting = true
			}
			// A Job event wakes the loop when the run ends; the timer is
			// a safety net should that event never come.
			timer.Reset(recheckEvery)
			continue
		}
		if t.start(ctx, cur) {
			cur, next, waiting = next, newBatch(), false
		}
		timer.Reset(0)
	}
}

// start tries to create b's Job. It reports whether b is done with:
// started, or dropped after its last attempt or because the CronJob is
// suspended; otherwise b.due is when to try again.
func (t *trigger) start(ctx context.Context, b *batch) bool {
	job, err := t.runs.Start(ctx, b.list())
	switch {
	case err == nil:
		t.log.Info("run started", "job", job, "references", len(b.refs), "full", b.full, "waited", time.Since(b.since).Round(time.Millisecond))
		return true
	case errors.Is(err, errSuspended):
		t.log.Info("pushed references dropped: the CronJob is suspended; the next scheduled run after it is resumed catches up", "references", b.list(), "full", b.full)
		return true
	}
	b.attempts++
	if b.attempts >= maxStartAttempts {
		t.log.Error("could not start a run: pushed references dropped; the next scheduled run looks them up", "err", err, "attempts", b.attempts, "references", b.list(), "full", b.full)
		return true
	}
	delay := t.retry << (b.attempts - 1)
	t.log.Error("could not start a run; retrying", "err", err, "in", delay, "attempt", b.attempts, "of", maxStartAttempts)
	b.due = time.Now().Add(delay)
	return false
}

// flush starts a run for what is pending when the receiver stops, if no
// run is in progress; otherwise the next scheduled run finds the changes.
func (t *trigger) flush(b *batch) {
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
