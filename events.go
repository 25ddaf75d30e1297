package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/state"
)

// maxWarningEvents bounds the Warning Events of one run: a registry outage
// touches every workload, and an Event per workload per run would flood the
// API server for no extra information (the log has one line per image).
const maxWarningEvents = 100

// eventWorkers is how many Events are sent at once, after the restarts.
const eventWorkers = 8

type queuedEvent struct {
	w                     kube.Workload
	typ, reason, msg, key string
}

// queueEvent keeps an Event for flushEvents: Events never go out before or
// between the restarts, whose time matters more.
func (a *app) queueEvent(w kube.Workload, typ, reason, msg, key string) {
	if !a.cfg.Events {
		return
	}
	a.queueMu.Lock()
	defer a.queueMu.Unlock()
	a.queued = append(a.queued, queuedEvent{w, typ, reason, msg, key})
}

// flushEvents sends the queued Events, a few at a time on the Events'
// own client. A failure is logged, never fatal: an Event explains a
// restart, it is not the restart. Once the run is stopped, the rest wait
// for no one.
func (a *app) flushEvents(ctx context.Context) {
	a.queueMu.Lock()
	queued := a.queued
	a.queued = nil
	a.queueMu.Unlock()
	var (
		wg      sync.WaitGroup
		sem     = make(chan struct{}, eventWorkers)
		mu      sync.Mutex
		dropped int
	)
	for _, e := range queued {
		if ctx.Err() != nil {
			mu.Lock()
			dropped++
			mu.Unlock()
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
// Warning when a restarted container's pull policy may keep the old image
// (one Event, not two, per restart).
func (a *app) restartEvent(r restart) {
	var msgs []string
	for _, c := range r.Changes {
		msgs = append(msgs, fmt.Sprintf("container %s image %s: %s → %s", c.Container, c.Image, c.From, c.To))
	}
	msg := "restarted by urunner: " + strings.Join(msgs, "; ")
	typ, reason := corev1.EventTypeNormal, kube.ReasonDigestChanged
	if risks := a.risky[keyOf(r.Workload)]; len(risks) > 0 {
		typ, reason = corev1.EventTypeWarning, kube.ReasonPullPolicy
		msg += "; " + pullPolicyAdvice(risks)
	}
	a.queueEvent(r.Workload, typ, reason, msg, strings.Join(msgs, ";"))
}

func pullPolicyAdvice(risks []cachedRisk) string {
	var cs []string
	for _, c := range risks {
		cs = append(cs, fmt.Sprintf("%s (%s)", c.Container, c.PullPolicy))
	}
	return "imagePullPolicy of " + strings.Join(cs, ", ") + " may start the cached old image: set imagePullPolicy: Always"
}

// lookupFailureEvents queues a Warning on each workload whose image lookup
// failed, one Event per workload, image and error for the Event's lifetime
// however many runs repeat it.
func (a *app) lookupFailureEvents(obs []observation, results map[string]registry.Result) {
	n := 0
	for _, o := range obs {
		for _, c := range o.Containers {
			r, ok := results[c.Image]
			if c.Image == "" || !ok || r.Err == nil {
				continue
			}
			if n == maxWarningEvents {
				a.log.Warn("more failed lookups than recorded as Events; see the log lines above", "events", maxWarningEvents)
				return
			}
			n++
			a.queueEvent(o.Workload, corev1.EventTypeWarning, kube.ReasonLookupFailed,
				fmt.Sprintf("urunner could not look up container %s image %s; its stored digest is kept: %v", c.Name, c.Image, r.Err),
				c.Image+"\x00"+r.Err.Error())
		}
	}
}

// warnCached logs each moved image whose pull policy may keep the old one
// cached on nodes, and returns them by workload. With
// URUNNER_CONF_PULL_POLICY_MISMATCH=skip those workloads are not restarted
// and get a Warning Event each; otherwise their restart Event says it.
func (a *app) warnCached(cached []cachedRisk) map[state.Key][]cachedRisk {
	skip := a.cfg.PullPolicy == "skip"
	action := "restarting anyway"
	if skip {
		action = "not restarted (URUNNER_CONF_PULL_POLICY_MISMATCH=skip); digest recorded"
	}
	byWorkload := map[state.Key][]cachedRisk{}
	for _, c := range cached {
		a.log.Warn("image moved but imagePullPolicy may keep the old one cached on nodes; "+action,
			"namespace", c.Workload.Namespace, strings.ToLower(c.Workload.Kind), c.Workload.Name,
			"container", c.Container, "image", c.Image, "pull_policy", c.PullPolicy, "from", c.From, "to", c.To)
		byWorkload[keyOf(c.Workload)] = append(byWorkload[keyOf(c.Workload)], c)
	}
	if skip {
		for _, risks := range byWorkload {
			w := risks[0].Workload
			var key []string
			for _, c := range risks {
				key = append(key, c.Container+"@"+c.To)
			}
			a.queueEvent(w, corev1.EventTypeWarning, kube.ReasonPullPolicy,
				"not restarted by urunner: moved image, but "+pullPolicyAdvice(risks), strings.Join(key, ","))
		}
	}
	return byWorkload
}
