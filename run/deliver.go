package run

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/state"
)

// A restart is delivered when the pods it started run the digest it was
// for. A rollout can complete and still not deliver it: a node starts the
// image it cached under the tag (IfNotPresent), a mirror or pull-through
// cache serves the tag stale, or the tag moves again while the pods start.
// urunner checks it from the pods' imageIDs where it reads pods: after a
// verified rollout (URUNNER_CONF_VERIFY_ROLLOUT), and on every run that
// reads the pods (URUNNER_CONF_RUNNING_PODS), which finishes the check a
// run that did not wait could not make.

func shortList(ds []string) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = short(d)
	}
	return strings.Join(out, ", ")
}

// checkDelivered reads, once workload i's verified rollout completed, what
// its ready pods run, and returns for each moved container the digests
// they run other than the one restarted for (none: delivered). A failed
// read is not a mismatch: the next run that reads the pods checks again.
func (a *app) checkDelivered(ctx context.Context, f *found, w *listed, d *policy.Decision) (map[string][]string, error) {
	running, err := a.kube.Running(ctx, kube.Scope{Namespaces: []string{w.kube.Namespace}, PerNamespace: true}, []kube.Workload{w.kube})
	if err != nil {
		return nil, err
	}
	run := running[w.kube.Namespace+"/"+w.kube.Kind+"/"+w.kube.Name]
	out := map[string][]string{}
	for _, c := range d.Moves() {
		accepted, err := a.acceptedDigests(ctx, f, c)
		if err != nil {
			return nil, err
		}
		var other []string
		for _, got := range run.Digests[c.Name] {
			if !accepted[got] {
				other = append(other, got)
			}
		}
		if len(other) > 0 {
			out[c.Name] = other
		}
	}
	return out, nil
}

// acceptedDigests are the digests a pod restarted for c.To may report: the
// digest, and when it is an index, each of its manifests (runtimes other
// than containerd report the platform's).
func (a *app) acceptedDigests(ctx context.Context, f *found, c policy.ContainerDecision) (map[string]bool, error) {
	accepted := map[string]bool{c.To: true}
	if c.Result == nil || !c.Result.Index {
		return accepted, nil
	}
	members, err := a.resolver.Members(ctx, f.lookups[c.Lookup()], c.To)
	if err != nil {
		return nil, fmt.Errorf("read the manifests of index %s@%s: %w", c.Ref, c.To, err)
	}
	for _, m := range members {
		accepted[m] = true
	}
	return accepted, nil
}

// addMembers reads, for each index whose workloads' pods may run one of
// its platforms' manifests instead of what they were restarted for, the
// index's manifests (one GET of the index, never a layer): the delivery
// check can then tell a platform's digest from another image's. Nothing
// is read while the pods report the index's digest, as containerd does.
func (a *app) addMembers(ctx context.Context, f *found, mem state.State) {
	read := map[policy.Lookup]bool{}
	for _, w := range f.workloads {
		for _, c := range w.listed.policy.Containers {
			r, ok := f.results[c.Lookup()]
			if !ok || r.Err != nil || !r.Index || read[c.Lookup()] || !mayNotBeDelivered(&w.listed.policy, c, r.Digest, mem) {
				continue
			}
			read[c.Lookup()] = true
			members, err := a.resolver.Members(ctx, f.lookups[c.Lookup()], r.Digest)
			if err != nil {
				a.note(manifestsUnreadable{c.Ref, err})
				continue
			}
			r.Members = members
			f.results[c.Lookup()] = r
		}
	}
}

// mayNotBeDelivered reports whether c's workload records a restart for
// digest and its ready pods report something else.
func mayNotBeDelivered(w *policy.Workload, c policy.Container, digest string, mem state.State) bool {
	if c.Pods == nil || !w.Healthy || w.RestartedFor[c.Name] != (policy.Record{Ref: c.Ref, Digest: digest}) {
		return false
	}
	known := mem.Refs[c.Ref].Children[digest]
	return slices.ContainsFunc(c.Pods.Digests, func(d string) bool {
		if d == digest {
			return false
		}
		for _, ch := range known {
			if ch == d {
				return false
			}
		}
		return true
	})
}
