package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urunner/urunner/kube"
)

// hold says why w may not restart now, "" if it may: its cooldown (the
// urunner.io/cooldown annotation, else URUNNER_CONF_COOLDOWN) since its last
// restart is not over, or its maintenance window (urunner.io/window, else
// URUNNER_CONF_WINDOW) is closed. A malformed annotation holds the restart:
// a typo must not open a window nobody meant.
func (a *app) hold(w kube.Workload, lastRestart, now time.Time) string {
	cooldown := a.cfg.Cooldown
	if v, ok := w.Annotations[kube.CooldownAnnotation]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Sprintf("annotation %s=%q is not a duration", kube.CooldownAnnotation, v)
		}
		cooldown = d
	}
	if !lastRestart.IsZero() && now.Sub(lastRestart) < cooldown {
		return fmt.Sprintf("cooldown of %s since the last restart at %s", cooldown, lastRestart.Format(time.RFC3339))
	}
	spec := a.cfg.Window
	if v, ok := w.Annotations[kube.WindowAnnotation]; ok {
		spec = v
	}
	win, err := parseWindow(spec)
	if err != nil {
		return fmt.Sprintf("annotation %s: %v", kube.WindowAnnotation, err)
	}
	if !win.open(now) {
		return fmt.Sprintf("outside the maintenance window %q", win)
	}
	return ""
}

// warnGitOps says, for each workload a GitOps controller manages, how to
// keep it from undoing the restart (or rolling twice).
func (a *app) warnGitOps(restarts []restart) {
	if a.cfg.GitOps != "warn" {
		return
	}
	for _, r := range restarts {
		if r.Workload.GitOps == "" {
			continue
		}
		a.log.Warn("managed by "+r.Workload.GitOps+": make it ignore urunner's pod-template annotations, or it may revert the restart and roll again (see the README's GitOps section; URUNNER_CONF_GITOPS=skip leaves such workloads alone)",
			"namespace", r.Workload.Namespace, strings.ToLower(r.Workload.Kind), r.Workload.Name,
			"annotations", kube.RestartedAtAnnotation+","+kube.RestartedForAnnotation)
	}
}

// restartTime is what a restart at at records: the time, when a cooldown
// may need it, else nothing. Each stored time costs state bytes for as
// long as the workload lives (see BENCHMARKS.md).
func (a *app) restartTime(w kube.Workload, at time.Time) time.Time {
	if _, ok := w.Annotations[kube.CooldownAnnotation]; ok || a.cfg.Cooldown > 0 {
		return at
	}
	return time.Time{}
}
