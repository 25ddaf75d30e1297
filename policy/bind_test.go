package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/urunner/urunner/state"
)

// A gate judges one digest: a restart it lets through must deliver that
// digest, not the tag as it is when each pod starts.
func TestGatedRestartsAreBoundToTheirDigest(t *testing.T) {
	base := remembered(map[string]string{app: dA})
	seen := base.Clone()
	r := seen.Refs[app]
	r.Digest, r.Seen, r.Base = dB, now.Add(-time.Hour), dA
	seen.Refs[app] = r
	signed := func(l Lookup) (*Result, bool) {
		return &Result{Digest: dB, Signature: &Signature{Verified: true}}, true
	}
	for _, tc := range []struct {
		name      string
		settings  Settings
		workload  *Workload
		results   Results
		mem       state.State
		wantPins  bool
		wantGates []string
	}{
		{name: "no gate: a restart by annotation", workload: workload(), results: registry(map[string]string{app: dB})},
		{name: "pin mode pins", settings: Settings{Pin: true}, workload: workload(), results: registry(map[string]string{app: dB}), wantPins: true},
		{name: "signatures pin the verified digest", settings: Settings{RequireSignature: true}, workload: workload(), results: signed,
			wantPins: true, wantGates: []string{"signature"}},
		{name: "verified rollouts (quarantine) pin", settings: Settings{Quarantine: true}, workload: workload(),
			results: registry(map[string]string{app: dB}), wantPins: true, wantGates: []string{"quarantine"}},
		{name: "a soak annotation pins the soaked digest", workload: workload(annotated(SoakAnnotation, "30m")), mem: seen,
			results: registry(map[string]string{app: dB}), wantPins: true, wantGates: []string{"soak"}},
		{name: "approve mode pins the approved digest", settings: Settings{Approval: "approve"},
			workload: workload(annotated(ApproveAnnotation, dB)), results: registry(map[string]string{app: dB}), wantPins: true, wantGates: []string{"approval"}},
		{name: "a GitOps-managed workload keeps its image: its delivery is checked from its pods",
			settings: Settings{Quarantine: true}, workload: workload(func(w *Workload) { w.GitOps = "Argo CD" }),
			results: registry(map[string]string{app: dB}), wantGates: []string{"quarantine"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := tc.mem
			if mem.Refs == nil {
				mem = base
			}
			d := Decide(tc.settings, tc.workload, tc.results, mem, now)
			if d.Action != Restart {
				t.Fatalf("action %s (%s), want restart", d.Action, d.Reason)
			}
			if got := Gates(tc.settings, nil, tc.workload); !cmp.Equal(got, tc.wantGates) {
				t.Errorf("gates %v, want %v", got, tc.wantGates)
			}
			pins := d.Pins(tc.settings)
			if tc.wantPins != (pins != nil) {
				t.Fatalf("pins %v, want pinned %v", pins, tc.wantPins)
			}
			if tc.wantPins && pins["app"] != app+"@"+dB {
				t.Errorf("pin %q, want %q", pins["app"], app+"@"+dB)
			}
		})
	}
}

func TestRingsBindRingZeroOfAReferenceLaterRingsFollow(t *testing.T) {
	canary := workload()
	later := workload(func(w *Workload) { w.Name, w.Ring = "web-2", 1 })
	fleet := NewFleet([]*Workload{canary, later}, nil)
	if got := Gates(Settings{}, fleet, canary); !cmp.Equal(got, []string{"ring"}) {
		t.Errorf("ring 0 gates %v, want [ring]", got)
	}
	alone := workload()
	if got := Gates(Settings{}, NewFleet([]*Workload{alone}, nil), alone); got != nil {
		t.Errorf("a workload in no ring: gates %v, want none", got)
	}
}

