package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/scheme/reg"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/ref"
)

// Host is one registry urunner watches.
type Host struct {
	// Name is the registry as images name it: "registry.example.com:5000".
	Name string
	// PlainHTTP talks HTTP instead of HTTPS (a registry on localhost).
	PlainHTTP bool
	// SkipVerify disables TLS certificate verification for this host only.
	SkipVerify bool
	// CAPEM is an extra CA bundle trusted for this host.
	CAPEM []byte
	// Concurrency overrides Options.Concurrency for this host.
	Concurrency int
	// Provider yields the credentials; nil for anonymous access.
	Provider Provider
}

// Options configures a Resolver.
type Options struct {
	Hosts []Host
	// Accept replaces the Accept header of manifest HEAD requests; empty
	// keeps regclient's list, which accepts indexes and every manifest type.
	Accept []string
	// Concurrency is the number of requests in flight per host.
	Concurrency int
	// Timeout bounds each lookup, retries included, and each credential
	// request.
	Timeout time.Duration
	// Log receives one line per failed host; nil discards.
	Log       *slog.Logger
	UserAgent string
}

// Result is the outcome of one lookup.
type Result struct {
	Digest string
	// Index is true when the digest is a multi-platform index's: pods may
	// then report the digest of their platform's manifest instead.
	Index bool
	Err   error
}

// Resolver looks up the digests of image tags.
type Resolver struct {
	hosts map[string]Host
	opts  Options
	tr    *transport
}

// ErrNoDigest is a registry answer without a usable Docker-Content-Digest.
// It is a failed lookup, never a change.
var ErrNoDigest = errors.New("registry returned no valid Docker-Content-Digest")

// ErrHostFailed marks a lookup skipped because an earlier lookup on the
// same host failed to authenticate: retrying every image with bad
// credentials would only get the client banned (GitLab bans an IP after
// repeated failed logins).
var ErrHostFailed = errors.New("skipped: authentication to this registry already failed in this run")

// NewResolver returns a Resolver for the given hosts.
func NewResolver(opts Options) (*Resolver, error) {
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	tr, err := newTransport(opts)
	if err != nil {
		return nil, err
	}
	hosts := make(map[string]Host, len(opts.Hosts))
	for _, h := range opts.Hosts {
		if _, dup := hosts[h.Name]; dup {
			return nil, fmt.Errorf("registry %s is configured twice", h.Name)
		}
		if h.Concurrency < 1 {
			h.Concurrency = opts.Concurrency
		}
		hosts[h.Name] = h
	}
	return &Resolver{hosts: hosts, opts: opts, tr: tr}, nil
}

// Watches reports whether r is on a watched registry.
func (res *Resolver) Watches(r ref.Ref) bool {
	_, ok := res.hosts[r.Registry]
	return ok
}

// Requests returns the number of HTTP requests sent per URL host, by
// method, since the Resolver was made.
func (res *Resolver) Requests() map[string]map[string]int { return res.tr.snapshot() }

// Lookup is one reference to resolve. Pull, when set, are credentials
// from the pull secrets of the workloads using it; they apply only on a
// host configured without credentials of its own.
type Lookup struct {
	Ref  ref.Ref
	Pull *Credentials
}

// ResolveAll resolves refs; see ResolveLookups.
func (res *Resolver) ResolveAll(ctx context.Context, refs []ref.Ref) map[string]Result {
	ls := make([]Lookup, len(refs))
	for i, r := range refs {
		ls[i] = Lookup{Ref: r}
	}
	return res.ResolveLookups(ctx, ls)
}

