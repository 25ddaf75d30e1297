package run

// The facts a run tells, in the order of the stages that note them. Each
// type's tell is the one place that says how the fact reads: in the log,
// as an Event, in the run report (and so in the metrics and the
// notifications). Adding a fact is one type here and one a.note in the
// stage that finds it.

import (
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/notify"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/report"
	"github.com/urunner/urunner/state"
)

// whereAttrs are the log attributes that name a workload.
func whereAttrs(w *kube.Workload) []any {
	return []any{"namespace", w.Namespace, strings.ToLower(w.Kind), w.Name}
}

// load

// stateMigrated: the state was read in an older format.
type stateMigrated struct {
	configMap string
	from, to  int
}

func (f stateMigrated) tell(r *reporter) {
	r.log.Info("state migrated to the format keyed by image reference; written back at the end of this run",
		"configmap", f.configMap, "from_version", f.from, "to_version", f.to)
}

// discover

// listingScope: how the watched namespaces are listed.
type listingScope struct {
	perNamespace bool
	namespaces   int
	cluster      int
}

func (f listingScope) tell(r *reporter) {
	r.log.Debug("listing scope", "per_namespace", f.perNamespace, "watched_namespaces", f.namespaces, "cluster_workloads", f.cluster)
}

// pushedSubjectUnmatched: a pushed signature's subject digest names no
// stored reference.
type pushedSubjectUnmatched struct{ subject string }

func (f pushedSubjectUnmatched) tell(r *reporter) {
	r.log.Debug("no stored reference has this subject's digest: nothing to look up for it", "subject", f.subject)
}

// pushedSignature: a pushed signature or attestation makes its subject's
// reference looked up again.
type pushedSignature struct{ image string }

func (f pushedSignature) tell(r *reporter) {
	r.log.Info("a signature or attestation was pushed: its subject's reference is looked up again", "image", f.image)
}

// namespaceUnlisted: a watched namespace's workloads could not be listed;
// what urunner remembers of them is kept.
type namespaceUnlisted struct {
	namespace string
	err       error
	// deleted: in namespaced mode, forbidden may mean the namespace was
	// deleted, with the chart's Role in it.
	deleted bool
}

func (f namespaceUnlisted) tell(r *reporter) {
	msg, err := "cannot list the namespace's workloads; what urunner remembers of them is kept", f.err
	if f.deleted {
		msg += " (a namespace that was deleted answers forbidden too: remove it from URUNNER_CONF_NAMESPACES, chart value namespaces)"
		err = fmt.Errorf("%w (deleted, or its Role is missing)", err)
	}
	r.log.Error(msg, "namespace", f.namespace, "error", err)
	r.o.namespaceErrors++
	r.o.failure(stageDiscover, failure{Namespace: f.namespace, Error: err.Error()})
}

// ringIgnored: a ring annotation that is no ring; the workload goes last.
type ringIgnored struct {
	w   *kube.Workload
	err error
}

func (f ringIgnored) tell(r *reporter) {
	r.log.Warn("ring ignored: "+f.err.Error()+"; the workload goes last", whereAttrs(f.w)...)
}

// leftAlone: a workload the rules do not watch.
type leftAlone struct {
	w   *kube.Workload
	why string
}

func (f leftAlone) tell(r *reporter) { r.log.Debug("left alone: "+f.why, whereAttrs(f.w)...) }

// imageSkipped: a container whose image is not tracked.
type imageSkipped struct {
	w         *kube.Workload
	container string
	image     string
	err       error  // not a registry image reference
	why       string // else: why the rules do not track it
}

func (f imageSkipped) tell(r *reporter) {
	if f.err != nil {
		r.log.Warn("image skipped: not a registry image reference", append(whereAttrs(f.w), "container", f.container, "image", f.image, "error", f.err)...)
		return
	}
	r.log.Debug("image skipped: "+f.why, "image", f.image)
}

// pullSecretsUnreadable: a workload's pull secrets could not be read; its
// images are looked up without them.
type pullSecretsUnreadable struct {
	w   *kube.Workload
	err error
}

func (f pullSecretsUnreadable) tell(r *reporter) {
	r.log.Error("cannot read the workload's pull secrets; its images are looked up without them", append(whereAttrs(f.w), "error", f.err)...)
	r.o.pullSecretErrors++
}

