package policy

import (
	"fmt"
	"strings"
	"time"
)

// Due is what a hold looks at: a workload with moves due, and the run.
type Due struct {
	*Run
	Workload *Workload
	Moves    []ContainerDecision
}

// A HoldRule is a reason a due restart may not happen now. Each is a small
// function that returns why it holds, "" when it does not. A held restart
// keeps every belief, so the first run no hold applies to restarts it.
type HoldRule struct {
	Name  string
	Check func(d Due) string
}

// Holds are checked in order; the first that holds is the reason given.
var Holds = []HoldRule{
	{"paused", func(d Due) string { return paused(d.Settings, d.Workload, d.Now) }},
	{"quarantine", quarantined},
	{"signature", unsigned},
	{"soak", soaking},
	{"ring", ringGate},
	{"cooldown", func(d Due) string { return cooldown(d.Settings, d.Workload, d.Now) }},
	{"window", func(d Due) string { return window(d.Settings, d.Workload, d.Now) }},
	{"approval", unapproved},
}

func holdReason(d Due) string {
	for _, h := range Holds {
		if why := h.Check(d); why != "" {
			return why
		}
	}
	return ""
}

// LiftQuarantineAnnotation, on a workload, lifts the quarantine of the
// digest it names (a prefix is enough): a person decided the failed
// rollout was not the image's fault.
const LiftQuarantineAnnotation = "urunner.io/lift-quarantine"

// quarantined holds a move onto a digest whose verified rollout failed,
// anywhere, until the tag moves on or a person lifts it.
func quarantined(d Due) string {
	for _, c := range d.Moves {
		why, ok := d.Mem.Refs[c.Ref].Quarantine[c.To]
		if !ok || lifts(d.Workload, c.To) {
			continue
		}
		return fmt.Sprintf("%s is quarantined: %s (annotate a workload %s=%s to lift it)", short(c.To), why, LiftQuarantineAnnotation, short(c.To))
	}
	return ""
}

// lifts reports whether w's annotation lifts the quarantine of digest.
func lifts(w *Workload, digest string) bool {
	v := strings.TrimPrefix(strings.TrimSpace(w.Annotations[LiftQuarantineAnnotation]), "sha256:")
	return len(v) >= 7 && strings.HasPrefix(strings.TrimPrefix(digest, "sha256:"), v)
}

// short is a digest's first 12 hex characters.
func short(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	return h[:min(12, len(h))]
}

func paused(_ Settings, w *Workload, _ time.Time) string {
	if w.Paused {
		return "paused; the restart waits until it resumes"
	}
	return ""
}

// futureSlack is how far in the future a restart time may be before it is
// not believed: clocks differ by seconds, not hours.
const futureSlack = time.Hour

// cooldown holds a workload restarted (by urunner or kubectl rollout
// restart: both set restartedAt) less than its cooldown ago. A malformed
// annotation holds: a typo must not restart what a person meant to slow.
// A restart time in the future counts as now; one more than an hour ahead
// is not believed, so a wrong clock cannot hold a workload forever.
func cooldown(s Settings, w *Workload, now time.Time) string {
	d := s.Cooldown
	if v, ok := w.Annotations[CooldownAnnotation]; ok {
		ad, err := time.ParseDuration(v)
		if err != nil || ad < 0 {
			return fmt.Sprintf("annotation %s=%q is not a duration", CooldownAnnotation, v)
		}
		d = ad
	}
	last := w.RestartedAt
	if d == 0 || last.IsZero() || last.After(now.Add(futureSlack)) {
		return ""
	}
	if last.After(now) {
		last = now
	}
	if now.Sub(last) < d {
		return fmt.Sprintf("cooldown of %s since the last restart at %s", d, last.UTC().Format(time.RFC3339))
	}
	return ""
}

// window holds outside the workload's maintenance window. A malformed
// annotation holds rather than guess.
func window(s Settings, w *Workload, now time.Time) string {
	win := s.Window
	if v, ok := w.Annotations[WindowAnnotation]; ok {
		parsed, err := ParseWindow(v)
		if err != nil {
			return fmt.Sprintf("annotation %s: %v", WindowAnnotation, err)
		}
		win = parsed
	}
	if !win.Open(now) {
		return fmt.Sprintf("outside the maintenance window %q", win)
	}
	return ""
}

// GitOpsAdvice says, for a restarted workload a GitOps controller manages,
// how to keep the controller from undoing the restart; "" when there is
// nothing to say.
func GitOpsAdvice(s Settings, w *Workload) string {
	if s.GitOps != "warn" || w.GitOps == "" {
		return ""
	}
	return "managed by " + w.GitOps + ": make it ignore urunner's pod-template annotations, or it may revert the restart and roll again (see the README's GitOps section; URUNNER_CONF_GITOPS=skip leaves such workloads alone)"
}
