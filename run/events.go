package run

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/urunner/urunner/kube"
)

// maxWarningEvents bounds the lookup-failure Warnings of one run: a
// registry outage touches every workload, and an Event per workload per
// run would flood the API server for no extra information (the log has
// one line per image).
const maxWarningEvents = 100

// eventWorkers is how many Events are sent at once.
const eventWorkers = 8

type queuedEvent struct {
	w                     kube.Workload
	typ, reason, msg, key string
}

// eventQueue sends queued Events while the restarts proceed (start to
// flush), on the Events' own client: they never wait for the PATCHes nor
// share their rate limit, and the run does not wait for them after its
// last PATCH.
type eventQueue struct {
	client *kube.Client
	log    *slog.Logger

	mu     sync.Mutex
	queued []queuedEvent
	sender *eventSender
}

type eventSender struct {
	wake, stop, done chan struct{}
}

// queue keeps an Event for the sender, or for flush when none runs.
func (q *eventQueue) queue(e queuedEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queued = append(q.queued, e)
	if q.sender != nil {
		select {
		case q.sender.wake <- struct{}{}:
		default: // already woken: it drains the whole queue
		}
	}
}

// start starts sending Events as they are queued, until flush.
func (q *eventQueue) start(ctx context.Context) {
	if q == nil {
		return
	}
	s := &eventSender{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	q.mu.Lock()
	q.sender = s
	q.mu.Unlock()
	go func() {
		defer close(s.done)
		for {
			q.send(ctx)
			select {
			case <-s.wake:
			case <-s.stop:
				return
			}
		}
	}()
}

// flush stops the sender and sends what is still queued: every Event
// queued before it returns has been sent or given up on.
func (q *eventQueue) flush(ctx context.Context) {
	if q == nil {
		return
	}
	q.mu.Lock()
	s := q.sender
	q.sender = nil
	q.mu.Unlock()
	if s != nil {
		close(s.stop)
		<-s.done
	}
	q.send(ctx)
}

// send sends the queued Events, a few at a time. A failure is logged,
// never fatal: an Event explains a restart, it is not the restart. Once
// the run is stopped, the rest wait for no one.
func (q *eventQueue) send(ctx context.Context) {
	q.mu.Lock()
	queued := q.queued
	q.queued = nil
	q.mu.Unlock()
	if len(queued) == 0 {
		return
	}
	var (
		wg      sync.WaitGroup
		sem     = make(chan struct{}, eventWorkers)
		dropped int
	)
	for _, e := range queued {
		if ctx.Err() != nil {
			dropped++
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := q.client.Event(ctx, e.w, e.typ, e.reason, e.msg, e.key); err != nil {
				q.log.Warn("event not recorded", "namespace", e.w.Namespace, strings.ToLower(e.w.Kind), e.w.Name, "reason", e.reason, "error", err)
			}
		})
	}
	wg.Wait()
	if dropped > 0 {
		q.log.Warn("run stopped; events not recorded", "events", dropped)
	}
}
