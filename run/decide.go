package run

import (
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/urunner/urunner/notify"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/state"
)

// plan is what the decisions on the watched workloads (each in its
// workload's record) share.
type plan struct {
	run *policy.Run
	// changes say what each restart's moves change, by ref@from@to.
	changes map[string]string
	// capped is how many restarts the cap held (0 when it did not apply).
	capped int
}

// decide applies the policy to every workload, then the cap to the run.
func (a *app) decide(f *found, mem state.State, o *outcome) *plan {
	ws := make([]*policy.Workload, len(f.workloads))
	for i, w := range f.workloads {
		ws[i] = &w.listed.policy
	}
	p := &plan{run: &policy.Run{Settings: a.settings, Results: f.shared(), Mem: mem, Now: a.now(), Fleet: policy.NewFleet(ws, f.listing.Failed),
		Restricted: f.restricted()}}
	// One allocation for every decision, not one each.
	ds := make([]policy.Decision, len(ws))
	decisions := make([]*policy.Decision, len(ws))
	for i, w := range ws {
		ds[i] = p.run.Decide(w)
		decisions[i] = &ds[i]
		f.workloads[i].decision = decisions[i]
	}
	c := p.run.Cap(decisions)
	p.capped = c.Held
	o.capped, o.capReason = c.Held, c.Reason
	a.logLookups(f, o)
	a.logDecisions(f, p, o)
	return p
}

// logLookups logs each failed lookup once (a refused host once in all) and
// counts the lookups.
func (a *app) logLookups(f *found, o *outcome) {
	rateLimited := map[string]bool{}
	for _, l := range slices.SortedFunc(maps.Keys(f.results), func(x, y policy.Lookup) int {
		return strings.Compare(x.Ref+"\x00"+x.Cred, y.Ref+"\x00"+y.Cred)
	}) {
		r := f.results[l]
		o.images++
		if r.Err == nil {
			o.resolved++
			continue
		}
		o.lookupFailures++
		host, _, _ := strings.Cut(l.Ref, "/")
		var tlsErr *registry.TLSSettingError
		switch {
		case errors.Is(r.Err, registry.ErrHostFailed), errors.As(r.Err, &tlsErr):
			// The host's one error line is already logged.
			a.log.Debug("lookup skipped", "image", l.Ref, "error", r.Err)
		case errors.Is(r.Err, registry.ErrRateLimited) && rateLimited[host]:
			a.log.Debug("lookup skipped", "image", l.Ref, "error", r.Err)
		case errors.Is(r.Err, registry.ErrRateLimited):
			rateLimited[host] = true
			a.log.Error("registry rate limit: it asked to retry later than this run can wait; skipping its images this run", "registry", host, "error", r.Err)
		default:
			attrs := []any{"image", l.Ref, "error", r.Err}
			if l.Cred != "" {
				attrs = append(attrs, "pull_secret", f.secretsOf(l.Cred))
			}
			a.log.Warn("lookup failed; workloads on this image keep what they run", attrs...)
		}
		msg := r.Err.Error()
		if l.Cred != "" {
			msg = "with pull secret " + f.secretsOf(l.Cred) + ": " + msg
		}
		o.failure(failure{Image: l.Ref, Error: msg})
	}
}

// logDecisions says, once per workload, what will not happen and why, and
// counts what the decisions say.
func (a *app) logDecisions(f *found, p *plan, o *outcome) {
	o.namespaces, o.workloads = len(f.scope.Namespaces), len(f.workloads)
	refused := map[string]bool{} // ref@digest whose signature failed; one waiting for its first is no failure
	for _, wl := range f.workloads {
		w, d := &wl.listed, wl.decision
		for _, c := range d.Moves() {
			if sig := c.Result.Signature; sig != nil && !sig.Verified && !p.run.AwaitsSignature(c) && !refused[c.Ref+"@"+c.To] {
				refused[c.Ref+"@"+c.To] = true
				o.signatureFailures++
				why := sig.Reason
				if sig.Err != nil {
					why = "could not be checked: " + sig.Err.Error()
				}
				o.failure(failure{Image: c.Ref, Error: "signature of " + c.To + ": " + why})
			}
		}
		for _, c := range d.Containers {
			if c.Delivery != nil {
				a.notDelivered(w, &c, c.To, c.Delivery.Runs, c.Delivery.Cause, p.run.Fleet, o)
			}
			if c.Ahead && d.Action == policy.Hold {
				a.log.Warn("its pods already run a digest a gate has not let through; not recorded as delivered",
					"namespace", w.kube.Namespace, lowerKind(w), w.kube.Name, "container", c.Name, "image", c.Ref, "runs", c.To, "reason", d.Reason)
			}
			switch c.Verdict {
			case policy.Baseline:
				o.baselined++
			case policy.Moved:
				o.changed++
			case policy.Recorded:
				o.changed++
				if c.Risky == "" {
					a.log.Info("moved, recorded without a restart: "+c.Why, "namespace", w.kube.Namespace, lowerKind(w), w.kube.Name,
						"container", c.Name, "image", c.Ref, "from", c.From, "to", c.To)
				}
			}
			if c.Risky != "" {
				how := "restarting anyway"
				if c.Verdict == policy.Recorded {
					how = "not restarted (URUNNER_CONF_PULL_POLICY_MISMATCH=skip); recorded as running the new digest"
				}
				a.log.Warn("image moved but imagePullPolicy may keep the old one cached on nodes; "+how,
					"namespace", w.kube.Namespace, lowerKind(w), w.kube.Name, "container", c.Name, "image", c.Ref,
					"pull_policy", c.Risky, "from", c.From, "to", c.To)
			}
		}
		if d.Action == policy.Hold {
			o.held++
			a.log.Info("restart deferred: "+d.Reason, "namespace", w.kube.Namespace, lowerKind(w), w.kube.Name)
			for _, c := range d.Moves() {
				if p.run.Mem.Refs[c.Ref].Digest != c.To {
					// A digest first seen this run: told once, not every run it waits.
					o.waiting = append(o.waiting, notify.Restart{Namespace: w.kube.Namespace, Kind: w.kube.Kind, Name: w.kube.Name,
						Container: c.Name, Image: c.Ref, From: c.From, To: c.To, Pending: d.Reason})
				}
			}
		}
	}
}
