package policy

import (
	"strings"
	"time"
)

// Settings are the rules' knobs, from urunner's configuration.
type Settings struct {
	// Pin sets the container image to tag@digest instead of the restart
	// annotation (URUNNER_CONF_RESTART_MODE=pin).
	Pin bool
	// SkipCached records, without a restart, a move whose pull policy may
	// keep the old image cached (URUNNER_CONF_PULL_POLICY_MISMATCH=skip).
	SkipCached bool
	// Converge restarts on first sight a workload whose ready pods all run
	// another digest (URUNNER_CONF_FIRST_RUN=converge).
	Converge bool
	// Platforms, when set, restart a moved index only when one of these
	// platforms' manifests moved (URUNNER_CONF_PLATFORMS).
	Platforms []string
	// GitOps is warn, skip or ignore (URUNNER_CONF_GITOPS).
	GitOps string
	// Cooldown is the shortest time between two restarts of a workload
	// (URUNNER_CONF_COOLDOWN; annotation urunner.io/cooldown overrides).
	Cooldown time.Duration
	// Window is when restarts may happen (URUNNER_CONF_WINDOW; annotation
	// urunner.io/window overrides); nil is always.
	Window *Window
	// MaxRestarts caps the restarts of a window (see Run.Cap); 0 is no cap.
	MaxRestarts int
	// MaxRestartsWindow, when set, is the cap's window: restarts of any
	// run within it count (URUNNER_CONF_MAX_RESTARTS_WINDOW). Zero counts
	// since the start of the last full run.
	MaxRestartsWindow time.Duration
	// Soak is how long a new digest must stay what its tag points at
	// before anything restarts onto it (URUNNER_CONF_SOAK; annotation
	// urunner.io/soak on the workload or its namespace overrides).
	Soak time.Duration
	// Approval is auto, approve (restart only what a person approved by
	// annotation) or notify (never restart; tell) (URUNNER_CONF_APPROVAL).
	Approval string
	// RequireSignature restarts only onto digests whose signature the
	// signature policy verified (URUNNER_CONF_SIGNATURE_*).
	RequireSignature bool
	// SignatureGrace is how long a digest with no signature at all waits
	// for one, from when it was first seen, before it is refused
	// (URUNNER_CONF_SIGNATURE_GRACE); 0 refuses it at once.
	SignatureGrace time.Duration
	// Quarantine is true when restarts are verified
	// (URUNNER_CONF_VERIFY_ROLLOUT): a failed rollout quarantines its
	// digest, so the quarantine gate judges every restart.
	Quarantine bool
}

// Annotations on a workload (or, for soak, ring and approve, its
// namespace) that change how it is decided.
const (
	CooldownAnnotation = "urunner.io/cooldown"
	WindowAnnotation   = "urunner.io/window"
	SoakAnnotation     = "urunner.io/soak"
	// RingAnnotation (also a label) puts a workload in a ring: 0 restarts
	// onto a new digest first, ring N+1 once ring N runs it healthily.
	RingAnnotation = "urunner.io/ring"
	// ApproveAnnotation approves, in approve mode, the digests it names
	// in full (sha256:<64 hex> or the 64 hex alone, comma-separated); a
	// prefix approves nothing.
	ApproveAnnotation = "urunner.io/approve"
)

// Workload is a workload as listed, in the terms of the rules.
type Workload struct {
	Kind, Namespace, Name string
	// Created is the workload's creationTimestamp.
	Created time.Time
	// Paused Deployments do not roll: a restart waits for them.
	Paused bool
	// OnDelete StatefulSets take a new template only when a pod is deleted.
	OnDelete bool
	// GitOps names the controller managing the workload ("Argo CD",
	// "Flux"), "" for none.
	GitOps string
	// Annotations are the workload's urunner.io/ annotations, and
	// NamespaceAnnotations its namespace's (cluster mode).
	Annotations          map[string]string
	NamespaceAnnotations map[string]string
	// Ring is the workload's ring (RingAnnotation); 0 by default.
	Ring int
	// Healthy is whether its rollout is complete: every replica runs the
	// current template and is available.
	Healthy bool
	// RestartedAt is the pod template's kubectl.kubernetes.io/restartedAt
	// (zero when absent or unreadable).
	RestartedAt time.Time
	// RestartedFor is the pod template's urunner.io/restarted-for: what
	// urunner restarted each container for.
	RestartedFor map[string]Record
	Containers   []Container
	// TemplateOf names the Argo Rollouts ("namespace/name, …") that run
	// this Deployment's pod template (their spec.workloadRef), "" for none.
	TemplateOf string
}

