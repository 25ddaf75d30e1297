package main

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/registry"
)

// maxWarningEvents bounds the Warning Events of one run: a registry outage
// touches every workload, and an Event per workload per run would flood the
// API server for no extra information (the log has one line per image).
const maxWarningEvents = 100

// event records an Event when Events are on; a failure is logged, never
// fatal: the Event explains a restart, it is not the restart.
func (a *app) event(ctx context.Context, w kube.Workload, typ, reason, msg, key string) {
	if !a.cfg.Events {
		return
	}
	if err := a.kube.Event(ctx, w, typ, reason, msg, key); err != nil {
		a.log.Warn("event not recorded", "namespace", w.Namespace, strings.ToLower(w.Kind), w.Name, "reason", reason, "error", err)
	}
}

// lookupFailureEvents records a Warning on each workload whose image
// lookup failed, one Event per workload, image and error for the Event's
// lifetime however many runs repeat it.
func (a *app) lookupFailureEvents(ctx context.Context, obs []observation, results map[string]registry.Result) {
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
			a.event(ctx, o.Workload, corev1.EventTypeWarning, kube.ReasonLookupFailed,
				fmt.Sprintf("urunner could not look up container %s image %s; its stored digest is kept: %v", c.Name, c.Image, r.Err),
				c.Image+"\x00"+r.Err.Error())
		}
	}
}

// warnCached says, in the log and on the workload, that a moved image may
// not be pulled again by a restart.
func (a *app) warnCached(ctx context.Context, cached []cachedRisk) {
	action := "restarting anyway"
	if a.cfg.PullPolicy == "skip" {
		action = "not restarted (URUNNER_CONF_PULL_POLICY_MISMATCH=skip); digest recorded"
	}
	for _, c := range cached {
		a.log.Warn("image moved but imagePullPolicy may keep the old one cached on nodes; "+action,
			"namespace", c.Workload.Namespace, strings.ToLower(c.Workload.Kind), c.Workload.Name,
			"container", c.Container, "image", c.Image, "pull_policy", c.PullPolicy, "from", c.From, "to", c.To)
		a.event(ctx, c.Workload, corev1.EventTypeWarning, kube.ReasonPullPolicy,
			fmt.Sprintf("container %s image %s moved to %s but imagePullPolicy is %s: nodes may start the cached old image; set imagePullPolicy: Always (%s)", c.Container, c.Image, c.To, c.PullPolicy, action),
			c.Container+"\x00"+c.To)
	}
}