// enrich

// signatureChecked: what the signature policy found for ref@digest, told
// once per run. A digest with no signature yet, within the grace, is told
// quietly: its signature usually follows the push by a minute.
type signatureChecked struct {
	ref, digest string
	sig         *policy.Signature
	waits       bool
	until       time.Time
}

func (f signatureChecked) tell(r *reporter) {
	switch sig := f.sig; {
	case sig.Err != nil:
		r.log.Warn("cannot check the signature; nothing restarts onto this digest this run", "image", f.ref, "digest", f.digest, "error", sig.Err)
	case sig.Verified:
		r.log.Info("signature verified", "image", f.ref, "digest", f.digest, "by", strings.TrimPrefix(sig.Reason, "signed by "))
	case sig.Unsigned && f.waits:
		r.log.Info("no signature yet; waiting for one (URUNNER_CONF_SIGNATURE_GRACE)", "image", f.ref, "digest", f.digest, "until", f.until.UTC().Format(time.RFC3339))
	default:
		r.log.Warn("signature refused; nothing restarts onto this digest", "image", f.ref, "digest", f.digest, "reason", sig.Reason)
	}
}

// signatureWhy is why a signature did not let a digest through.
func signatureWhy(sig *policy.Signature) string {
	if sig.Err != nil {
		return "could not be checked: " + sig.Err.Error()
	}
	return sig.Reason
}

// podsUnreadable: the pods' digests could not be read.
type podsUnreadable struct{ err error }

func (f podsUnreadable) tell(r *reporter) {
	r.log.Warn("cannot read the pods' digests; deciding from the registry alone", "error", f.err)
}

// platformsUnreadable: an index's platforms could not be read. A read the
// registry's rate limit refused holds the move instead (policy's
// "registry budget" hold): a 429 is never a reason to restart.
type platformsUnreadable struct {
	image string
	err   error
}

func (f platformsUnreadable) tell(r *reporter) {
	if registry.RateLimited(f.err) {
		r.log.Warn("cannot read the index's platforms: rate limited; a move onto it holds until they are read", "image", f.image, "error", f.err)
		return
	}
	r.log.Warn("cannot read the index's platforms; a move restarts as without URUNNER_CONF_PLATFORMS", "image", f.image, "error", f.err)
}

// readsWaited: a registry was short of budget once the lookups were made
// (registry.Resolver.Short), and the run's optional reads of it waited:
// change context says less, and a moved index whose platforms were not
// read holds (policy's "registry budget" hold). One line per registry.
type readsWaited struct {
	budget             registry.Budget
	changes, platforms int
}

func (f readsWaited) tell(r *reporter) {
	attrs := []any{"registry", f.budget.Registry}
	if rl := f.budget.RateLimit; rl != nil {
		attrs = append(attrs, "remaining", rl.Remaining, "limit", rl.Limit, "window_seconds", rl.Window.Seconds())
	}
	if f.budget.Limited > 0 {
		attrs = append(attrs, "rate_limited", f.budget.Limited)
	}
	attrs = append(attrs, "change_context_digests", f.changes, "platform_indexes", f.platforms)
	r.log.Warn("registry budget low: lookups first; change context and platform reads wait for a later run", attrs...)
}

// manifestsUnreadable: an index's manifests could not be read for the
// delivery check.
type manifestsUnreadable struct {
	image string
	err   error
}

func (f manifestsUnreadable) tell(r *reporter) {
	r.log.Warn("cannot read the index's manifests; delivery not checked this run", "image", f.image, "error", f.err)
}

// decide

// lookedUp: one (reference, credentials) lookup and its result. A failure
// is logged once per image, a refused or rate-limited host once in all.
type lookedUp struct {
	l       policy.Lookup
	err     error
	secrets string // the pull secrets of its credentials, "" without
}

