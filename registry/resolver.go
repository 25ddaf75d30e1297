package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/scheme/reg"
	"github.com/regclient/regclient/types/descriptor"
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
	// CAPEM is an extra CA bundle trusted for this host (and its token
	// service).
	CAPEM []byte
	// Concurrency overrides Options.Concurrency for this host.
	Concurrency int
	// Provider yields the credentials; nil for anonymous access.
	Provider Provider
	// Advice says what to change when the registry's TLS does not match
	// the configuration.
	Advice TLSAdvice
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
	// Log receives one line per refused credentials; nil discards.
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

	mu      sync.Mutex
	clients map[groupID]*regclient.RegClient
	creds   map[string]*hostCreds
	schemes map[string]*hostScheme
}

// ErrNoDigest is a registry answer without a usable Docker-Content-Digest.
// It is a failed lookup, never a change.
var ErrNoDigest = errors.New("registry returned no valid Docker-Content-Digest")

// ErrHostFailed marks a lookup skipped because its registry failed in a way
// that fails every lookup, once already logged: it refused its credentials
// for two different repositories in this run (retrying every image with
// bad credentials would only get the client banned: GitLab bans an
// address after repeated failed logins), or its TLS does not match its
// configuration.
var ErrHostFailed = errors.New("skipped: this registry failed earlier in the run")

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
	return &Resolver{hosts: hosts, opts: opts, tr: tr, clients: map[groupID]*regclient.RegClient{}, creds: map[string]*hostCreds{}, schemes: map[string]*hostScheme{}}, nil
}

// Watches reports whether r is on a watched registry.
func (res *Resolver) Watches(r ref.Ref) bool {
	_, ok := res.hosts[r.Registry]
	return ok
}

// UsesPullSecrets reports whether lookups on host may use the workloads'
// pull secrets: only a registry configured without credentials of its own.
func (res *Resolver) UsesPullSecrets(host string) bool {
	h, ok := res.hosts[host]
	if !ok {
		return false
	}
	if h.Provider == nil {
		return true
	}
	b, isBasic := h.Provider.(basic)
	return isBasic && b.creds == (Credentials{})
}

// Requests returns the number of HTTP requests sent per URL host, by
// method, since the Resolver was made.
func (res *Resolver) Requests() map[string]map[string]int { return res.tr.snapshot() }

// Lookup is one reference to resolve with one set of credentials.
type Lookup struct {
	Ref ref.Ref
	// Cred names the credentials: "" for the host's configured ones (or
	// none), else a workload's pull secret (Pull). Lookups of one reference
	// with different Creds are distinct: each workload sees only the
	// digest its own credentials fetched.
	Cred string
	Pull *Credentials
	// Source names where Pull came from ("shop/regcred"), for messages.
	Source string
}

// Outcome is a lookup and its result.
type Outcome struct {
	Lookup
	Result
}

// ResolveAll resolves refs with the configured credentials and returns
// the results by Key.
func (res *Resolver) ResolveAll(ctx context.Context, refs []ref.Ref) map[string]Result {
	in := make(chan Lookup, len(refs))
	for _, r := range refs {
		in <- Lookup{Ref: r}
	}
	close(in)
	out := map[string]Result{}
	for o := range res.Resolve(ctx, in) {
		out[Key(o.Ref)] = o.Result
	}
	return out
}

// Resolve resolves the lookups arriving on in, each once, and sends each
// outcome on the channel it returns, which is closed once in is closed and
// every lookup is done. Lookups start as soon as they arrive, so a caller
// can feed them while it still lists workloads.
//
// Per host and credentials, the first lookup goes alone: it takes the
// registry's auth challenge once, and the others then reuse the token or
// basic credentials instead of each taking its own. When the registry
// refuses it (401, 403), a second lookup of another repository goes alone
// too: a refusal of both means the credentials are bad and the rest of that
// host and credentials is skipped this run (ErrHostFailed); a success means
// only the first repository is refused, and the others proceed. Lookups
// marked Suspect (failing in the last run) are not used as the first one
// while others are waiting, so one refused repository cannot starve its
// host run after run.
func (res *Resolver) Resolve(ctx context.Context, in <-chan Lookup, opts ...ResolveOption) <-chan Outcome {
	r := newResolveRun(ctx, res, opts)
	go r.run(in)
	return r.out
}