// Record is what urunner restarted a container for: the reference as it
// was then and the digest. Ref is "" in records of urunner before 0.3,
// which named the digest alone: such a record counts for the container's
// current image, as those versions meant it.
type Record struct {
	Ref, Digest string
}

// Records reads a restarted-for annotation's values: "reference@digest"
// per container, or a digest alone as urunner before 0.3 wrote it.
func Records(raw map[string]string) map[string]Record {
	if len(raw) == 0 {
		return nil
	}
	out := make(map[string]Record, len(raw))
	for c, v := range raw {
		if i := strings.LastIndexByte(v, '@'); i > 0 {
			out[c] = Record{Ref: v[:i], Digest: v[i+1:]}
		} else {
			out[c] = Record{Digest: v}
		}
	}
	return out
}

// Container is one container (or init container) of a workload.
type Container struct {
	Name string
	// Image is the image as written in the pod template.
	Image string
	// Named is the canonical reference the image names, registry/repository:tag,
	// without a digest; "" when the image is not a registry reference.
	Named string
	// ImageDigest is the digest the image string pins, if any.
	ImageDigest string
	// Watched is whether the image's registry is watched.
	Watched bool
	// Ref is the reference looked up for the container (see Tracked);
	// "" when it is not tracked.
	Ref string
	// Cred names the credentials its lookup uses: "" for the registry's
	// configured ones (or anonymous), else the workload's pull secret.
	Cred       string
	PullPolicy string
	Init       bool
	// Pods is what the workload's pods run, when read (URUNNER_CONF_RUNNING_PODS).
	Pods *Pods
}

// Pods is what a container runs in a workload's pods.
type Pods struct {
	// Digests are the distinct digests the ready pods report, sorted.
	Digests []string
	// AllReady is true when the workload has pods and all are ready.
	AllReady bool
}

// runsOnly reports whether every pod is ready and runs exactly d.
func (p *Pods) runsOnly(d string) bool {
	return p != nil && p.AllReady && len(p.Digests) == 1 && p.Digests[0] == d
}

// Lookup is one registry lookup: a reference with the credentials it is
// looked up with. Workloads whose lookups differ only in credentials see
// only the result of their own.
type Lookup struct {
	Ref, Cred string
}

// Lookup returns c's lookup.
func (c Container) Lookup() Lookup { return Lookup{Ref: c.Ref, Cred: c.Cred} }

// Result is what the registry said about a lookup.
type Result struct {
	Digest string
	// Index is true when Digest is a multi-platform index's.
	Index bool
	// Children are the index's child digests for the watched platforms,
	// when fetched.
	Children map[string]string
	// Members are every child manifest digest of the index, when read to
	// tell a platform's digest that pods report from another image's.
	Members []string
	// Deferred says why a read the rules need of this result (a moved
	// index's platforms) was not made: the registry's budget. A move onto
	// it holds, with this reason.
	Deferred string
	// Err is why the lookup failed.
	Err error
	// Signature is the signature policy's verdict on Digest, when one is
	// required.
	Signature *Signature
}

// Signature is what the signature policy said of a digest. Its zero value
// is a refusal: signatures found, none trusted.
type Signature struct {
	// Verified is true when a trusted key or identity signed it.
	Verified bool
	// Unsigned is true when no signature of the digest was found at all,
	// the one refusal a grace may defer (Settings.SignatureGrace): the
	// signature of a freshly pushed digest is often pushed a minute later.
	Unsigned bool
	// Reason says who signed it, or why it is refused.
	Reason string
	// Err is set when the signatures could not be read: the digest is
	// neither trusted nor refused.
	Err error
}

// Results finds the result of a lookup; false when the reference was not
// looked up this run (a run restricted to pushed references). The result
// is shared by every container of the lookup (thousands, at scale, each
// with a decision): it is read, never changed.
type Results func(Lookup) (*Result, bool)