func (f lookedUp) tell(r *reporter) {
	r.o.images++
	if f.err == nil {
		r.o.resolved++
		return
	}
	r.o.lookupFailures++
	host, _, _ := strings.Cut(f.l.Ref, "/")
	var tlsErr *registry.TLSSettingError
	switch {
	case errors.Is(f.err, registry.ErrHostFailed), errors.As(f.err, &tlsErr):
		// The host's one error line is already logged.
		r.log.Debug("lookup skipped", "image", f.l.Ref, "error", f.err)
	case errors.Is(f.err, registry.ErrRateLimited) && r.rateLimited[host]:
		r.log.Debug("lookup skipped", "image", f.l.Ref, "error", f.err)
	case errors.Is(f.err, registry.ErrRateLimited):
		r.rateLimited[host] = true
		r.log.Error("registry rate limit: it asked to retry later than this run can wait; skipping its images this run", "registry", host, "error", f.err)
	default:
		attrs := []any{"image", f.l.Ref, "error", f.err}
		if f.l.Cred != "" {
			attrs = append(attrs, "pull_secret", f.secrets)
		}
		r.log.Warn("lookup failed; workloads on this image keep what they run", attrs...)
	}
	msg := f.err.Error()
	if f.l.Cred != "" {
		msg = "with pull secret " + f.secrets + ": " + msg
	}
	r.o.failure(stageDecide, failure{Image: f.l.Ref, Error: msg})
}

// watchedCount: how many namespaces and workloads the run watched.
type watchedCount struct{ namespaces, workloads int }

func (f watchedCount) tell(r *reporter) { r.o.namespaces, r.o.workloads = f.namespaces, f.workloads }

// capped: the cap on restarts held the run's restarts.
// planDigestTaken: a dry run takes the planned digest as its tag's
// (URUNNER_CONF_PLAN_DIGEST).
type planDigestTaken struct {
	image, digest string
	lookups       int
}

func (f planDigestTaken) tell(r *reporter) {
	if f.lookups == 0 {
		r.log.Warn("no watched workload follows the planned image: nothing to plan for it (URUNNER_CONF_REFERENCES)", "image", f.image)
		return
	}
	r.log.Info("planned as if just pushed", "image", f.image, "digest", f.digest)
}

// forecastsCut: more workloads are due than a run foresees.
type forecastsCut struct{ due int }

func (f forecastsCut) tell(r *reporter) {
	r.log.Info("forecasts only for the first of the workloads due, in listing order", "due", f.due, "foreseen", maxForecasts)
}

// unforeseen: the foresight failed; the run goes on without forecasts.
type unforeseen struct{ why string }

func (f unforeseen) tell(r *reporter) {
	r.log.Warn("no forecast this run: the foresight failed; the run and its save go on", "error", f.why)
}

// foreseen: when each workload a move is due for will restart, and what
// holds it until then.
type foreseen struct {
	forecasts []policy.Forecast
	at        time.Time
	schedule  string
}

func (f foreseen) tell(r *reporter) {
	for _, fc := range f.forecasts {
		doc := forecastDoc(fc, f.at)
		r.o.forecasts = append(r.o.forecasts, doc)
		attrs := append(whereAttrs(&kube.Workload{Namespace: doc.Namespace, Kind: doc.Kind, Name: doc.Name}), "image", doc.Image, "to", doc.Digest)
		if doc.Restarts != nil {
			attrs = append(attrs, "restarts", doc.Restarts.Format(time.RFC3339))
		}
		r.log.Debug("foreseen", append(attrs, "until_then", untilThen(doc))...)
	}
}

type capped struct {
	held   int
	reason string
}

func (f capped) tell(r *reporter) { r.o.capped, r.o.capReason = f.held, f.reason }

// decided: the policy's decision on one workload, told once: what will not
// happen and why, and what the decision counts for.
type decided struct {
	w   *listed
	d   *policy.Decision
	run *policy.Run
}

func (f decided) tell(r *reporter) {
	w, d := &f.w.kube, f.d
	f.tellSignatures(r)
	for _, c := range d.Containers {
		if c.Delivery != nil {
			notDelivered{w: f.w, c: c, to: c.To, runs: c.Delivery.Runs, cause: c.Delivery.Cause, gated: len(policy.Gates(f.run.Settings, f.run.Fleet, &f.w.policy)) > 0, stage: stageDecide}.tell(r)
		}
		if c.Ahead && d.Action == policy.Hold {
			r.log.Warn("its pods already run a digest a gate has not let through; not recorded as delivered",
				append(whereAttrs(w), "container", c.Name, "image", c.Ref, "runs", c.To, "reason", d.Reason)...)
		}
		f.tellVerdict(r, c)
	}
	f.tellSkipped(r)
	if d.Action != policy.Hold {
		return
	}
	r.o.held++
	r.log.Info("restart deferred: "+d.Reason, whereAttrs(w)...)
	for _, c := range d.Moves() {
		if f.run.Mem.Refs[c.Ref].Digest != c.To {
			// A digest first seen this run: told once, not every run it waits.
			r.o.waiting = append(r.o.waiting, notify.Restart{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name,
				Container: c.Name, Image: c.Ref, From: c.From, To: c.To, Pending: d.Reason})
		}
	}
}