// ResolveOption adjusts one Resolve.
type ResolveOption func(*resolveRun)

// Suspect marks references (by Key) whose lookups failed last run.
func Suspect(f func(key string) bool) ResolveOption {
	return func(r *resolveRun) { r.suspect = f }
}

// Children fetches the index r names at digest, with one GET of the index
// (never of a layer), and returns the child manifest digest of each of the
// given platforms ("linux/amd64") it lists; a platform it lacks is absent.
// It uses the credentials of l.
func (res *Resolver) Children(ctx context.Context, l Lookup, digest string, platforms []string) (map[string]string, error) {
	list, err := res.index(ctx, l, digest)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range platforms {
		node, err := ParsePlatform(p)
		if err != nil {
			return nil, err
		}
		// The child a node of this platform pulls: its own, else the best
		// it can run.
		best := 0
		for _, d := range list {
			if d.Platform == nil {
				continue
			}
			have := Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}
			if rank, ok := node.runs(have); ok && rank > best {
				best, out[p] = rank, d.Digest.String()
			}
		}
	}
	return out, nil
}

// Members fetches the index r names at digest, with one GET of the index
// (never of a layer), and returns every manifest digest it lists: what a
// pod started from the index may report as its image.
func (res *Resolver) Members(ctx context.Context, l Lookup, digest string) ([]string, error) {
	list, err := res.index(ctx, l, digest)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, d := range list {
		out = append(out, d.Digest.String())
	}
	return out, nil
}

// index GETs the index l's reference names at digest and returns its
// manifests' descriptors.
func (res *Resolver) index(ctx context.Context, l Lookup, digest string) ([]descriptor.Descriptor, error) {
	rc, err := res.clientFor(ctx, l)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, res.opts.Timeout)
	defer cancel()
	r := l.Ref
	m, err := rc.ManifestGet(ctx, r.SetDigest(digest))
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
	return list, nil
}

// Client returns a regclient client with l's credentials and TLS settings,
// for reading more of an image than its digest (signatures, labels).
func (res *Resolver) Client(ctx context.Context, l Lookup) (*regclient.RegClient, error) {
	return res.clientFor(ctx, l)
}

type groupID struct{ host, cred string }

// hostCreds are a host's configured credentials, asked once.
type hostCreds struct {
	once  sync.Once
	creds Credentials
	err   error
}

// credentials asks the host's provider once per Resolver.
func (res *Resolver) credentials(ctx context.Context, host string) (Credentials, error) {
	res.mu.Lock()
	hc := res.creds[host]
	if hc == nil {
		hc = &hostCreds{}
		res.creds[host] = hc
	}
	res.mu.Unlock()
	hc.once.Do(func() {
		h := res.hosts[host]
		if h.Provider == nil {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, res.opts.Timeout)
		defer cancel()
		hc.creds, hc.err = h.Provider.Credentials(cctx)
		if hc.err != nil {
			res.opts.Log.Error("cannot get credentials for the registry; skipping its images this run", "registry", host, "error", hc.err)
			hc.err = fmt.Errorf("%w: %v", ErrCredentials, hc.err)
		}
	})
	return hc.creds, hc.err
}