// With the pods read, a gated workload whose pods already run the new
// digest is not recorded as running it unless every gate lets it through.
func TestPodsAheadOfAGateAreHeldNotRecorded(t *testing.T) {
	base := remembered(map[string]string{app: dA})
	pods := withContainerMod(func(c *Container) { c.Pods = &Pods{Digests: []string{dB}, AllReady: true} })
	unsigned := func(l Lookup) (*Result, bool) {
		return &Result{Digest: dB, Signature: &Signature{Reason: "no signature"}}, true
	}
	signed := func(l Lookup) (*Result, bool) {
		return &Result{Digest: dB, Signature: &Signature{Verified: true}}, true
	}
	for _, tc := range []struct {
		name     string
		settings Settings
		results  Results
		want     want
	}{
		{"no gate: recorded, no restart", Settings{}, registry(map[string]string{app: dB}),
			want{Containers: map[string]wantContainer{"app": {Verdict: Recorded, From: dA, To: dB}}}},
		{"an unsigned digest the pods run is held, not recorded", Settings{RequireSignature: true}, unsigned,
			want{Action: Hold, Reason: "bbbbbbbbbbbb refused by the signature policy: no signature",
				Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}}},
		{"a verified digest the pods run is recorded, no restart", Settings{RequireSignature: true}, signed,
			want{Containers: map[string]wantContainer{"app": {Verdict: Recorded, From: dA, To: dB}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.settings, workload(pods), tc.results, base, now)
			if diff := cmp.Diff(tc.want, summarize(d)); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

// After a restart has rolled out, the pods must run what it was for.
func TestDeliveryIsCheckedFromThePods(t *testing.T) {
	mem := remembered(map[string]string{app: dB})
	r := mem.Refs[app]
	r.Base = dA
	mem.Refs[app] = r
	restarted := func(pull string, runs ...string) *Workload {
		return workload(restartedFor("app", app, dB), func(w *Workload) { w.Healthy = true },
			withContainerMod(func(c *Container) { c.PullPolicy, c.Pods = pull, &Pods{Digests: runs, AllReady: true} }))
	}
	index := func(members ...string) Results {
		return func(Lookup) (*Result, bool) { return &Result{Digest: dB, Index: true, Members: members}, true }
	}
	for _, tc := range []struct {
		name      string
		settings  Settings
		workload  *Workload
		results   Results
		want      want
		wantCause string
	}{
		{name: "pods run the digest: delivered", workload: restarted("Always", dB), results: registry(map[string]string{app: dB}),
			want: want{Containers: map[string]wantContainer{"app": {Verdict: Unchanged, From: dB, To: dB}}}},
		{name: "pods run a platform's manifest of the index: delivered", workload: restarted("Always", dC), results: index(dC),
			want: want{Containers: map[string]wantContainer{"app": {Verdict: Unchanged, From: dB, To: dB}}}},
		{name: "an index whose manifests are not read yet: not judged", workload: restarted("Always", dC),
			results: func(Lookup) (*Result, bool) { return &Result{Digest: dB, Index: true}, true },
			want:    want{Containers: map[string]wantContainer{"app": {Verdict: Unchanged, From: dB, To: dB}}}},
		{name: "pods run the old digest: not delivered, due again", workload: restarted("Always", dA), results: registry(map[string]string{app: dB}),
			want:      want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}},
			wantCause: "they run the digest of before: a node's cached image, or a mirror or pull-through cache serving the tag stale"},
		{name: "pods run another digest (a push mid-rollout): not delivered, due again", workload: restarted("Always", dC),
			results:   registry(map[string]string{app: dB}),
			want:      want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dC, To: dB}}},
			wantCause: "they run a digest urunner did not restart them for: the tag moved during the rollout, or a mirror serves another image"},
		{name: "IfNotPresent by annotation: told, not restarted again (it would start the cache again)",
			workload: restarted("IfNotPresent", dA), results: registry(map[string]string{app: dB}),
			want:      want{Containers: map[string]wantContainer{"app": {Verdict: Unchanged, From: dB, To: dB, Risky: "IfNotPresent"}}},
			wantCause: "imagePullPolicy IfNotPresent: a node started the image it had cached under the tag"},
		{name: "IfNotPresent with a gate: restarted again, pinned", settings: Settings{Quarantine: true},
			workload: restarted("IfNotPresent", dA), results: registry(map[string]string{app: dB}),
			want:      want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}},
			wantCause: "imagePullPolicy IfNotPresent: a node started the image it had cached under the tag"},
		{name: "a rollout not complete is not judged", workload: func() *Workload { w := restarted("Always", dA); w.Healthy = false; return w }(),
			results: registry(map[string]string{app: dB}),
			want:    want{Containers: map[string]wantContainer{"app": {Verdict: Unchanged, From: dB, To: dB}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.settings, tc.workload, tc.results, mem, now)
			if diff := cmp.Diff(tc.want, summarize(d)); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			var cause string
			if dl := d.Containers[0].Delivery; dl != nil {
				cause = dl.Cause
			}
			if cause != tc.wantCause {
				t.Errorf("cause %q, want %q", cause, tc.wantCause)
			}
		})
	}
}
