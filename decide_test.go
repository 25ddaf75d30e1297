package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/state"
)

const (
	dA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	dC = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

const img = "reg.example.com/team/app:latest"

func web(mods ...func(*kube.Workload)) kube.Workload {
	w := kube.Workload{Kind: "Deployment", Namespace: "shop", Name: "web"}
	for _, m := range mods {
		m(&w)
	}
	return w
}

func e(image, digest string) state.Entry { return state.Entry{Image: image, Digest: digest} }

var webKey = state.Key{Namespace: "shop", Kind: "Deployment", Name: "web"}

func paused(w *kube.Workload) { w.Paused = true }

func recorded(c, d string) func(*kube.Workload) {
	return func(w *kube.Workload) { w.RestartedFor = map[string]string{c: d} }
}

// The table is the specification of when urunner restarts.
func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name         string
		state        state.State
		obs          []observation
		wantRestarts []restart
		wantPaused   int
		wantState    state.State
	}{
		{
			name:      "first sight is a baseline, not a restart",
			state:     state.State{},
			obs:       []observation{{web(), []observed{{"app", img, dA, "", false, nil, false, nil}}}},
			wantState: state.State{webKey: {"app": e(img, dA)}},
		},
		{
			name:      "same digest changes nothing",
			state:     state.State{webKey: {"app": e(img, dA)}},
			obs:       []observation{{web(), []observed{{"app", img, dA, "", false, nil, false, nil}}}},
			wantState: state.State{webKey: {"app": e(img, dA)}},
		},
		{
			name:         "a moved digest restarts",
			state:        state.State{webKey: {"app": e(img, dA)}},
			obs:          []observation{{web(), []observed{{"app", img, dB, "", false, nil, false, nil}}}},
			wantRestarts: []restart{{web(), []change{{"app", img, dA, dB, nil}}}},
			wantState:    state.State{webKey: {"app": e(img, dA)}},
		},
		{
			name:  "two moved containers make one restart",
			state: state.State{webKey: {"app": e(img, dA), "init": e(img+"-init", dA)}},
			obs:   []observation{{web(), []observed{{"init", img + "-init", dB, "", false, nil, false, nil}, {"app", img, dB, "", false, nil, false, nil}}}},
			wantRestarts: []restart{{web(), []change{
				{"init", img + "-init", dA, dB, nil}, {"app", img, dA, dB, nil},
			}}},
			wantState: state.State{webKey: {"app": e(img, dA), "init": e(img+"-init", dA)}},
		},
		{
			name:      "a failed lookup keeps the stored digest",
			state:     state.State{webKey: {"app": e(img, dA)}},
			obs:       []observation{{web(), []observed{{"app", img, "", "", false, nil, false, nil}}}},
			wantState: state.State{webKey: {"app": e(img, dA)}},
		},
		{
			name:      "a failed lookup on first sight records nothing",
			state:     state.State{},
			obs:       []observation{{web(), []observed{{"app", img, "", "", false, nil, false, nil}}}},
			wantState: state.State{},
		},
		{
			name:      "a new image string is a new baseline",
			state:     state.State{webKey: {"app": e(img, dA)}},
			obs:       []observation{{web(), []observed{{"app", "reg.example.com/team/app:v2", dB, "", false, nil, false, nil}}}},
			wantState: state.State{webKey: {"app": e("reg.example.com/team/app:v2", dB)}},
		},
		{
			name:       "a paused deployment keeps its old digest",
			state:      state.State{webKey: {"app": e(img, dA)}},
			obs:        []observation{{web(paused), []observed{{"app", img, dB, "", false, nil, false, nil}}}},
			wantPaused: 1,
			wantState:  state.State{webKey: {"app": e(img, dA)}},
		},
		{
			name:      "a workload that already records the new digest is not restarted again",
			state:     state.State{webKey: {"app": e(img, dA)}},
			obs:       []observation{{web(recorded("app", dB)), []observed{{"app", img, dB, "", false, nil, false, nil}}}},
			wantState: state.State{webKey: {"app": e(img, dB)}},
		},
		{
			name:         "a digest that flips back restarts again",
			state:        state.State{webKey: {"app": e(img, dB)}},
			obs:          []observation{{web(recorded("app", dB)), []observed{{"app", img, dA, "", false, nil, false, nil}}}},
			wantRestarts: []restart{{web(recorded("app", dB)), []change{{"app", img, dB, dA, nil}}}},
			wantState:    state.State{webKey: {"app": e(img, dB)}},
		},
		{
			name:      "a workload no longer listed is forgotten",
			state:     state.State{webKey: {"app": e(img, dA)}},
			obs:       nil,
			wantState: state.State{},
		},
		{
			name:      "a container no longer tracked is forgotten",
			state:     state.State{webKey: {"app": e(img, dA), "side": e(img, dA)}},
			obs:       []observation{{web(), []observed{{"app", img, dA, "", false, nil, false, nil}, {"side", "", "", "", false, nil, false, nil}}}},
			wantState: state.State{webKey: {"app": e(img, dA)}},
		},
		{
			name:  "only the changed container of several restarts",
			state: state.State{webKey: {"app": e(img, dA), "side": e("reg.example.com/side:1", dC)}},
			obs: []observation{{web(), []observed{
				{"app", img, dB, "", false, nil, false, nil}, {"side", "reg.example.com/side:1", dC, "", false, nil, false, nil},
			}}},
			wantRestarts: []restart{{web(), []change{{"app", img, dA, dB, nil}}}},
			wantState:    state.State{webKey: {"app": e(img, dA), "side": e("reg.example.com/side:1", dC)}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := decide(tc.state, tc.obs, decideOptions{})
			if diff := cmp.Diff(tc.wantRestarts, p.Restarts); diff != "" {
				t.Errorf("restarts (-want +got):\n%s", diff)
			}
			if len(p.Paused) != tc.wantPaused {
				t.Errorf("paused = %d, want %d", len(p.Paused), tc.wantPaused)
			}
			// The state the run saves before any patch succeeded.
			if diff := cmp.Diff(tc.wantState, p.Changes.Apply(tc.state)); diff != "" {
				t.Errorf("saved state (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecidePullPolicy(t *testing.T) {
	st := state.State{webKey: {"app": e(img, dA)}}
	obs := []observation{{web(), []observed{{"app", img, dB, "IfNotPresent", false, nil, false, nil}}}}
	p := decide(st, obs, decideOptions{})
	if len(p.Restarts) != 1 || len(p.Cached) != 1 {
		t.Errorf("warn mode: %d restarts, %d flagged; want 1 and 1", len(p.Restarts), len(p.Cached))
	}
	p = decide(st, obs, decideOptions{skipCached: true})
	if len(p.Restarts) != 0 || len(p.Cached) != 1 {
		t.Errorf("skip mode: %d restarts, %d flagged; want 0 and 1", len(p.Restarts), len(p.Cached))
	}
	if diff := cmp.Diff(state.State{webKey: {"app": e(img, dB)}}, p.Changes.Apply(st)); diff != "" {
		t.Errorf("skip mode records the new digest (-want +got):\n%s", diff)
	}
	obs[0].Containers[0].PullPolicy = "Always"
	if p := decide(st, obs, decideOptions{skipCached: true}); len(p.Restarts) != 1 || len(p.Cached) != 0 {
		t.Errorf("Always: %d restarts, %d flagged; want 1 and 0", len(p.Restarts), len(p.Cached))
	}
}

func TestDecideHoldsForCooldownAndWindow(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	last := now.Add(-10 * time.Minute)
	st := state.State{webKey: {"app": {Image: img, Digest: dA, Restarted: last}}}
	obs := []observation{{web(), []observed{{"app", img, dB, "", false, nil, false, nil}}}}
	var sawLast time.Time
	hold := func(w kube.Workload, lr, n time.Time) string {
		sawLast = lr
		if n.Sub(lr) < 30*time.Minute {
			return "cooldown"
		}
		return ""
	}
	p := decide(st, obs, decideOptions{now: now, hold: hold})
	if len(p.Restarts) != 0 || len(p.Held) != 1 || p.Held[0].Reason != "cooldown" {
		t.Fatalf("restarts %d, held %+v; want the restart held for the cooldown", len(p.Restarts), p.Held)
	}
	if !sawLast.Equal(last) {
		t.Errorf("hold saw last restart %v, want %v", sawLast, last)
	}
	if diff := cmp.Diff(st, p.Changes.Apply(st)); diff != "" {
		t.Errorf("a held restart changed the state (-want +got):\n%s", diff)
	}
	p = decide(st, obs, decideOptions{now: now.Add(time.Hour), hold: hold})
	if len(p.Restarts) != 1 {
		t.Errorf("after the cooldown: %d restarts, want 1", len(p.Restarts))
	}
}

func TestDecideWithRunningPods(t *testing.T) {
	stored := state.State{webKey: {"app": e(img, dA)}}
	for _, tc := range []struct {
		name      string
		st        state.State
		c         observed
		converge  bool
		restarts  int
		wantState state.State
	}{
		{"every ready pod already runs the new digest: no restart", stored,
			observed{"app", img, dB, "", false, []string{dB}, true, nil}, false, 0, state.State{webKey: {"app": e(img, dB)}}},
		{"some pods still run the old digest: restart", stored,
			observed{"app", img, dB, "", false, []string{dA, dB}, true, nil}, false, 1, stored},
		{"not every pod ready: restart", stored,
			observed{"app", img, dB, "", false, []string{dB}, false, nil}, false, 1, stored},
		{"converge: first sight of a drifted workload restarts", state.State{},
			observed{"app", img, dB, "", false, []string{dA}, true, nil}, true, 1, state.State{}},
		{"baseline policy: first sight only records", state.State{},
			observed{"app", img, dB, "", false, []string{dA}, true, nil}, false, 0, state.State{webKey: {"app": e(img, dB)}}},
		{"converge: an index digest is not compared with pods' digests", state.State{},
			observed{"app", img, dB, "", true, []string{dA}, true, nil}, true, 0, state.State{webKey: {"app": e(img, dB)}}},
		{"converge: pods already on the registry's digest", state.State{},
			observed{"app", img, dB, "", false, []string{dB}, true, nil}, true, 0, state.State{webKey: {"app": e(img, dB)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := decide(tc.st, []observation{{web(), []observed{tc.c}}}, decideOptions{converge: tc.converge})
			if len(p.Restarts) != tc.restarts {
				t.Errorf("restarts = %d, want %d", len(p.Restarts), tc.restarts)
			}
			if diff := cmp.Diff(tc.wantState, p.Changes.Apply(tc.st)); diff != "" {
				t.Errorf("saved state (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecidePlatformAware(t *testing.T) {
	amd := map[string]string{"linux/amd64": dC}
	st := state.State{webKey: {"app": {Image: img, Digest: dA, Platforms: amd}}}
	for _, tc := range []struct {
		name     string
		children map[string]string
		restarts int
	}{
		{"only an unwatched platform moved: no restart", map[string]string{"linux/amd64": dC}, 1 - 1},
		{"the watched platform moved: restart", map[string]string{"linux/amd64": dB}, 1},
		{"children unknown: restart as without the feature", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := []observation{{web(), []observed{{"app", img, dB, "", true, nil, false, tc.children}}}}
			p := decide(st, obs, decideOptions{platformAware: true})
			if len(p.Restarts) != tc.restarts {
				t.Errorf("restarts = %d, want %d", len(p.Restarts), tc.restarts)
			}
			if tc.restarts == 0 {
				if diff := cmp.Diff(state.State{webKey: {"app": {Image: img, Digest: dB, Platforms: amd}}}, p.Changes.Apply(st)); diff != "" {
					t.Errorf("state (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestRestartRecordsItsDigestsOnSuccess(t *testing.T) {
	r := restart{web(), []change{{"app", img, dA, dB, nil}}}
	var cs state.Changes
	r.record(&cs, time.Time{})
	got := cs.Apply(state.State{webKey: {"app": e(img, dA)}})
	if diff := cmp.Diff(state.State{webKey: {"app": e(img, dB)}}, got); diff != "" {
		t.Errorf("state after a successful restart (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"app": dB}, r.digests()); diff != "" {
		t.Errorf("digests patched (-want +got):\n%s", diff)
	}
}
