package run

import (
	"context"
	"sync"

	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
)

// describeChanges reads, once per digest a restart of this run moves from
// or to, what the image says of its source (URUNNER_CONF_CHANGE_CONTEXT),
// and keeps for each move a line saying what changed, for its log line,
// Event, notification and report. Nothing is read in a steady state, nor
// for a held move; a digest that cannot be read (gone from the registry)
// just says less.
//
// It returns at once, having taken the moves from the plan as decided:
// the reads run beside the PATCHes, and done is closed once p.changes is
// written. A decision taken again on a conflict is not described.
func (a *app) describeChanges(ctx context.Context, f *found, p *plan) (done <-chan struct{}) {
	p.changes = map[string]string{}
	closed := make(chan struct{})
	if !a.cfg.ChangeContext {
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
	go func() {
		defer close(closed)
		a.readChanges(ctx, moves, digests, p.changes)
	}()
	return closed
}

// move is one reference's move from one digest to another.
type move struct {
	l        registry.Lookup
	from, to string
}

// readChanges reads each digest's provenance, URUNNER_CONF_REGISTRY_CONCURRENCY
// at a time per host, and writes a line for each move that says something.
func (a *app) readChanges(ctx context.Context, moves map[string]move, digests map[string]registry.Lookup, changes map[string]string) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sems = map[string]chan struct{}{} // per host, as many as its lookups
		read = map[string]registry.Provenance{}
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
			mu.Lock()
			read[key] = pv
			mu.Unlock()
		})
	}
	wg.Wait()
	for key, m := range moves {
		ref := registry.Key(m.l.Ref)
		if ch := registry.Change(read[ref+"@"+m.from], read[ref+"@"+m.to]); ch != "" {
			changes[key] = ch
		}
	}
}
