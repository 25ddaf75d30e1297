package main

import (
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/state"
)

// observed is one container of a listed workload, with what the registry
// said about its image this run.
type observed struct {
	Name string
	// Image is the canonical registry/repository:tag; "" when the image is
	// not tracked (pinned by digest, another registry, not a registry image).
	Image string
	// Digest is the current digest; "" when the lookup failed.
	Digest string
	// PullPolicy is the container's imagePullPolicy.
	PullPolicy string
	// Index is true when Digest is a multi-platform index's.
	Index bool
	// Running are the digests the workload's ready pods report for the
	// container, and AllReady whether every pod is ready (with
	// URUNNER_CONF_RUNNING_PODS; empty otherwise).
	Running  []string
	AllReady bool
	// Children are the current index's child digests for the watched
	// platforms, when fetched (URUNNER_CONF_PLATFORMS); nil otherwise.
	Children map[string]string
}

// observation is a listed workload and its containers.
type observation struct {
	Workload   kube.Workload
	Containers []observed
}

// change is one container whose digest moved.
type change struct {
	Container, Image, From, To string
	// Platforms are the new index's children, recorded with the digest.
	Platforms map[string]string
}

// cachedRisk is a moved container whose pull policy lets a node start the
// old image it has cached: a restart may change nothing.
type cachedRisk struct {
	Workload kube.Workload
	change
	PullPolicy string
}

// restart is one workload to patch, once, for all its changed containers.
type restart struct {
	Workload kube.Workload
	Changes  []change
}

// digests returns container → new digest, what the patch records.
func (r restart) digests() map[string]string {
	m := make(map[string]string, len(r.Changes))
	for _, c := range r.Changes {
		m[c.Container] = c.To
	}
	return m
}

// record adds to cs the entries a successful restart at a time makes true.
func (r restart) record(cs *state.Changes, at time.Time) {
	k := keyOf(r.Workload)
	for _, c := range r.Changes {
		cs.Put(k, c.Container, state.Entry{Image: c.Image, Digest: c.To, Restarted: at, Platforms: c.Platforms})
	}
}

// plan is what a run does, decided before it does anything.
type plan struct {
	// Restarts are the workloads to patch. Their state entries are added
	// only once the patch succeeded.
	Restarts []restart
	// Paused are Deployments with a change that waits for them to resume;
	// their stored digests stay as they were.
	Paused []restart
	// Changes are the state edits that need no patch: baselines, entries a
	// concurrent run already restarted for, and pruning.
	Changes state.Changes
	// Baselined counts containers seen for the first time (or with a new
	// image), recorded without a restart.
	Baselined int
	// AlreadyDone counts containers whose workload already records the
	// new digest (a run that crashed after patching, or an overlapping run).
	AlreadyDone int
	// Cached are moved containers whose pull policy is not Always. With
	// skipCached they are recorded without a restart, else restarted.
	Cached []cachedRisk
	// Held are restarts a cooldown or a maintenance window defers.
	Held []held
	// AlreadyRunning counts moved containers whose ready pods all run the
	// new digest already: recorded, not restarted.
	AlreadyRunning int
	// OtherPlatforms counts moved indexes whose watched platforms' children
	// did not move: recorded, not restarted.
	OtherPlatforms int
}

// decideOptions are the policy's settings.
type decideOptions struct {
	// skipCached records, without a restart, a moved container whose
	// imagePullPolicy (IfNotPresent, Never) may keep the old image.
	skipCached bool
	// now is the run's time, for cooldowns and windows.
	now time.Time
	// converge restarts, on first sight, a workload whose ready pods all
	// run another digest than the registry's (first-run policy converge).
	converge bool
	// platformAware restarts for a moved index only when the children of
	// the watched platforms moved.
	platformAware bool
	// hold, when set, says why a workload may not restart now ("" if it
	// may): a cooldown not yet over, a closed maintenance window.
	hold func(w kube.Workload, lastRestart time.Time, now time.Time) string
}

// held is a restart that waits, with its reason; its digests stay stored
// as they were so that a later run applies it.
type held struct {
	restart
	Reason string
}

func keyOf(w kube.Workload) state.Key {
	return state.Key{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name}
}

