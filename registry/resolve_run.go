package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/regclient/regclient"
)

// resolveRun is one Resolve: lookups grouped by host and credentials, each
// group probed by one lookup alone before the rest fan out on the host's
// workers.
type resolveRun struct {
	ctx     context.Context
	res     *Resolver
	out     chan Outcome
	suspect func(key string) bool

	mu        sync.Mutex
	seen      map[lookupKey]bool
	groups    map[groupID]*group
	hosts     map[string]*hostQueue
	pending   int
	inputDone bool
	done      chan struct{}
	closed    bool
}

type lookupKey struct{ key, cred string }

type groupState int

const (
	waiting      groupState = iota // no probe in flight, not proven
	probing                        // one lookup in flight alone
	open                           // proven: lookups fan out
	refusedCreds                   // refused twice: the rest is skipped
	noCreds                        // the provider failed: everything fails
)

type group struct {
	id         groupID
	state      groupState
	rc         *regclient.RegClient
	err        error
	queued     []Lookup
	suspects   []Lookup
	probeFails int
}

func newResolveRun(ctx context.Context, res *Resolver, opts []ResolveOption) *resolveRun {
	r := &resolveRun{
		ctx: ctx, res: res, out: make(chan Outcome, 64), suspect: func(string) bool { return false },
		seen: map[lookupKey]bool{}, groups: map[groupID]*group{}, hosts: map[string]*hostQueue{},
		done: make(chan struct{}),
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

func (r *resolveRun) run(in <-chan Lookup) {
	for l := range in {
		r.add(l)
	}
	r.endInput()
	<-r.done
	for _, q := range r.hosts {
		q.close()
	}
	r.res.warnRateLimits()
	close(r.out)
}

// add takes one lookup: skipped if seen, failed at once if its group is
// refused, probed if its group waits for a probe, else queued or run.
func (r *resolveRun) add(l Lookup) {
	r.mu.Lock()
	k := lookupKey{Key(l.Ref), l.Cred}
	if r.seen[k] {
		r.mu.Unlock()
		return
	}
	r.seen[k] = true
	r.pending++
	if _, ok := r.res.hosts[l.Ref.Registry]; !ok {
		r.mu.Unlock()
		r.finish(Outcome{l, Result{Err: fmt.Errorf("resolve %s: registry not watched", Key(l.Ref))}})
		return
	}
	g := r.group(l)
	var now []Outcome
	switch g.state {
	case open:
		r.dispatch(g, l)
	case refusedCreds:
		now = append(now, Outcome{l, Result{Err: fmt.Errorf("resolve %s: %w", Key(l.Ref), g.err)}})
	case noCreds:
		now = append(now, Outcome{l, Result{Err: fmt.Errorf("resolve %s: %w", Key(l.Ref), g.err)}})
	case probing:
		r.queue(g, l)
	case waiting:
		if r.suspect(k.key) {
			g.suspects = append(g.suspects, l)
		} else {
			r.probe(g, l)
		}
	}
	r.mu.Unlock()
	r.finish(now...)
}

func (r *resolveRun) group(l Lookup) *group {
	id := groupID{l.Ref.Registry, l.Cred}
	g := r.groups[id]
	if g == nil {
		g = &group{id: id}
		r.groups[id] = g
	}
	return g
}

func (r *resolveRun) queue(g *group, l Lookup) {
	if r.suspect(Key(l.Ref)) {
		g.suspects = append(g.suspects, l)
	} else {
		g.queued = append(g.queued, l)
	}
}

func (r *resolveRun) host(name string) *hostQueue {
	q := r.hosts[name]
	if q == nil {
		q = newHostQueue(r.res.hosts[name].Concurrency)
		r.hosts[name] = q
	}
	return q
}

// probe sends l alone for g (r.mu held).
func (r *resolveRun) probe(g *group, l Lookup) {
	g.state = probing
	r.host(g.id.host).push(func() {
		r.mu.Lock()
		rc := g.rc
		r.mu.Unlock()
		if rc == nil {
			var err error
			if rc, err = r.res.clientFor(r.ctx, l); err != nil {
				r.credentialsFailed(g, l, err)
				return
			}
			r.mu.Lock()
			g.rc = rc
			r.mu.Unlock()
		}
		r.probed(g, l, r.res.resolve(r.ctx, rc, g.id.host, l.Ref))
	})
}

// dispatch runs l on its host's workers (r.mu held, g open).
func (r *resolveRun) dispatch(g *group, l Lookup) {
	rc := g.rc
	r.host(g.id.host).push(func() {
		r.finish(Outcome{l, r.res.resolve(r.ctx, rc, g.id.host, l.Ref)})
	})
}

func (r *resolveRun) credentialsFailed(g *group, l Lookup, err error) {
	r.mu.Lock()
	g.state, g.err = noCreds, err
	out := []Outcome{{l, Result{Err: fmt.Errorf("resolve %s: %w", Key(l.Ref), err)}}}
	for _, q := range append(g.queued, g.suspects...) {
		out = append(out, Outcome{q, Result{Err: fmt.Errorf("resolve %s: %w", Key(q.Ref), err)}})
	}
	g.queued, g.suspects = nil, nil
	r.mu.Unlock()
	r.finish(out...)
}

// probed settles g after its probe: proven unless the registry refused
// two repositories in a row.
func (r *resolveRun) probed(g *group, l Lookup, res Result) {
	r.mu.Lock()
	out := []Outcome{{l, res}}
	if res.Err != nil && refused(res.Err) {
		g.probeFails++
	}
	var tlsErr *TLSSettingError
	switch {
	case res.Err != nil && errors.As(res.Err, &tlsErr):
		// Every lookup would fail alike: one line, no more requests.
		g.state, g.err = refusedCreds, fmt.Errorf("%w: %w", ErrHostFailed, tlsErr)
		r.res.opts.Log.Error("the registry's TLS does not match its configuration; skipping its images this run",
			"registry", g.id.host, "error", tlsErr)
		for _, q := range append(g.queued, g.suspects...) {
			out = append(out, Outcome{q, Result{Err: fmt.Errorf("resolve %s: %w", Key(q.Ref), g.err)}})
		}
		g.queued, g.suspects = nil, nil
	case res.Err == nil || !refused(res.Err):
		g.state = open
		for _, q := range append(g.queued, g.suspects...) {
			r.dispatch(g, q)
		}
		g.queued, g.suspects = nil, nil
	case g.probeFails >= 2:
		g.state = refusedCreds
		source := "configured credentials"
		if g.id.cred != "" {
			source = "pull secret " + l.Source
		}
		r.res.opts.Log.Error("registry refused the credentials for two repositories; skipping its other images this run",
			"registry", g.id.host, "credentials", source, "error", res.Err)
		g.err = fmt.Errorf("%w (it refused the %s for two repositories)", ErrHostFailed, source)
		for _, q := range append(g.queued, g.suspects...) {
			out = append(out, Outcome{q, Result{Err: fmt.Errorf("resolve %s: %w", Key(q.Ref), g.err)}})
		}
		g.queued, g.suspects = nil, nil
	default:
		// Only this repository may be refused: try another alone.
		g.state = waiting
		r.next(g)
	}
	r.mu.Unlock()
	r.finish(out...)
}

// next probes g's next waiting lookup, a suspect only once the input has
// ended (r.mu held).
func (r *resolveRun) next(g *group) {
	switch {
	case len(g.queued) > 0:
		l := g.queued[0]
		g.queued = g.queued[1:]
		r.probe(g, l)
	case r.inputDone && len(g.suspects) > 0:
		l := g.suspects[0]
		g.suspects = g.suspects[1:]
		r.probe(g, l)
	}
}

func (r *resolveRun) endInput() {
	r.mu.Lock()
	r.inputDone = true
	for _, g := range r.groups {
		if g.state == waiting {
			r.next(g)
		}
	}
	r.mu.Unlock()
	r.finish()
}

// finish sends outcomes and closes done when nothing is left.
func (r *resolveRun) finish(out ...Outcome) {
	for _, o := range out {
		r.out <- o
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending -= len(out)
	if r.pending == 0 && r.inputDone && !r.closed {
		r.closed = true
		close(r.done)
	}
}

// hostQueue runs a host's lookups on a fixed pool of workers: a goroutine
// per reference would park thousands on a semaphore.
type hostQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	tasks   []func()
	closed  bool
	workers int
	started bool
	wg      sync.WaitGroup
}

func newHostQueue(workers int) *hostQueue {
	q := &hostQueue{workers: max(workers, 1)}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *hostQueue) push(f func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.started {
		q.started = true
		for range q.workers {
			q.wg.Go(q.work)
		}
	}
	q.tasks = append(q.tasks, f)
	q.cond.Signal()
}

func (q *hostQueue) work() {
	for {
		q.mu.Lock()
		for len(q.tasks) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.tasks) == 0 {
			q.mu.Unlock()
			return
		}
		f := q.tasks[0]
		q.tasks[0] = nil
		q.tasks = q.tasks[1:]
		q.mu.Unlock()
		f()
	}
}

func (q *hostQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	q.wg.Wait()
}
