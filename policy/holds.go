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
// function that says why it holds (a zero Held when it does not) and, when
// time alone lifts it, until when: the foresight (Foresee) steps the runs
// to come over that, so a rule's words and its end are written once. A
// held restart keeps every belief, so the first run no hold applies to
// restarts it.
type HoldRule struct {
	Name  string
	Check func(d Due) Held
}

// Held is what a hold rule says of a due restart.
type Held struct {
	// Why it holds; "" when it does not.
	Why string
	// Until is when time alone lifts it (a soak, a cooldown, a window, a
	// signature's grace, a ring's soak); zero when only something else
	// can (an approval, a lifted quarantine, a lower ring's rollout).
	Until time.Time
}

// holds makes a Held that time alone does not lift.
func holds(why string) Held { return Held{Why: why} }

// Holds are checked in order; the first that holds is the reason given.
var Holds = []HoldRule{
	{"paused", func(d Due) Held { return holds(paused(d.Settings, d.Workload, d.Now)) }},
	{"quarantine", func(d Due) Held { return holds(quarantined(d)) }},
	{"registry budget", func(d Due) Held { return holds(unread(d)) }},
	{"signature", unsigned},
	{"soak", soaking},
	{"ring", ringGate},
	{"cooldown", func(d Due) Held { return cooldown(d.Settings, d.Workload, d.Now) }},
	{"window", func(d Due) Held { return window(d.Settings, d.Workload, d.Now) }},
	{"approval", func(d Due) Held { return holds(unapproved(d)) }},
}

// holdOf returns the first hold of d and its rule's name ("" when none).
func holdOf(d Due) (string, Held) {
	for _, h := range Holds {
		if held := h.Check(d); held.Why != "" {
			return h.Name, held
		}
	}
	return "", Held{}
}

func holdReason(d Due) string {
	_, h := holdOf(d)
	return h.Why
}

// LiftQuarantineAnnotation, on a workload, lifts the quarantine of the
// digest it names (at least 12 hex characters, or the whole digest) for
// the workload's namespace: a person there decided the failed rollout was
// not the image's fault. It counts in the run that lists it; that run
// records the lift in the state and removes the annotation, so that it
// cannot lift a later quarantine of the digest.
const LiftQuarantineAnnotation = "urunner.io/lift-quarantine"

// minLiftHex is the shortest digest prefix a lift names: one digest among
// the few quarantined, with no chance of naming another by accident.
const minLiftHex = 12

// quarantined holds a move onto a digest whose verified rollout failed in
// this cluster, under any tag, until it is lifted in the workload's
// namespace (by a lift annotation there, recorded or in this listing) or
// everywhere (kubectl urunner lift).
func quarantined(d Due) string {
	ns := d.Workload.Namespace
	for _, c := range d.Moves {
		q, ok := d.Mem.Quarantines[c.To]
		if !ok || !q.HoldsIn(ns) || d.Fleet.lifts(ns, c.To) {
			continue
		}
		w := d.Workload
		return fmt.Sprintf("%s is quarantined since %s: %s (to lift it in namespace %s: kubectl annotate %s/%s -n %s %s=%s; everywhere: kubectl urunner lift %s)",
			short(c.To), q.At.UTC().Format(time.RFC3339), q.Why, ns, strings.ToLower(w.Kind), w.Name, ns, LiftQuarantineAnnotation, short(c.To), short(c.To))
	}
	return ""
}

// unread holds a move the rules cannot judge because a read they need was
// not made for the registry's budget: a moved index whose watched
// platforms (URUNNER_CONF_PLATFORMS) were not read may have moved only for
// platforms not watched. It fails closed: the move stays due, and the
// first run that reads the platforms decides it.
func unread(d Due) string {
	for _, c := range d.Moves {
		if c.Result != nil && c.Result.Deferred != "" {
			return c.Result.Deferred
		}
	}
	return ""
}

// ParseLift reads a lift annotation's value: the digest's hex, or a prefix
// of at least minLiftHex characters, with or without "sha256:".
func ParseLift(v string) (string, error) {
	h := strings.TrimPrefix(strings.TrimSpace(v), "sha256:")
	if len(h) < minLiftHex || len(h) > 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%q is not a digest nor at least %d of its lowercase hex characters", v, minLiftHex)
	}
	return h, nil
}

// namesDigest reports whether a parsed lift names digest.
func namesDigest(hex, digest string) bool {
	return strings.HasPrefix(strings.TrimPrefix(digest, "sha256:"), hex)
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
func cooldown(s Settings, w *Workload, now time.Time) Held {
	d := s.Cooldown
	if v, ok := w.Annotations[CooldownAnnotation]; ok {
		ad, err := time.ParseDuration(v)
		if err != nil || ad < 0 {
			return holds(fmt.Sprintf("annotation %s=%q is not a duration", CooldownAnnotation, v))
		}
		d = ad
	}
	last := w.RestartedAt
	if d == 0 || last.IsZero() || last.After(now.Add(futureSlack)) {
		return Held{}
	}
	if last.After(now) {
		last = now
	}
	if now.Sub(last) < d {
		return Held{fmt.Sprintf("cooldown of %s since the last restart at %s", d, last.UTC().Format(time.RFC3339)), last.Add(d)}
	}
	return Held{}
}

// window holds outside the workload's maintenance window. A malformed
// annotation holds rather than guess.
func window(s Settings, w *Workload, now time.Time) Held {
	win := s.Window
	if v, ok := w.Annotations[WindowAnnotation]; ok {
		parsed, err := ParseWindow(v)
		if err != nil {
			return holds(fmt.Sprintf("annotation %s: %v", WindowAnnotation, err))
		}
		win = parsed
	}
	if !win.Open(now) {
		return Held{fmt.Sprintf("outside the maintenance window %q", win), win.Next(now)}
	}
	return Held{}
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