// decide is the whole policy of a run, free of I/O:
//   - a container seen for the first time, or whose image changed, is
//     baselined: recorded, not restarted;
//   - a failed lookup changes nothing, not even the stored digest;
//   - a stored digest that differs from a successful lookup restarts the
//     workload, once for all its changed containers, unless the workload is
//     paused or already records the new digest;
//   - a moved container whose pull policy is not Always is flagged; with
//     skipCached it is recorded instead of restarted;
//   - entries of workloads and containers no longer listed are pruned:
//     the listing is complete, or decide is not called.
func decide(st state.State, obs []observation, opts decideOptions) plan {
	var p plan
	listed := make(map[state.Key]bool, len(obs))
	for _, o := range obs {
		k := keyOf(o.Workload)
		listed[k] = true
		tracked := map[string]bool{}
		var r restart
		for _, c := range o.Containers {
			if c.Image == "" {
				continue
			}
			tracked[c.Name] = true
			if c.Digest == "" {
				continue
			}
			old, ok := st.Get(k, c.Name)
			runsOnly := func(d string) bool { return c.AllReady && len(c.Running) == 1 && c.Running[0] == d }
			switch {
			case (!ok || old.Image != c.Image) && opts.converge && c.AllReady && len(c.Running) > 0 &&
				!slices.Contains(c.Running, c.Digest) && !c.Index:
				// The pods run something else than the tag names now. An
				// index's digest is not compared: pods may report their
				// platform's manifest digest instead.
				r.Changes = append(r.Changes, change{Container: c.Name, Image: c.Image, From: c.Running[0], To: c.Digest, Platforms: c.Children})
			case !ok || old.Image != c.Image:
				p.Changes.Put(k, c.Name, state.Entry{Image: c.Image, Digest: c.Digest, Platforms: c.Children})
				p.Baselined++
			case old.Digest == c.Digest:
			case runsOnly(c.Digest):
				// Someone (or something) restarted it already.
				p.Changes.Put(k, c.Name, state.Entry{Image: c.Image, Digest: c.Digest, Restarted: old.Restarted, Platforms: c.Children})
				p.AlreadyRunning++
			case opts.platformAware && c.Index && len(c.Children) > 0 && maps.Equal(old.Platforms, c.Children):
				// The index moved for platforms no pod runs on.
				p.Changes.Put(k, c.Name, state.Entry{Image: c.Image, Digest: c.Digest, Restarted: old.Restarted, Platforms: c.Children})
				p.OtherPlatforms++
			case o.Workload.RestartedFor[c.Name] == c.Digest:
				p.Changes.Put(k, c.Name, state.Entry{Image: c.Image, Digest: c.Digest, Restarted: old.Restarted, Platforms: c.Children})
				p.AlreadyDone++
			default:
				ch := change{Container: c.Name, Image: c.Image, From: old.Digest, To: c.Digest, Platforms: c.Children}
				if c.PullPolicy == string(corev1.PullIfNotPresent) || c.PullPolicy == string(corev1.PullNever) {
					p.Cached = append(p.Cached, cachedRisk{Workload: o.Workload, change: ch, PullPolicy: c.PullPolicy})
					if opts.skipCached {
						p.Changes.Put(k, c.Name, state.Entry{Image: c.Image, Digest: c.Digest, Platforms: c.Children})
						continue
					}
				}
				r.Changes = append(r.Changes, ch)
			}
		}
		for name := range st[k] {
			if !tracked[name] {
				p.Changes.ForgetContainer(k, name)
			}
		}
		if len(r.Changes) == 0 {
			continue
		}
		r.Workload = o.Workload
		switch {
		case o.Workload.Paused:
			p.Paused = append(p.Paused, r)
		case opts.hold != nil && opts.hold(o.Workload, st.LastRestart(k), opts.now) != "":
			p.Held = append(p.Held, held{r, opts.hold(o.Workload, st.LastRestart(k), opts.now)})
		default:
			p.Restarts = append(p.Restarts, r)
		}
	}
	for _, k := range st.Keys() {
		if !listed[k] {
			p.Changes.ForgetWorkload(k)
		}
	}
	return p
}
