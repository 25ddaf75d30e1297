package run

import (
	"context"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
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

// eventSender sends queued Events while the restarts proceed (startEvents
// to flushEvents), on the Events' own client: they never wait for the
// PATCHes nor share their rate limit, and the run does not wait for them
// after its last PATCH.
type eventSender struct {
	wake, stop, done chan struct{}
}

// queueEvent keeps an Event for the sender, or for flushEvents when none
// runs.
func (a *app) queueEvent(w kube.Workload, typ, reason, msg, key string) {
	if !a.cfg.Events {
		return
	}
	a.queueMu.Lock()
	defer a.queueMu.Unlock()
	a.queued = append(a.queued, queuedEvent{w, typ, reason, msg, key})
	if a.sender != nil {
		select {
		case a.sender.wake <- struct{}{}:
		default: // already woken: it drains the whole queue
		}
	}
}

// startEvents starts sending Events as they are queued, until flushEvents.
func (a *app) startEvents(ctx context.Context) {
	if !a.cfg.Events {
		return
	}
	s := &eventSender{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	a.queueMu.Lock()
	a.sender = s
	a.queueMu.Unlock()
	go func() {
		defer close(s.done)
		for {
			a.sendQueued(ctx)
			select {
			case <-s.wake:
			case <-s.stop:
				return
			}
		}
	}()
}

// flushEvents stops the sender and sends what is still queued: every
// Event queued before it returns has been sent or given up on.
func (a *app) flushEvents(ctx context.Context) {
	a.queueMu.Lock()
	s := a.sender
	a.sender = nil
	a.queueMu.Unlock()
	if s != nil {
		close(s.stop)
		<-s.done
	}
	a.sendQueued(ctx)
}

// sendQueued sends the queued Events, a few at a time. A failure is
// logged, never fatal: an Event explains a restart, it is not the restart.
// Once the run is stopped, the rest wait for no one.
func (a *app) sendQueued(ctx context.Context) {
	a.queueMu.Lock()
	queued := a.queued
	a.queued = nil
	a.queueMu.Unlock()
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
			if err := a.events.Event(ctx, e.w, e.typ, e.reason, e.msg, e.key); err != nil {
				a.log.Warn("event not recorded", "namespace", e.w.Namespace, strings.ToLower(e.w.Kind), e.w.Name, "reason", e.reason, "error", err)
			}
		})
	}
	wg.Wait()
	if dropped > 0 {
		a.log.Warn("run stopped; events not recorded", "events", dropped)
	}
}

// restartEvent queues the one Event of a restarted workload: Normal, or a
// Warning when a moved container's pull policy may keep the old image, or
// when its OnDelete strategy restarts nothing yet (one Event per restart).
func (a *app) restartEvent(w *listed, d *policy.Decision, changes map[string]string) {
	var msgs, risky []string
	for _, c := range d.Moves() {
		m := fmt.Sprintf("container %s image %s: %s → %s", c.Name, c.Ref, c.From, c.To)
		if ch := changes[c.Ref+"@"+c.From+"@"+c.To]; ch != "" {
			m += " (" + ch + ")"
		}
		msgs = append(msgs, m)
		if c.Risky != "" {
			risky = append(risky, fmt.Sprintf("%s (%s)", c.Name, c.Risky))
		}
	}
	msg := "restarted by urunner: " + strings.Join(msgs, "; ")
	typ, reason := corev1.EventTypeNormal, kube.ReasonDigestChanged
	if len(risky) > 0 {
		typ, reason = corev1.EventTypeWarning, kube.ReasonPullPolicy
		msg += "; " + pullPolicyAdvice(risky)
	}
	if w.kube.OnDelete {
		typ = corev1.EventTypeWarning
		msg += "; its OnDelete update strategy restarts nothing until its pods are deleted"
	}
	a.queueEvent(w.kube, typ, reason, msg, strings.Join(msgs, ";"))
}

func pullPolicyAdvice(containers []string) string {
	return "imagePullPolicy of " + strings.Join(containers, ", ") + " may start the cached old image: set imagePullPolicy: Always"
}

// decisionEvents queues the Warnings the decisions call for: a lookup that
// failed (one Event per workload, image and error for the Event's lifetime,
// however many runs repeat it), and a move not restarted because of the
// pull policy (URUNNER_CONF_PULL_POLICY_MISMATCH=skip).
func (a *app) decisionEvents(f *found, p *plan) {
	n := 0
	for _, wl := range f.workloads {
		w, d := wl.seen(), wl.final()
		var skipped, keys []string
		for _, c := range d.Moves() {
			if sig := c.Result.Signature; sig != nil && !sig.Verified && !p.run.AwaitsSignature(c) && n < maxWarningEvents {
				n++
				why := sig.Reason
				if sig.Err != nil {
					why = "could not be checked: " + sig.Err.Error()
				}
				a.queueEvent(w.kube, corev1.EventTypeWarning, kube.ReasonSignature,
					fmt.Sprintf("not restarted by urunner: container %s image %s: %s: %s", c.Name, c.Ref, c.To, why), c.To+"\x00"+why)
			}
		}
		for _, c := range d.Containers {
			switch {
			case c.Verdict == policy.LookupFailed:
				if n == maxWarningEvents {
					continue
				}
				n++
				a.queueEvent(w.kube, corev1.EventTypeWarning, kube.ReasonLookupFailed,
					fmt.Sprintf("urunner could not look up container %s image %s; it is not restarted: %v", c.Name, c.Ref, c.Result.Err),
					c.Ref+"\x00"+c.Result.Err.Error())
			case c.Verdict == policy.Recorded && c.Risky != "":
				skipped = append(skipped, fmt.Sprintf("%s (%s)", c.Name, c.Risky))
				keys = append(keys, c.Name+"@"+c.To)
			}
		}
		if len(skipped) > 0 {
			a.queueEvent(w.kube, corev1.EventTypeWarning, kube.ReasonPullPolicy,
				"not restarted by urunner: moved image, but "+pullPolicyAdvice(skipped), strings.Join(keys, ","))
		}
	}
	if n == maxWarningEvents {
		a.log.Warn("more failed lookups than recorded as Events; see the log lines above", "events", maxWarningEvents)
	}
}
