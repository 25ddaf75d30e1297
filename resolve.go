package main

import (
	"context"
	"strings"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/state"
)

type resolved struct {
	results map[policy.Lookup]policy.Result
	lookups map[policy.Lookup]registry.Lookup
}

// resolve looks up each lookup sent on in as it arrives, and delivers every
// result once in is closed and all are answered. References that failed
// in the last run are not used to probe a registry's credentials first.
func (a *app) resolve(ctx context.Context, in <-chan registry.Lookup, mem state.State) <-chan resolved {
	done := make(chan resolved, 1)
	suspect := registry.Suspect(func(key string) bool { return !mem.Refs[key].Failing.IsZero() })
	outcomes := a.resolver.Resolve(ctx, in, suspect)
	go func() {
		r := resolved{results: map[policy.Lookup]policy.Result{}, lookups: map[policy.Lookup]registry.Lookup{}}
		for o := range outcomes {
			pl := policy.Lookup{Ref: registry.Key(o.Ref), Cred: o.Cred}
			r.results[pl] = policy.Result{Digest: o.Digest, Index: o.Index, Err: o.Err}
			r.lookups[pl] = o.Lookup
		}
		done <- r
	}()
	return done
}

// enrich adds what some settings need beyond a digest: the pods' view
// (URUNNER_CONF_RUNNING_PODS) and a moved index's platforms
// (URUNNER_CONF_PLATFORMS).
func (a *app) enrich(ctx context.Context, f *found, mem state.State) {
	if a.cfg.RunningPods {
		a.addPods(ctx, f)
	}
	if len(a.settings.Platforms) > 0 {
		a.addChildren(ctx, f, mem)
	}
}

// addPods gives each container what its workload's pods run. Without the
// pods' view urunner decides as it would without the setting: never a
// reason to restart more.
func (a *app) addPods(ctx context.Context, f *found) {
	var ws []kube.Workload
	for _, w := range f.workloads {
		ws = append(ws, w.kube)
	}
	running, err := a.kube.Running(ctx, f.scope, ws)
	if err != nil {
		a.log.Warn("cannot read the pods' digests; deciding from the registry alone", "error", err)
		return
	}
	for _, w := range f.workloads {
		run := running[w.kube.Namespace+"/"+w.kube.Kind+"/"+w.kube.Name]
		for i, c := range w.policy.Containers {
			w.policy.Containers[i].Pods = &policy.Pods{Digests: run.Digests[c.Name], AllReady: run.Pods > 0 && run.Ready == run.Pods}
		}
	}
}

// addChildren fetches, once per reference whose index moved or is new, its
// children for the watched platforms (one GET of the index, never a layer).
// In a steady state it fetches nothing.
func (a *app) addChildren(ctx context.Context, f *found, mem state.State) {
	fetched := map[string]map[string]string{} // ref@digest → children
	for pl, r := range f.results {
		if r.Err != nil || !r.Index {
			continue
		}
		key := pl.Ref + "@" + r.Digest
		ch, done := fetched[key]
		if !done {
			if old, ok := mem.Refs[pl.Ref].Children[r.Digest]; ok {
				ch = old
			} else {
				var err error
				ch, err = a.resolver.Children(ctx, f.lookups[pl], r.Digest, a.settings.Platforms)
				if err != nil {
					a.log.Warn("cannot read the index's platforms; a move restarts as without URUNNER_CONF_PLATFORMS", "image", pl.Ref, "error", err)
				}
			}
			fetched[key] = ch
		}
		if ch != nil {
			r.Children = ch
			f.results[pl] = r
		}
	}
}

// results answers the policy's questions about lookups.
func (f *found) lookup(l policy.Lookup) (policy.Result, bool) {
	r, ok := f.results[l]
	return r, ok
}

// restricted is a run that looked up only some references.
func (f *found) restricted() bool { return f.listing.Restricted }

func lowerKind(w *watched) string { return strings.ToLower(w.kube.Kind) }
