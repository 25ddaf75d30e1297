package run

import (
	"context"
	"maps"
	"sync"

	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/state"
)

// describeChanges reads, once per digest a restart of this run moves from
// or to, what the image says of its source (URUNNER_CONF_CHANGE_CONTEXT),
// and keeps for each move a line saying what changed, for its log line,
// Event, notification and report. Nothing is read in a steady state, nor
// for a held move; a digest that cannot be read (gone from the registry)
// just says less. What an earlier run read is not read again (the state's
// Provenance): the digest a tag moves from is the one it moved to before,
// so a move costs one manifest GET. A registry short of budget is not
// asked (see spend): its moves say what the cache knows.
//
// It returns at once, having taken the moves from the plan as decided:
// the reads run beside the PATCHes, and done is closed once p.changes is
// written. A decision taken again on a conflict is not described.
func (a *app) describeChanges(ctx context.Context, f *found, p *plan) (done <-chan struct{}) {
	p.changes, p.read = map[string]string{}, map[string]state.Provenance{}
	closed := make(chan struct{})
	if !a.cfg.ChangeContext {
		a.tellWaited(f)
		close(closed)
		return closed
	}
	moves := map[string]move{}
	digests := map[string]registry.Lookup{} // ref@digest → a lookup to read it with
	for _, w := range f.workloads {
		d := w.decision
		if d.Action != policy.Restart {
			continue
		}
		for _, c := range d.Moves() {
			l := f.lookups[c.Lookup()]
			moves[c.Ref+"@"+c.From+"@"+c.To] = move{l, c.From, c.To}
			digests[c.Ref+"@"+c.From], digests[c.Ref+"@"+c.To] = l, l
		}
	}
	known := a.knownChanges(f, p.run.Mem, digests)
	a.tellWaited(f)
	go func() {
		defer close(closed)
		a.readChanges(ctx, moves, digests, known, p)
	}()
	return closed
}

// knownChanges takes out of digests those the state's cache knows, and
// those of registries short of budget, and returns what is known of them.
func (a *app) knownChanges(f *found, mem state.State, digests map[string]registry.Lookup) map[string]registry.Provenance {
	known := map[string]registry.Provenance{}
	for key, l := range digests {
		digest := key[len(registry.Key(l.Ref))+1:]
		if pv, ok := mem.Provenance[digest]; ok {
			known[key] = registry.Provenance{Revision: pv.Revision, Source: pv.Source, Version: pv.Version, Created: pv.Created}
			delete(digests, key)
		} else if f.spend.wait(l.Ref.Registry, func(w *waitedReads) { w.changes++ }) {
			delete(digests, key)
		}
	}
	return known
}

// move is one reference's move from one digest to another.
type move struct {
	l        registry.Lookup
	from, to string
}

// readChanges reads each digest's provenance, URUNNER_CONF_REGISTRY_CONCURRENCY
// at a time per host, keeps what it read in p.read, and writes a line for
// each move that says something in p.changes. read holds what is known
// already.
func (a *app) readChanges(ctx context.Context, moves map[string]move, digests map[string]registry.Lookup, read map[string]registry.Provenance, p *plan) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sems = map[string]chan struct{}{} // per host, as many as its lookups
	)
	for key, l := range digests {
		digest := key[len(registry.Key(l.Ref))+1:]
		sem, ok := sems[l.Ref.Registry]
		if !ok {
			sem = make(chan struct{}, max(a.cfg.RegistryConcurrency, 1))
			sems[l.Ref.Registry] = sem
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			pv, err := a.resolver.Provenance(ctx, l, digest)
			if err != nil {
				a.note(changeUnreadable{registry.Key(l.Ref), digest, err})
			}
			at := a.now()
			mu.Lock()
			defer mu.Unlock()
			read[key] = pv
			if err == nil {
				p.read[digest] = state.Provenance{Revision: pv.Revision, Source: pv.Source, Version: pv.Version, Created: pv.Created, Read: at}
			}
		})
	}
	wg.Wait()
	for key, m := range moves {
		ref := registry.Key(m.l.Ref)
		if ch := registry.Change(read[ref+"@"+m.from], read[ref+"@"+m.to]); ch != "" {
			p.changes[key] = ch
		}
	}
}

// keepProvenance gives next the state's cache of what change context read:
// what was known, with what this run read, for the digests next names.
func keepProvenance(next *state.State, mem state.State, p *plan) {
	next.Provenance = maps.Clone(mem.Provenance)
	if len(p.read) > 0 && next.Provenance == nil {
		next.Provenance = make(map[string]state.Provenance, len(p.read))
	}
	maps.Copy(next.Provenance, p.read)
	state.BoundProvenance(next)
}
