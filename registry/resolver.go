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
	// Credentials for basic or token auth; empty for anonymous.
	User, Password string
}

// Options configures a Resolver.
type Options struct {
	Hosts []Host
	// Accept replaces the Accept header of manifest HEAD requests; empty
	// keeps regclient's list, which accepts indexes and every manifest type.
	Accept []string
	// Concurrency is the number of requests in flight per host.
	Concurrency int
	// Timeout bounds each lookup, retries included.
	Timeout time.Duration
	// Log receives one line per failed host; nil discards.
	Log       *slog.Logger
	UserAgent string
}

// Result is the outcome of one lookup.
type Result struct {
	Digest string
	Err    error
}

// Resolver looks up the digests of image tags.
type Resolver struct {
	rc    *regclient.RegClient
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
	var cfgs []config.Host
	for _, h := range opts.Hosts {
		hosts[h.Name] = h
		c := config.HostNewName(h.Name)
		c.TLS = config.TLSEnabled
		if h.PlainHTTP {
			c.TLS = config.TLSDisabled
		}
		c.User, c.Pass = h.User, h.Password
		c.ReqConcurrent = int64(opts.Concurrency)
		cfgs = append(cfgs, *c)
	}
	rc := regclient.New(
		regclient.WithConfigHost(cfgs...),
		regclient.WithUserAgent(opts.UserAgent),
		// regclient logs request details at debug level; only its warnings
		// reach urunner's log, so no header can leak at any level.
		regclient.WithSlog(slog.New(minLevel{opts.Log.Handler(), slog.LevelWarn})),
		regclient.WithRegOpts(reg.WithHTTPClient(&http.Client{Transport: tr})),
		regclient.WithRetryLimit(2),
	)
	return &Resolver{rc: rc, hosts: hosts, opts: opts, tr: tr}, nil
}

// Watches reports whether r is on a watched registry.
func (res *Resolver) Watches(r ref.Ref) bool {
	_, ok := res.hosts[r.Registry]
	return ok
}

// Requests returns the number of HTTP requests sent per host, by method.
func (res *Resolver) Requests() map[string]map[string]int { return res.tr.snapshot() }

// ResolveAll resolves each reference once, Concurrency at a time per host,
// and returns the results by Key. Every reference must be watched and carry
// a tag. A host whose credentials are refused is not asked again this run.
func (res *Resolver) ResolveAll(ctx context.Context, refs []ref.Ref) map[string]Result {
	unique := map[string]ref.Ref{}
	for _, r := range refs {
		unique[Key(r)] = r
	}
	out := make(map[string]Result, len(unique))
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		failed = map[string]error{}
	)
	sem := make(chan struct{}, res.opts.Concurrency*max(1, len(res.hosts)))
	for key, r := range unique {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				mu.Lock()
				out[key] = Result{Err: fmt.Errorf("resolve %s: %w", key, ctx.Err())}
				mu.Unlock()
				return
			}
			mu.Lock()
			herr := failed[r.Registry]
			mu.Unlock()
			if herr != nil {
				mu.Lock()
				out[key] = Result{Err: fmt.Errorf("resolve %s: %w", key, ErrHostFailed)}
				mu.Unlock()
				return
			}
			d, err := res.Resolve(ctx, r)
			mu.Lock()
			defer mu.Unlock()
			out[key] = Result{Digest: d, Err: err}
			if err != nil && authFailure(err) && failed[r.Registry] == nil {
				failed[r.Registry] = err
				res.opts.Log.Error("registry refused the credentials; skipping its other images this run",
					"registry", r.Registry, "error", err)
			}
		}()
	}
	wg.Wait()
	return out
}

// Resolve returns the digest r's tag points at, with one HEAD request.
func (res *Resolver) Resolve(ctx context.Context, r ref.Ref) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, res.opts.Timeout)
	defer cancel()
	m, err := res.rc.ManifestHead(ctx, r)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", Key(r), err)
	}
	// regclient returns no error when the registry omits the header.
	d := m.GetDescriptor().Digest.String()
	if !validDigest(d) {
		return "", fmt.Errorf("resolve %s: %w (got %q)", Key(r), ErrNoDigest, d)
	}
	return d, nil
}

func authFailure(err error) bool {
	return errors.Is(err, errs.ErrHTTPUnauthorized)
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