// tellSignatures counts each refused signature once per ref@digest (one
// still awaited within its grace is no failure) and puts a Warning Event
// on the workload.
func (f decided) tellSignatures(r *reporter) {
	for _, c := range f.d.Moves() {
		sig := c.Result.Signature
		if sig == nil || sig.Verified || f.run.AwaitsSignature(c) {
			continue
		}
		why := signatureWhy(sig)
		if !r.refused[c.Ref+"@"+c.To] {
			r.refused[c.Ref+"@"+c.To] = true
			r.o.signatureFailures++
			r.o.failure(stageDecide, failure{Image: c.Ref, Error: "signature of " + c.To + ": " + why})
		}
		if r.warning() {
			r.eventAfterSave(f.w.kube, corev1.EventTypeWarning, kube.ReasonSignature,
				fmt.Sprintf("not restarted by urunner: container %s image %s: %s: %s", c.Name, c.Ref, c.To, why), c.To+"\x00"+why)
		}
	}
}

// tellVerdict counts one container's verdict, and tells a move recorded
// without a restart and a pull policy that may keep the old image.
func (f decided) tellVerdict(r *reporter, c policy.ContainerDecision) {
	w := &f.w.kube
	switch c.Verdict {
	case policy.Baseline:
		r.o.baselined++
	case policy.Moved:
		r.o.changed++
	case policy.Recorded:
		r.o.changed++
		if c.Risky == "" {
			r.log.Info("moved, recorded without a restart: "+c.Why, append(whereAttrs(w), "container", c.Name, "image", c.Ref, "from", c.From, "to", c.To)...)
		}
	case policy.LookupFailed:
		if r.warning() {
			r.eventAfterSave(*w, corev1.EventTypeWarning, kube.ReasonLookupFailed,
				fmt.Sprintf("urunner could not look up container %s image %s; it is not restarted: %v", c.Name, c.Ref, c.Result.Err),
				c.Ref+"\x00"+c.Result.Err.Error())
		}
	}
	if c.Risky != "" {
		how := "restarting anyway"
		if c.Verdict == policy.Recorded {
			how = "not restarted (URUNNER_CONF_PULL_POLICY_MISMATCH=skip); recorded as running the new digest"
		}
		r.log.Warn("image moved but imagePullPolicy may keep the old one cached on nodes; "+how,
			append(whereAttrs(w), "container", c.Name, "image", c.Ref, "pull_policy", c.Risky, "from", c.From, "to", c.To)...)
	}
}

// tellSkipped puts one Warning Event on a workload whose moves were not
// restarted because of their pull policy (URUNNER_CONF_PULL_POLICY_MISMATCH=skip).
func (f decided) tellSkipped(r *reporter) {
	var skipped, keys []string
	for _, c := range f.d.Containers {
		if c.Verdict == policy.Recorded && c.Risky != "" {
			skipped = append(skipped, fmt.Sprintf("%s (%s)", c.Name, c.Risky))
			keys = append(keys, c.Name+"@"+c.To)
		}
	}
	if len(skipped) > 0 {
		r.eventAfterSave(f.w.kube, corev1.EventTypeWarning, kube.ReasonPullPolicy,
			"not restarted by urunner: moved image, but "+pullPolicyAdvice(skipped), strings.Join(keys, ","))
	}
}

func pullPolicyAdvice(containers []string) string {
	return "imagePullPolicy of " + strings.Join(containers, ", ") + " may start the cached old image: set imagePullPolicy: Always"
}

// wouldRestart: what a dry run would restart, as a run logs it.
type wouldRestart struct {
	w *kube.Workload
	c policy.ContainerDecision
}

