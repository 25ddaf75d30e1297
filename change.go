package main

import (
	"context"
	"sync"

	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
)

// changeMoves are the moves describeChanges reads the sources of, by
// ref@from@to, and a lookup to read each digest (by ref@digest) with.
type changeMoves struct {
	moves   map[string]changeMove
	digests map[string]registry.Lookup
}

type changeMove struct {
	l        registry.Lookup
	from, to string
}

// movesToDescribe takes the restarts' moves before the PATCHes start: a
// refused or conflicting PATCH changes its decision while the sources
// are read.
func (a *app) movesToDescribe(f *found, p *plan) changeMoves {
	ms := changeMoves{moves: map[string]changeMove{}, digests: map[string]registry.Lookup{}}
	if !a.cfg.ChangeContext {
		return ms
	}
	for _, d := range p.decisions {
		if d.Action != policy.Restart {
			continue
		}
		for _, c := range d.Moves() {
			l := f.lookups[c.Lookup()]
			ms.moves[c.Ref+"@"+c.From+"@"+c.To] = changeMove{l, c.From, c.To}
			ms.digests[c.Ref+"@"+c.From], ms.digests[c.Ref+"@"+c.To] = l, l
		}
	}
	return ms
}

// describeChanges reads, once per digest a restart of this run moves from
// or to, what the image says of its source (URUNNER_CONF_CHANGE_CONTEXT),
// and keeps for each move a line saying what changed, for its log line,
// Event, notification and report. Nothing is read in a steady state, nor
// for a held move; a digest that cannot be read (gone from the registry)
// just says less.
func (a *app) describeChanges(ctx context.Context, ms changeMoves, p *plan) {
	p.changes = map[string]string{}
	moves, digests := ms.moves, ms.digests
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sem  = make(chan struct{}, max(a.cfg.RegistryConcurrency, 1)) // as many as one host's lookups
		read = map[string]registry.Provenance{}
	)
	for key, l := range digests {
		digest := key[len(registry.Key(l.Ref))+1:]
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			pv, err := a.resolver.Provenance(ctx, l, digest)
			if err != nil {
				a.log.Debug("cannot read what the image says of its source", "image", registry.Key(l.Ref), "digest", digest, "error", err)
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
			p.changes[key] = ch
		}
	}
}