// plainHTTP says whether to speak plain HTTP to h. A registry named
// without a scheme whose TLS verification is off is what Docker calls an
// insecure registry: TLS if it answers a TLS handshake, else HTTP. That is
// decided once per run with a handshake, before any request (nothing is
// asked of the registry itself), and said once in the log when it falls
// back to HTTP. Through a proxy nothing is tried: TLS.
func (res *Resolver) plainHTTP(ctx context.Context, h Host) bool {
	if h.PlainHTTP || !h.SkipVerify {
		return h.PlainHTTP
	}
	res.mu.Lock()
	hs := res.schemes[h.Name]
	if hs == nil {
		hs = &hostScheme{}
		res.schemes[h.Name] = hs
	}
	res.mu.Unlock()
	hs.once.Do(func() {
		addr := hostPort(h.Name)
		if u, err := http.ProxyFromEnvironment(&http.Request{URL: &url.URL{Scheme: "https", Host: addr}}); err != nil || u != nil {
			return
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			addr = net.JoinHostPort(addr, "443")
		}
		hctx, cancel := context.WithTimeout(ctx, min(res.opts.Timeout, 10*time.Second))
		defer cancel()
		d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //#nosec G402 -- only asks whether it speaks TLS; verification is off for this host by configuration
		conn, err := d.DialContext(hctx, "tcp", addr)
		if err == nil {
			_ = conn.Close()
			return
		}
		if answeredPlainHTTP(err) || port == "" && errors.Is(err, syscall.ECONNREFUSED) {
			hs.plain = true
			res.opts.Log.Warn("the registry does not speak TLS; talking plain HTTP to it, as its TLS verification is off (name it http://… to skip the TLS attempt)",
				"registry", h.Name)
		}
	})
	return hs.plain
}

// hostScheme is whether a registry speaks plain HTTP, decided once.
type hostScheme struct {
	once  sync.Once
	plain bool
}

// clientFor returns the client of l's host and credentials, made once.
func (res *Resolver) clientFor(ctx context.Context, l Lookup) (*regclient.RegClient, error) {
	h, ok := res.hosts[l.Ref.Registry]
	if !ok {
		return nil, fmt.Errorf("%s: registry not watched", Key(l.Ref))
	}
	creds, err := res.credentials(ctx, h.Name)
	if err != nil {
		return nil, err
	}
	credential := ""
	if l.Cred != "" && l.Pull != nil && creds == (Credentials{}) {
		creds, credential = *l.Pull, l.Source
	}
	h.PlainHTTP = res.plainHTTP(ctx, h)
	id := groupID{h.Name, l.Cred}
	res.mu.Lock()
	defer res.mu.Unlock()
	rc, ok := res.clients[id]
	if !ok {
		rc = res.newClient(h, creds, credential)
		res.clients[id] = rc
	}
	return rc, nil
}

// newClient returns a regclient for one host and credentials, whose
// requests count in the Budget of credential (its source's name, never
// the secret).
func (res *Resolver) newClient(h Host, creds Credentials, credential string) *regclient.RegClient {
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
		// Every request of this host's client, its token service's
		// included, goes through the host's TLS settings.
		regclient.WithRegOpts(reg.WithHTTPClient(&http.Client{Transport: res.tr.forHost(h, credential)})),
		regclient.WithRetryLimit(2),
	)
}

// resolve returns the digest r's tag points at, with one HEAD request.
func (res *Resolver) resolve(ctx context.Context, rc *regclient.RegClient, host string, r ref.Ref) Result {
	if until, blocked := res.tr.blockedUntil(hostPort(host)); blocked {
		return Result{Err: fmt.Errorf("resolve %s: %w (until %s)", Key(r), ErrRateLimited, until.UTC().Format(time.RFC3339))}
	}
	ctx, cancel := context.WithTimeout(ctx, res.opts.Timeout)
	defer cancel()
	m, err := rc.ManifestHead(ctx, r)
	if err != nil {
		if _, blocked := res.tr.blockedUntil(hostPort(host)); blocked {
			// regclient wraps transport errors beyond errors.Is.
			err = fmt.Errorf("%w: %v", ErrRateLimited, err)
		}
		return Result{Err: fmt.Errorf("resolve %s: %w", Key(r), err)}
	}
	// regclient returns no error when the registry omits the header.
	desc := m.GetDescriptor()
	d := desc.Digest.String()
	if !validDigest(d) {
		return Result{Err: fmt.Errorf("resolve %s: %w (got %q)", Key(r), ErrNoDigest, d)}
	}
	mt := desc.MediaType
	return Result{Digest: d, Index: mt == mediatype.OCI1ManifestList || mt == mediatype.Docker2ManifestList}
}

// refused reports whether err is the registry refusing access (401, 403).
func refused(err error) bool { return errors.Is(err, errs.ErrHTTPUnauthorized) }

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