func (f wouldRestart) tell(r *reporter) {
	r.log.Info("would restart", append(whereAttrs(f.w), "container", f.c.Name, "image", f.c.Ref, "from", f.c.From, "to", f.c.To)...)
}

// describe

// changeUnreadable: what an image says of its source could not be read.
type changeUnreadable struct {
	image, digest string
	err           error
}

func (f changeUnreadable) tell(r *reporter) {
	r.log.Debug("cannot read what the image says of its source", "image", f.image, "digest", f.digest, "error", f.err)
}

// act

// restartNotAttempted: the run stopped before the workload's PATCH; it
// stays due.
type restartNotAttempted struct{ w *kube.Workload }

func (f restartNotAttempted) tell(r *reporter) {
	r.log.Warn("run stopped; restart not attempted, it stays due", whereAttrs(f.w)...)
}

// decidedAgain: the workload changed since it was listed, and decided
// again it is not restarted.
type decidedAgain struct {
	w *kube.Workload
	d *policy.Decision
}

func (f decidedAgain) tell(r *reporter) {
	r.log.Info("changed since listed; decided again: "+f.d.Action.String(), append(whereAttrs(f.w), "reason", f.d.Reason)...)
}

// restartFailed: the PATCH (or the read after a conflict) failed; the
// restart stays due.
type restartFailed struct {
	w   *kube.Workload
	err error
}

func (f restartFailed) tell(r *reporter) {
	r.log.Error("restart failed; it stays due, the next run retries", append(whereAttrs(f.w), "error", f.err)...)
	r.event(*f.w, corev1.EventTypeWarning, kube.ReasonRestartFailed, fmt.Sprintf("urunner could not restart it: %v", f.err), f.err.Error())
	r.o.restartFailures++
	r.o.failure(stageAct, failure{Namespace: f.w.Namespace, Kind: f.w.Kind, Name: f.w.Name, Error: f.err.Error()})
}

// restarted: a workload patched, told once per moved container, with its
// one Event: Normal, or a Warning when a moved container's pull policy may
// keep the old image, or when its OnDelete strategy restarts nothing yet.
type restarted struct {
	w       *listed
	d       *policy.Decision
	changes map[string]string // ref@from@to → what the move changes
	gitOps  string            // advice when a GitOps tool may undo the restart
}

func (f restarted) tell(r *reporter) {
	w := &f.w.kube
	var msgs, risky []string
	for _, c := range f.d.Moves() {
		attrs := append(whereAttrs(w), "container", c.Name, "image", c.Ref, "from", c.From, "to", c.To)
		m := fmt.Sprintf("container %s image %s: %s → %s", c.Name, c.Ref, c.From, c.To)
		if ch := f.changes[c.Ref+"@"+c.From+"@"+c.To]; ch != "" {
			attrs = append(attrs, "change", ch)
			m += " (" + ch + ")"
		}
		r.log.Info("restarted", attrs...)
		msgs = append(msgs, m)
		if c.Risky != "" {
			risky = append(risky, fmt.Sprintf("%s (%s)", c.Name, c.Risky))
		}
	}
	if w.OnDelete {
		r.log.Warn("patched, but its OnDelete update strategy restarts nothing until its pods are deleted", whereAttrs(w)...)
	}
	if f.gitOps != "" {
		r.log.Warn(f.gitOps, append(whereAttrs(w), "annotations", kube.RestartedAtAnnotation+","+kube.RestartedForAnnotation)...)
	}
	msg := "restarted by urunner: " + strings.Join(msgs, "; ")
	typ, reason := corev1.EventTypeNormal, kube.ReasonDigestChanged
	if len(risky) > 0 {
		typ, reason = corev1.EventTypeWarning, kube.ReasonPullPolicy
		msg += "; " + pullPolicyAdvice(risky)
	}
	if w.OnDelete {
		typ = corev1.EventTypeWarning
		msg += "; its OnDelete update strategy restarts nothing until its pods are deleted"
	}
	r.event(*w, typ, reason, msg, strings.Join(msgs, ";"))
}

// verify

// rolloutEnded: how a verified restart's rollout ended (its report line
// is rolloutVerified).
type rolloutEnded struct {
	w      *kube.Workload
	result kube.Rollout
	msg    string
	err    error
	// rollback is what the rollback of a failed rollout did, and
	// rollbackErr why it did not.
	rollback    rollbackResult
	rollbackErr error
}

