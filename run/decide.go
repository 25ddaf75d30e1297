package run

import (
	"maps"
	"slices"
	"strings"

	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/state"
)

// plan is what the decisions on the watched workloads (each in its
// workload's record) share.
type plan struct {
	run *policy.Run
	// changes say what each restart's moves change, by ref@from@to.
	changes map[string]string
	// read is what change context read of digests in this run, for the
	// state's cache (state.Provenance).
	read map[string]state.Provenance
	// capped is how many restarts the cap held (0 when it did not apply).
	capped int
}

// decide applies the policy to every workload, then the cap to the run,
// and writes each decision in its workload's record.
func (a *app) decide(f *found, mem state.State) *plan {
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
	a.note(capped{c.Held, c.Reason})
	for _, l := range slices.SortedFunc(maps.Keys(f.results), func(x, y policy.Lookup) int {
		return strings.Compare(x.Ref+"\x00"+x.Cred, y.Ref+"\x00"+y.Cred)
	}) {
		lu := lookedUp{l: l, err: f.results[l].Err}
		if lu.err != nil && l.Cred != "" {
			lu.secrets = f.secretsOf(l.Cred)
		}
		a.note(lu)
	}
	a.note(watchedCount{len(f.scope.Namespaces), len(f.workloads)})
	for _, w := range f.workloads {
		a.note(decided{&w.listed, w.decision, p.run})
	}
	return p
}
