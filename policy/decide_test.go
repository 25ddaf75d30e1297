package policy

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/urunner/urunner/state"
)

const (
	dA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	dC = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

const (
	app     = "reg.example.com/team/app:latest"
	sidecar = "reg.example.com/team/sidecar:1"
)

// now is the run's time: Wednesday 2026-11-25 12:00 UTC.
var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// lastRun is when the references were last looked up.
var lastRun = now.Add(-5 * time.Minute)

// workload is web in shop, created a day ago, with one container "app"
// on app, unless changed.
func workload(mods ...func(*Workload)) *Workload {
	w := &Workload{Kind: "Deployment", Namespace: "shop", Name: "web", Created: now.Add(-24 * time.Hour),
		Containers: []Container{container("app", app)}}
	for _, m := range mods {
		m(w)
	}
	return w
}

func container(name, ref string) Container {
	return Container{Name: name, Image: ref, Named: ref, Watched: true, Ref: ref, PullPolicy: "Always"}
}

func withContainer(c Container) func(*Workload) {
	return func(w *Workload) { w.Containers = append(w.Containers, c) }
}

func withContainerMod(f func(*Container)) func(*Workload) {
	return func(w *Workload) { f(&w.Containers[0]) }
}

func restartedFor(c, ref, d string) func(*Workload) {
	return func(w *Workload) {
		if w.RestartedFor == nil {
			w.RestartedFor = map[string]Record{}
		}
		w.RestartedFor[c] = Record{Ref: ref, Digest: d}
	}
}

func annotated(k, v string) func(*Workload) {
	return func(w *Workload) {
		if w.Annotations == nil {
			w.Annotations = map[string]string{}
		}
		w.Annotations[k] = v
	}
}

// remembered is a state in which each reference last pointed at digest,
// looked up at lastRun.
func remembered(refs map[string]string) state.State {
	s := state.State{Refs: map[string]state.Ref{}}
	for r, d := range refs {
		s.Refs[r] = state.Ref{Digest: d, Seen: lastRun, Checked: lastRun}
	}
	return s
}

// withExcept records that key runs d, against the record rec ("" for none).
func withExcept(s state.State, ref, key, d, rec string) state.State {
	r := s.Refs[ref]
	r.Except = map[string]state.Exception{key: {Runs: d, Record: rec}}
	s.Refs[ref] = r
	return s
}

// registry answers each reference with its digest, and fails the others.
func registry(digests map[string]string) Results {
	return func(l Lookup) (*Result, bool) {
		if d, ok := digests[l.Ref]; ok {
			return &Result{Digest: d}, true
		}
		return &Result{Err: errors.New("not found")}, true
	}
}

// want is what a test expects of a decision: the action, the hold's
// reason, and each container's verdict with its from → to.
type want struct {
	Action     Action
	Reason     string
	Ignored    string
	Containers map[string]wantContainer
}

type wantContainer struct {
	Verdict  Verdict
	From, To string
	Risky    string
}

func summarize(d Decision) want {
	got := want{Action: d.Action, Reason: d.Reason, Ignored: d.Ignored}
	for _, c := range d.Containers {
		if got.Containers == nil {
			got.Containers = map[string]wantContainer{}
		}
		got.Containers[c.Name] = wantContainer{c.Verdict, c.From, c.To, c.Risky}
	}
	return got
}

// The table is the specification of when urunner restarts: each case is a
// rule of the README's "How it decides".
func TestDecide(t *testing.T) {
	base := remembered(map[string]string{app: dA})
	for _, tc := range []struct {
		name     string
		settings Settings
		workload *Workload
		mem      state.State
		results  Results
		want     want
	}{
		{
			name:     "first sight of a reference is a baseline, not a restart",
			workload: workload(),
			mem:      remembered(nil),
			results:  registry(map[string]string{app: dA}),
			want:     want{Containers: map[string]wantContainer{"app": {Verdict: Baseline, To: dA}}},
		},
		{
			name:     "the same digest changes nothing",
			workload: workload(),
			mem:      base,
			results:  registry(map[string]string{app: dA}),
			want:     want{Containers: map[string]wantContainer{"app": {Verdict: Unchanged, From: dA, To: dA}}},
		},
		{
			name:     "a moved tag restarts a workload that was there when it was last looked up",
			workload: workload(),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}},
		},
		{
			name:     "a workload created since the last lookup is a baseline even if the tag moved",
			workload: workload(func(w *Workload) { w.Created = lastRun.Add(time.Second) }),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Containers: map[string]wantContainer{"app": {Verdict: Baseline, To: dB}}},
		},
		{
			name:     "a workload created in the second of the last lookup counts as listed then",
			workload: workload(func(w *Workload) { w.Created = lastRun }),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}},
		},
		{
			name:     "a failed lookup changes nothing",
			workload: workload(),
			mem:      base,
			results:  registry(nil),
			want:     want{Containers: map[string]wantContainer{"app": {Verdict: LookupFailed, From: dA}}},
		},
		{
			name:     "a reference not looked up this run (a push of another) changes nothing",
			workload: workload(),
			mem:      base,
			results:  func(Lookup) (*Result, bool) { return nil, false },
			want:     want{Containers: map[string]wantContainer{"app": {Verdict: NotLookedUp, From: dA}}},
		},
		{
			name:     "two moved containers make one restart",
			workload: workload(withContainer(container("side", sidecar))),
			mem:      remembered(map[string]string{app: dA, sidecar: dA}),
			results:  registry(map[string]string{app: dB, sidecar: dC}),
			want: want{Action: Restart, Containers: map[string]wantContainer{
				"app": {Verdict: Moved, From: dA, To: dB}, "side": {Verdict: Moved, From: dA, To: dC}}},
		},
		{
			name:     "a workload whose restarted-for records the new digest is not restarted again",
			workload: workload(restartedFor("app", app, dB)),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Containers: map[string]wantContainer{"app": {Verdict: Unchanged, From: dB, To: dB}}},
		},
		{
			name: "the restarted-for guard means what the pods run: after a rollback to the old digest, a move to the recorded one restarts",
			// urunner restarted web for dB, then it was recorded back
			// on dA (a person rolled it back); the tag moves to dB again.
			workload: workload(restartedFor("app", app, dB)),
			mem:      withExcept(remembered(map[string]string{app: dC}), app, "shop/Deployment/web/app", dA, dB),
			results:  registry(map[string]string{app: dB}),
			want:     want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}},
		},
		{
			name:     "a restarted-for record of another image is not believed (the container was switched to another tag)",
			workload: workload(restartedFor("app", "reg.example.com/team/app:v1", dB)),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}},
		},
		{
			name:     "a restarted-for record of urunner before 0.3 (a digest alone) counts for the container's current image",
			workload: workload(restartedFor("app", "", dB)),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Containers: map[string]wantContainer{"app": {Verdict: Unchanged, From: dB, To: dB}}},
		},
		{
			name:     "a restarted-for record of urunner before 0.3 for an older digest makes the move due from it",
			workload: workload(restartedFor("app", "", dC)),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dC, To: dB}}},
		},
		{
			name: "a recorded exception no longer holds once the workload was restarted again (a run that crashed before saving)",
			// Recorded as running dC while its record said dA; a later
			// run restarted it for dB and crashed before saving.
			workload: workload(restartedFor("app", app, dB)),
			mem:      withExcept(remembered(map[string]string{app: dA}), app, "shop/Deployment/web/app", dC, dA),
			results:  registry(map[string]string{app: dB}),
			want:     want{Containers: map[string]wantContainer{"app": {Verdict: Unchanged, From: dB, To: dB}}},
		},
		{
			name:     "a workload recorded behind (held last run) stays due",
			workload: workload(),
			mem:      withExcept(remembered(map[string]string{app: dB}), app, "shop/Deployment/web/app", dA, ""),
			results:  registry(map[string]string{app: dB}),
			want:     want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}},
		},
		{
			name:     "a paused Deployment holds its restart",
			workload: workload(func(w *Workload) { w.Paused = true }),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want: want{Action: Hold, Reason: "paused; the restart waits until it resumes",
				Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}},
		},
		{
			name:     "every ready pod running the new digest already records it without a restart",
			workload: workload(withContainerMod(func(c *Container) { c.Pods = &Pods{Digests: []string{dB}, AllReady: true} })),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Containers: map[string]wantContainer{"app": {Verdict: Recorded, From: dA, To: dB}}},
		},
		{
			name:     "pods still rolling (old and new digests) restart",
			workload: workload(withContainerMod(func(c *Container) { c.Pods = &Pods{Digests: []string{dA, dB}, AllReady: true} })),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}},
		},
		{
			name:     "converge restarts on first sight when every ready pod runs another digest",
			settings: Settings{Converge: true},
			workload: workload(withContainerMod(func(c *Container) { c.Pods = &Pods{Digests: []string{dC}, AllReady: true} })),
			mem:      remembered(nil),
			results:  registry(map[string]string{app: dB}),
			want:     want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dC, To: dB}}},
		},
		{
			name:     "converge does not compare an index's digest with the pods'",
			settings: Settings{Converge: true},
			workload: workload(withContainerMod(func(c *Container) { c.Pods = &Pods{Digests: []string{dC}, AllReady: true} })),
			mem:      remembered(nil),
			results:  func(Lookup) (*Result, bool) { return &Result{Digest: dB, Index: true}, true },
			want:     want{Containers: map[string]wantContainer{"app": {Verdict: Baseline, To: dB}}},
		},
		{
			name:     "converge waits for every pod to be ready",
			settings: Settings{Converge: true},
			workload: workload(withContainerMod(func(c *Container) { c.Pods = &Pods{Digests: []string{dC}} })),
			mem:      remembered(nil),
			results:  registry(map[string]string{app: dB}),
			want:     want{Containers: map[string]wantContainer{"app": {Verdict: Baseline, To: dB}}},
		},
		{
			name:     "an index that moved only for platforms not watched is recorded",
			settings: Settings{Platforms: []string{"linux/amd64"}},
			workload: workload(),
			mem: func() state.State {
				s := base
				r := s.Refs[app]
				r.Children = map[string]map[string]string{dA: {"linux/amd64": dC}}
				s.Refs = map[string]state.Ref{app: r}
				return s
			}(),
			results: func(Lookup) (*Result, bool) {
				return &Result{Digest: dB, Index: true, Children: map[string]string{"linux/amd64": dC}}, true
			},
			want: want{Containers: map[string]wantContainer{"app": {Verdict: Recorded, From: dA, To: dB}}},
		},
		{
			name:     "an index whose watched platform moved restarts",
			settings: Settings{Platforms: []string{"linux/amd64"}},
			workload: workload(),
			mem: func() state.State {
				s := remembered(map[string]string{app: dA})
				r := s.Refs[app]
				r.Children = map[string]map[string]string{dA: {"linux/amd64": dC}}
				s.Refs[app] = r
				return s
			}(),
			results: func(Lookup) (*Result, bool) {
				return &Result{Digest: dB, Index: true, Children: map[string]string{"linux/amd64": dB}}, true
			},
			want: want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}},
		},
		{
			name:     "an index whose platforms waited for the registry budget holds, its move due",
			settings: Settings{Platforms: []string{"linux/amd64"}},
			workload: workload(),
			mem: func() state.State {
				s := remembered(map[string]string{app: dA})
				r := s.Refs[app]
				r.Children = map[string]map[string]string{dA: {"linux/amd64": dC}}
				s.Refs[app] = r
				return s
			}(),
			results: func(Lookup) (*Result, bool) {
				return &Result{Digest: dB, Index: true, Deferred: "waits for the registry budget"}, true
			},
			want: want{Action: Hold, Reason: "waits for the registry budget",
				Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}},
		},
		{
			name:     "a move with pull policy IfNotPresent restarts, flagged",
			workload: workload(withContainerMod(func(c *Container) { c.PullPolicy = "IfNotPresent" })),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB, Risky: "IfNotPresent"}}},
		},
		{
			name:     "with PULL_POLICY_MISMATCH=skip a move with pull policy Never is recorded, not restarted",
			settings: Settings{SkipCached: true},
			workload: workload(withContainerMod(func(c *Container) { c.PullPolicy = "Never" })),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Containers: map[string]wantContainer{"app": {Verdict: Recorded, From: dA, To: dB, Risky: "Never"}}},
		},
		{
			name:     "pin mode restarts whatever the pull policy: a pinned digest is always pulled",
			settings: Settings{Pin: true, SkipCached: true},
			workload: workload(withContainerMod(func(c *Container) { c.PullPolicy = "IfNotPresent" })),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}},
		},
		{
			name:     "pin mode follows the tag of an image it pinned",
			settings: Settings{Pin: true},
			workload: workload(restartedFor("app", app, dA), withContainerMod(func(c *Container) { c.Image, c.ImageDigest = app+"@"+dA, dA })),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Action: Restart, Containers: map[string]wantContainer{"app": {Verdict: Moved, From: dA, To: dB}}},
		},
		{
			name:     "GitOps=skip leaves a managed workload alone",
			settings: Settings{GitOps: "skip"},
			workload: workload(func(w *Workload) { w.GitOps = "Argo CD" }),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Ignored: "managed by Argo CD (URUNNER_CONF_GITOPS=skip)"},
		},
		{
			name:     "a Deployment whose template an Argo Rollout runs is left alone: the Rollout is restarted",
			workload: workload(func(w *Workload) { w.TemplateOf = "shop/web" }),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Ignored: "the pod template of Rollout shop/web (spec.workloadRef): restarted, pinned and rolled back through the Rollout"},
		},
		{
			name:     "a container is decided on its own lookup's result (its credentials')",
			workload: workload(withContainerMod(func(c *Container) { c.Cred = "pull:shop" })),
			mem:      base,
			results: func(l Lookup) (*Result, bool) {
				if l.Cred == "pull:shop" {
					return &Result{Err: errors.New("unauthorized")}, true
				}
				return &Result{Digest: dB}, true
			},
			want: want{Containers: map[string]wantContainer{"app": {Verdict: LookupFailed, From: dA}}},
		},
		{
			name:     "a container not tracked is not decided",
			workload: workload(withContainerMod(func(c *Container) { c.Ref, c.Watched = "", false })),
			mem:      base,
			results:  registry(map[string]string{app: dB}),
			want:     want{Containers: map[string]wantContainer{"app": {Verdict: Untracked}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(tc.settings, tc.workload, tc.results, tc.mem, now)
			if diff := cmp.Diff(tc.want, summarize(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTracked(t *testing.T) {
	pinned := app + "@" + dA
	for _, tc := range []struct {
		name     string
		settings Settings
		workload *Workload
		c        Container
		wantRef  string
		wantWhy  string
	}{
		{"a tag on a watched registry is tracked", Settings{}, workload(), container("app", app), app, ""},
		{"another registry is not", Settings{}, workload(), Container{Name: "app", Named: "other.example.com/x:1"}, "", "registry not watched"},
		{"an image that names no registry reference is not", Settings{}, workload(), Container{Name: "app", Image: "ocidir://x"}, "", "not a registry image reference"},
		{"an image pinned by a person is not", Settings{Pin: true}, workload(restartedFor("app", app, dB)),
			Container{Name: "app", Image: pinned, Named: app, ImageDigest: dA, Watched: true}, "", "pinned by digest"},
		{"an image urunner pinned is tracked by its tag in pin mode", Settings{Pin: true}, workload(restartedFor("app", app, dA)),
			Container{Name: "app", Image: pinned, Named: app, ImageDigest: dA, Watched: true}, app, ""},
		{"an image urunner pinned is followed whatever the mode (a gated restart pins too)", Settings{}, workload(restartedFor("app", app, dA)),
			Container{Name: "app", Image: pinned, Named: app, ImageDigest: dA, Watched: true}, app, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref, why := Tracked(tc.settings, tc.workload, tc.c)
			if ref != tc.wantRef || why != tc.wantWhy {
				t.Errorf("Tracked = %q, %q; want %q, %q", ref, why, tc.wantRef, tc.wantWhy)
			}
		})
	}
}

func TestPinsKeepTheImagesSpellingAndItsTag(t *testing.T) {
	for _, tc := range []struct{ image, named, imageDigest, want string }{
		{"reg.example.com/team/app:latest", app, "", "reg.example.com/team/app:latest@" + dB},
		{"reg.example.com/team/app:latest@" + dA, app, dA, "reg.example.com/team/app:latest@" + dB},
		{"reg.example.com:5000/team/app", "reg.example.com:5000/team/app:latest", "", "reg.example.com:5000/team/app:latest@" + dB},
		{"nginx", "docker.io/library/nginx:latest", "", "nginx:latest@" + dB},
	} {
		d := Decision{Containers: []ContainerDecision{{Container: &Container{Name: "app", Image: tc.image, Named: tc.named, ImageDigest: tc.imageDigest}, Verdict: Moved, To: dB}}}
		if got := d.Pins(Settings{Pin: true})["app"]; got != tc.want {
			t.Errorf("pin of %q = %q, want %q", tc.image, got, tc.want)
		}
	}
}