// rollbackResult is what became of a failed rollout.
type rollbackResult int

const (
	notAsked       rollbackResult = iota // URUNNER_CONF_ROLLBACK=false
	rolledBack                           // rolled back to what it ran before
	changedSince                         // not rolled back: someone changed it since the restart
	rollbackFailed                       // the rollback failed
)

func (f rolloutEnded) tell(r *reporter) {
	attrs := []any{"namespace", f.w.Namespace, "kind", f.w.Kind, "name", f.w.Name, "detail", f.msg}
	switch {
	case f.err != nil:
		r.log.Warn("rollout not verified", append(attrs, "error", f.err)...)
	case f.result == kube.RolloutComplete:
		r.log.Info("rollout complete", attrs...)
		r.event(*f.w, corev1.EventTypeNormal, "RolloutComplete", "the restart urunner made rolled out: "+f.msg, "complete")
	case f.result == kube.RolloutManual:
		r.log.Warn("rollout waits for a person: "+f.msg, attrs...)
	case f.result == kube.RolloutFailed:
		f.tellFailed(r, attrs)
	default:
		r.log.Warn("rollout unfinished when urunner stopped waiting", attrs...)
	}
}

func (f rolloutEnded) tellFailed(r *reporter, attrs []any) {
	switch f.rollback {
	case notAsked:
		r.log.Error("rollout failed", attrs...)
	case rolledBack:
		r.log.Error("rollout failed; rolled back to what it ran before", attrs...)
	case changedSince:
		r.log.Error("rollout failed; not rolled back: "+f.rollbackErr.Error(), attrs...)
	case rollbackFailed:
		r.log.Error("rollout failed and the rollback too", append(attrs, "error", f.rollbackErr)...)
	}
	r.event(*f.w, corev1.EventTypeWarning, "RolloutFailed", "the restart urunner made did not roll out, and its new digest is quarantined in this cluster (nothing restarts onto it, under any tag, until it is lifted: annotation urunner.io/lift-quarantine in a namespace, kubectl urunner lift everywhere): "+f.msg, f.msg)
}

// rolloutVerified: a verified rollout's line of the run report.
type rolloutVerified struct{ rep rolloutReport }

func (f rolloutVerified) tell(r *reporter) {
	r.o.rollouts = append(r.o.rollouts, f.rep)
	r.o.rolloutsVerified++
	if f.rep.Result == "failed" {
		r.o.rolloutsFailed++
	}
}

// deliveryUnchecked: the pods of a rolled-out restart could not be read.
type deliveryUnchecked struct {
	w   *kube.Workload
	err error
}

func (f deliveryUnchecked) tell(r *reporter) {
	r.log.Warn("delivery not checked: cannot read the pods; not counted as healthy on the new digest this run", append(whereAttrs(f.w), "error", f.err)...)
}

// notDelivered: a container whose pods do not run what it was restarted
// for; with a gate a failure (exit code 1), since a gate's promise is
// broken.
type notDelivered struct {
	w     *listed
	c     policy.ContainerDecision
	to    string
	runs  []string
	cause string
	gated bool
	stage stage // when it was found: deciding, or verifying a rollout
}

func (f notDelivered) tell(r *reporter) {
	w, c := &f.w.kube, f.c
	r.log.Warn("not delivered: its pods do not run the digest it was restarted for",
		append(whereAttrs(w), "container", c.Name, "image", c.Ref, "restarted_for", f.to, "runs", strings.Join(f.runs, ","), "cause", f.cause)...)
	msg := fmt.Sprintf("container %s was restarted for %s (%s), but its ready pods run %s: %s", c.Name, c.Ref, short(f.to), shortList(f.runs), f.cause)
	r.event(*w, corev1.EventTypeWarning, kube.ReasonNotDelivered, msg, c.Name+"\x00"+f.to)
	r.o.undelivered = append(r.o.undelivered, report.Undelivered{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name,
		Container: c.Name, Image: c.Ref, RestartedFor: f.to, Runs: f.runs, Cause: f.cause, Gated: f.gated})
	if f.gated {
		r.o.deliveryFailures++
		r.o.failure(f.stage, failure{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name, Image: c.Ref, Error: "not delivered: " + msg})
	}
}