// lookup resolves one key under its host's semaphore, records the result
// in out and, on the first refused credentials, marks the group refused.
func (res *Resolver) lookup(ctx context.Context, rc *regclient.RegClient, g *group, k string, r ref.Ref, sem chan struct{}, mu *sync.Mutex, out map[string]Result, refused *error, source string) {
	select {
	case sem <- struct{}{}:
		defer func() { <-sem }()
	case <-ctx.Done():
		mu.Lock()
		out[k] = Result{Err: fmt.Errorf("resolve %s: %w", k, ctx.Err())}
		mu.Unlock()
		return
	}
	mu.Lock()
	skip := *refused != nil
	mu.Unlock()
	if skip {
		mu.Lock()
		out[k] = Result{Err: fmt.Errorf("resolve %s: %w", k, ErrHostFailed)}
		mu.Unlock()
		return
	}
	if until, blocked := res.tr.blockedUntil(hostPort(g.host)); blocked {
		mu.Lock()
		out[k] = Result{Err: fmt.Errorf("resolve %s: %w (until %s)", k, ErrRateLimited, until.UTC().Format(time.RFC3339))}
		mu.Unlock()
		return
	}
	d, index, err := res.resolve(ctx, rc, r)
	if _, blocked := res.tr.blockedUntil(hostPort(g.host)); blocked && err != nil {
		// regclient wraps transport errors beyond errors.Is.
		err = fmt.Errorf("%w: %v", ErrRateLimited, err)
	}
	mu.Lock()
	defer mu.Unlock()
	out[k] = Result{Digest: d, Index: index, Err: err}
	if err != nil && errors.Is(err, errs.ErrHTTPUnauthorized) && *refused == nil {
		*refused = err
		res.opts.Log.Error("registry refused the credentials; skipping its other images this run",
			"registry", g.host, "credentials", source, "error", err)
	}
}

// group is the lookups that share a host and credentials, and so a client.
type group struct {
	host string
	pull *Credentials
	keys []string
}

