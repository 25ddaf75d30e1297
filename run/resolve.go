package run

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/signature"
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
//
// The lookups are made by now: a registry they left short of budget gets
// none of the optional reads (see spend).
func (a *app) enrich(ctx context.Context, f *found, mem state.State) {
	f.spend = newSpend(a.resolver.Short())
	if a.cfg.RunningPods {
		a.addPods(ctx, f)
	}
	if len(a.settings.Platforms) > 0 {
		a.addChildren(ctx, f, mem)
	}
	if a.cfg.RunningPods {
		a.addMembers(ctx, f, mem)
	}
	if a.signer != nil {
		a.addSignatures(ctx, f, mem)
	}
}

// signatureTimeout bounds reading one digest's signatures.
const signatureTimeout = 30 * time.Second

// addSignatures verifies, once per moved digest (a digest some container
// is believed not to run yet), its signatures, with the credentials of a
// lookup that fetched it. Nothing is verified in a steady state. A
// verdict never comes from another digest's signatures.
func (a *app) addSignatures(ctx context.Context, f *found, mem state.State) {
	type target struct{ ref, digest string }
	verdicts := map[target]*policy.Signature{}
	for _, w := range f.workloads {
		for _, c := range w.listed.policy.Containers {
			r, ok := f.results[c.Lookup()]
			if c.Ref == "" || !ok || r.Err != nil {
				continue
			}
			if b := policy.Believed(&w.listed.policy, c, mem); b == "" || b == r.Digest && !podsRunOther(c, r.Digest) {
				continue
			}
			t := target{c.Ref, r.Digest}
			if _, done := verdicts[t]; done {
				continue
			}
			verdicts[t] = a.verifySignature(ctx, f.lookups[c.Lookup()], r.Digest)
			until, waits := policy.SignatureWait(a.settings, mem, t.ref, t.digest, a.now())
			a.note(signatureChecked{t.ref, t.digest, verdicts[t], waits, until})
		}
	}
	for l, r := range f.results {
		if v, ok := verdicts[target{l.Ref, r.Digest}]; ok && r.Err == nil {
			r.Signature = v
			f.results[l] = r
		}
	}
}

func (a *app) verifySignature(ctx context.Context, l registry.Lookup, digest string) *policy.Signature {
	ctx, cancel := context.WithTimeout(ctx, signatureTimeout)
	defer cancel()
	rc, err := a.resolver.Client(ctx, l)
	if err != nil {
		return &policy.Signature{Err: err}
	}
	v, err := a.signer.Verify(ctx, rc, l.Ref.SetDigest(digest))
	if err != nil {
		return &policy.Signature{Err: err}
	}
	if v.Verified() {
		return &policy.Signature{Verified: true, Reason: "signed by " + v.By}
	}
	return &policy.Signature{Unsigned: v.Status == signature.Unsigned, Reason: v.Reason}
}

// podsRunOther reports whether c's ready pods report another digest than
// digest: a move the pods are ahead of, or a restart not delivered, which
// a gate judges like any move.
func podsRunOther(c policy.Container, digest string) bool {
	return c.Pods != nil && slices.ContainsFunc(c.Pods.Digests, func(d string) bool { return d != digest })
}

// addPods gives each container what its workload's pods run. Without the
// pods' view urunner decides as it would without the setting: never a
// reason to restart more.
func (a *app) addPods(ctx context.Context, f *found) {
	var ws []kube.Workload
	for _, w := range f.workloads {
		ws = append(ws, w.listed.kube)
	}
	running, err := a.kube.Running(ctx, f.scope, ws)
	if err != nil {
		a.note(podsUnreadable{err})
		return
	}
	for _, wl := range f.workloads {
		w := &wl.listed
		run := running[w.kube.Namespace+"/"+w.kube.Kind+"/"+w.kube.Name]
		for i, c := range w.policy.Containers {
			w.policy.Containers[i].Pods = &policy.Pods{Digests: run.Digests[c.Name], AllReady: run.Pods > 0 && run.Ready == run.Pods}
		}
	}
}

// addChildren fetches, once per reference whose index moved or is new, its
// children for the watched platforms (one GET of the index, never a layer).
// In a steady state it fetches nothing. A registry short of budget is not
// asked, and a read its rate limit refused is not guessed at: the result
// is marked Deferred, and a move onto it holds.
func (a *app) addChildren(ctx context.Context, f *found, mem state.State) {
	type children struct {
		of       map[string]string
		deferred string
	}
	fetched := map[string]children{} // ref@digest → children
	for pl, r := range f.results {
		if r.Err != nil || !r.Index {
			continue
		}
		key := pl.Ref + "@" + r.Digest
		ch, done := fetched[key]
		if !done {
			if old, ok := mem.Refs[pl.Ref].Children[r.Digest]; ok {
				ch.of = old
			} else {
				ch.of, ch.deferred = a.readChildren(ctx, f, pl, r.Digest)
			}
			fetched[key] = ch
		}
		if ch.of != nil || ch.deferred != "" {
			r.Children, r.Deferred = ch.of, ch.deferred
			f.results[pl] = r
		}
	}
}

// readChildren reads the watched platforms' children of the index pl's
// reference points at, unless its registry's budget is short; deferred
// says why they were not read, for the hold.
func (a *app) readChildren(ctx context.Context, f *found, pl policy.Lookup, digest string) (ch map[string]string, deferred string) {
	l := f.lookups[pl]
	host := l.Ref.Registry
	why := func(left string) string {
		return fmt.Sprintf("the watched platforms of index %s were not read (%s); waits for the registry budget", short(digest), left)
	}
	if f.spend.wait(host, func(w *waitedReads) { w.platforms++ }) {
		return nil, why(f.spend.left(host))
	}
	ch, err := a.resolver.Children(ctx, l, digest, a.settings.Platforms)
	if err != nil {
		a.note(platformsUnreadable{pl.Ref, err})
	}
	if registry.RateLimited(err) {
		return nil, why(host + " answered 429 (rate limited)")
	}
	return ch, ""
}

// shared returns the results as the rules read them: one Result per
// lookup, which every decision on one of its containers points at.
func (f *found) shared() policy.Results {
	m := make(map[policy.Lookup]*policy.Result, len(f.results))
	for l, r := range f.results {
		m[l] = &r
	}
	return func(l policy.Lookup) (*policy.Result, bool) {
		r, ok := m[l]
		return r, ok
	}
}

// restricted is a run that looked up only some references.
func (f *found) restricted() bool { return f.listing.Restricted }