// record

// quarantined: a digest whose verified rollout failed; nothing restarts
// onto it until it is lifted.
type quarantined struct {
	w     *kube.Workload
	image string
	to    string
	where string
}

func (f quarantined) tell(r *reporter) {
	r.log.Error("digest quarantined: nothing restarts onto it, under any tag, until it is lifted",
		"image", f.image, "digest", f.to, "reason", f.where,
		"lift_in_namespace", policy.LiftQuarantineAnnotation+"="+short(f.to), "lift_everywhere", "kubectl urunner lift "+short(f.to))
	r.o.failure(stageRecord, failure{Namespace: f.w.Namespace, Kind: f.w.Kind, Name: f.w.Name, Image: f.image, Error: "quarantined " + f.to + ": " + f.where})
}

// liftedInNamespace: a namespace's lift annotation lifted a quarantine.
type liftedInNamespace struct{ namespace, digest string }

func (f liftedInNamespace) tell(r *reporter) {
	r.log.Info("quarantine lifted in a namespace by its lift annotation", "namespace", f.namespace, "digest", f.digest)
}

// liftAnnotationRemoved: a spent lift annotation was removed (or not: err).
type liftAnnotationRemoved struct {
	w   policy.LiftAnnotation
	err error
}

func (f liftAnnotationRemoved) tell(r *reporter) {
	w := f.w.Workload
	attrs := []any{"namespace", w.Namespace, strings.ToLower(w.Kind), w.Name}
	if f.err != nil {
		r.log.Warn("lift annotation not removed; the next run tries again", append(attrs, "error", f.err)...)
		return
	}
	r.log.Info("lift annotation removed: the state keeps the lift", append(attrs, "lift", f.w.Value)...)
}

// retracted: a digest a tag left while it soaked, with an Event on each
// workload that waited for it (at most maxWarningEvents in a run).
type retracted struct {
	r       policy.Retraction
	waiting []kube.Workload
}

func (f retracted) tell(r *reporter) {
	rt := f.r
	r.log.Warn("retracted: the tag moved again while its digest soaked; that digest restarted nothing",
		"image", rt.Ref, "retracted", rt.From, "first_seen", rt.Seen.UTC().Format(time.RFC3339), "now", rt.To)
	r.o.retractions = append(r.o.retractions, retraction{Image: rt.Ref, From: rt.From, To: rt.To, FirstSeen: rt.Seen.UTC()})
	for _, w := range f.waiting {
		if r.retractEvent == maxWarningEvents {
			return
		}
		r.retractEvent++
		r.event(w, corev1.EventTypeNormal, kube.ReasonRetracted,
			fmt.Sprintf("image %s: %s was retracted while it soaked (first seen %s); the tag now points at %s",
				rt.Ref, short(rt.From), rt.Seen.UTC().Format(time.RFC3339), short(rt.To)), rt.Ref+"\x00"+rt.From)
	}
}

// stood: the restarts that stand once the rollouts are verified (not
// rolled back), for the report and the notifications.
type stood struct {
	f *found
	p *plan
}

func (s stood) tell(r *reporter) {
	for _, wl := range s.f.workloads {
		if !wl.restarted() {
			continue
		}
		r.o.restarted++
		w, d := &wl.seen().kube, wl.final()
		pending := ""
		if w.OnDelete {
			pending = "OnDelete update strategy: nothing restarts until its pods are deleted"
		}
		for _, c := range d.Moves() {
			r.o.restarts = append(r.o.restarts, notify.Restart{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name,
				Container: c.Name, Image: c.Ref, From: c.From, To: c.To, Pending: pending, Change: s.p.changes[c.Ref+"@"+c.From+"@"+c.To]})
		}
	}
}

// nextState: what the state to be saved says of the run's images: how far
// each digest has rolled through the rings, the last successful run, the
// images whose lookups keep failing.
type nextState struct {
	next  state.State
	fleet *policy.Fleet
}

func (f nextState) tell(r *reporter) {
	r.o.rings = ringsReached(f.fleet, f.next)
	r.o.lastSuccess, r.o.failing = f.next.LastSuccess, failingImages(f.next)
}
