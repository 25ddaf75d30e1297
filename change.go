package main

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
func (a *app) describeChanges(ctx context.Context, f *found, p *plan) {
	p.changes = map[string]string{}
	if !a.cfg.ChangeContext {
		return
	}
	type move struct {
		l        registry.Lookup
		from, to string
	}
	moves := map[string]move{}
	digests := map[string]registry.Lookup{} // ref@digest → a lookup to read it with
	for _, d := range p.decisions {
		if d.Action != policy.Restart {
			continue
		}
		for _, c := range d.Moves() {
			l := f.lookups[c.Lookup()]
			moves[c.Ref+"@"+c.From+"@"+c.To] = move{l, c.From, c.To}
			digests[c.Ref+"@"+c.From], digests[c.Ref+"@"+c.To] = l, l
		}
	}
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