// ResolveLookups resolves each reference once (the first Lookup of a Key
// wins), each host's Concurrency at a time, and returns the results by
// Key. Every reference must be watched and carry a tag. Credentials are
// fetched once per host that has something to resolve; credentials that
// fail or are refused are not tried again this run.
func (res *Resolver) ResolveLookups(ctx context.Context, lookups []Lookup) map[string]Result {
	unique := map[string]ref.Ref{}
	groups := map[string]*group{}
	var order []string
	for _, l := range lookups {
		k := Key(l.Ref)
		if _, dup := unique[k]; dup {
			continue
		}
		unique[k] = l.Ref
		gid := l.Ref.Registry
		if l.Pull != nil {
			gid += "\x00" + l.Pull.User + "\x00" + l.Pull.Password
		}
		g, ok := groups[gid]
		if !ok {
			g = &group{host: l.Ref.Registry, pull: l.Pull}
			groups[gid] = g
			order = append(order, gid)
		}
		g.keys = append(g.keys, k)
	}
	out := make(map[string]Result, len(unique))
	hostCreds := res.credentials(ctx, groups)
	sems := map[string]chan struct{}{}
	for _, g := range groups {
		if sems[g.host] == nil {
			// One pool per host, so a slow host does not hold back others.
			sems[g.host] = make(chan struct{}, res.hosts[g.host].Concurrency)
		}
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, gid := range order {
		g := groups[gid]
		hc := hostCreds[g.host]
		if hc.err != nil {
			for _, k := range g.keys {
				out[k] = Result{Err: fmt.Errorf("resolve %s: %w", k, hc.err)}
			}
			continue
		}
		creds, source := hc.creds, "configured credentials"
		if creds == (Credentials{}) && g.pull != nil {
			creds, source = *g.pull, "pull secret credentials"
		}
		rc := res.client(res.hosts[g.host], creds)
		var (
			refused error
			next    = make(chan string)
		)
		// A fixed pool per group, bounded by its host's concurrency: a
		// goroutine per reference would park thousands on a semaphore.
		sem := sems[g.host]
		workers := min(cap(sem), len(g.keys))
		for range workers {
			wg.Go(func() {
				for k := range next {
					res.lookup(ctx, rc, g, k, unique[k], sem, &mu, out, &refused, source)
				}
			})
		}
		wg.Go(func() {
			defer close(next)
			for _, k := range g.keys {
				next <- k
			}
		})
	}
	wg.Wait()
	res.warnRateLimits()
	return out
}

type hostCredentials struct {
	creds Credentials
	err   error
}

// credentials asks each host's provider once, for the hosts in use.
func (res *Resolver) credentials(ctx context.Context, groups map[string]*group) map[string]hostCredentials {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = map[string]hostCredentials{}
	)
	for _, g := range groups {
		h := res.hosts[g.host]
		mu.Lock()
		_, asked := out[h.Name]
		out[h.Name] = hostCredentials{}
		mu.Unlock()
		if asked || h.Provider == nil {
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, res.opts.Timeout)
			defer cancel()
			creds, err := h.Provider.Credentials(cctx)
			if err != nil {
				res.opts.Log.Error("cannot get credentials for the registry; skipping its images this run", "registry", h.Name, "error", err)
				err = fmt.Errorf("%w: %v", ErrCredentials, err)
			}
			mu.Lock()
			out[h.Name] = hostCredentials{creds: creds, err: err}
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// client returns a regclient for one host and credentials.
func (res *Resolver) client(h Host, creds Credentials) *regclient.RegClient {
	c := config.HostNewName(h.Name)
	c.TLS = config.TLSEnabled
	if h.PlainHTTP {
		c.TLS = config.TLSDisabled
	}
	c.ReqConcurrent = int64(h.Concurrency)
	c.User, c.Pass = creds.User, creds.Password
	return regclient.New(
		regclient.WithConfigHost(*c),
		regclient.WithUserAgent(res.opts.UserAgent),
		// regclient logs request details at debug level; only its warnings
		// reach urunner's log, so no header can leak at any level.
		regclient.WithSlog(slog.New(minLevel{res.opts.Log.Handler(), slog.LevelWarn})),
		regclient.WithRegOpts(reg.WithHTTPClient(&http.Client{Transport: res.tr})),
		regclient.WithRetryLimit(2),
	)
}

// Children fetches the index r names at digest, with one GET of the index
// (never of a layer), and returns the child manifest digest of each of the
// given platforms ("linux/amd64") it lists; a platform it lacks is absent.
func (res *Resolver) Children(ctx context.Context, r ref.Ref, digest string, platforms []string) (map[string]string, error) {
	h, ok := res.hosts[r.Registry]
	if !ok {
		return nil, fmt.Errorf("index %s: registry not watched", Key(r))
	}
	hc := res.credentials(ctx, map[string]*group{r.Registry: {host: r.Registry}})[r.Registry]
	if hc.err != nil {
		return nil, hc.err
	}
	ctx, cancel := context.WithTimeout(ctx, res.opts.Timeout)
	defer cancel()
	m, err := res.client(h, hc.creds).ManifestGet(ctx, r.SetDigest(digest))
	if err != nil {
		return nil, fmt.Errorf("get index %s@%s: %w", Key(r), digest, err)
	}
	idx, ok := m.(manifest.Indexer)
	if !ok {
		return nil, fmt.Errorf("get index %s@%s: not an index", Key(r), digest)
	}
	list, err := idx.GetManifestList()
	if err != nil {
		return nil, fmt.Errorf("get index %s@%s: %w", Key(r), digest, err)
	}
	want := map[string]bool{}
	for _, p := range platforms {
		want[p] = true
	}
	out := map[string]string{}
	for _, d := range list {
		if d.Platform == nil {
			continue
		}
		p := d.Platform.OS + "/" + d.Platform.Architecture
		if d.Platform.Variant != "" && want[p+"/"+d.Platform.Variant] {
			p += "/" + d.Platform.Variant
		}
		if want[p] {
			if _, dup := out[p]; !dup {
				out[p] = d.Digest.String()
			}
		}
	}
	return out, nil
}

// resolve returns the digest r's tag points at, with one HEAD request.
func (res *Resolver) resolve(ctx context.Context, rc *regclient.RegClient, r ref.Ref) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, res.opts.Timeout)
	defer cancel()
	m, err := rc.ManifestHead(ctx, r)
	if err != nil {
		return "", false, fmt.Errorf("resolve %s: %w", Key(r), err)
	}
	// regclient returns no error when the registry omits the header.
	desc := m.GetDescriptor()
	d := desc.Digest.String()
	if !validDigest(d) {
		return "", false, fmt.Errorf("resolve %s: %w (got %q)", Key(r), ErrNoDigest, d)
	}
	mt := desc.MediaType
	return d, mt == mediatype.OCI1ManifestList || mt == mediatype.Docker2ManifestList, nil
}

// warnRateLimits logs once per host whose rate limit is running low, as
// Docker Hub reports it (RateLimit-Remaining: 12;w=21600).
func (res *Resolver) warnRateLimits() {
	for host, rl := range res.tr.rateLimits() {
		if rl.low() {
			res.opts.Log.Warn("registry rate limit running low", "host", host, "remaining", rl.remaining, "limit", rl.limit, "window", rl.window)
		}
	}
}

// minLevel drops records below a level before they reach h.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}
func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(a), m.min}
}
func (m minLevel) WithGroup(g string) slog.Handler { return minLevel{m.Handler.WithGroup(g), m.min} }
