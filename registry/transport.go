package registry

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// transport sends regclient's requests. It exists because regclient's own
// TLS settings only apply to an *http.Transport it can clone, and urunner
// also needs to rewrite the Accept header and count requests: so TLS is
// configured here, per registry, and never relaxed for a registry not
// configured so.
type transport struct {
	base   *http.Transport
	hosts  map[string]*http.Transport // by registry name, for its requests and its token service's
	accept string

	mu     sync.Mutex
	counts map[string]map[string]int // host → method → requests
	limits map[string]rateLimit      // host → last reported rate limit
	// budgets is what each registry and credentials spent (see Budget).
	budgets map[budgetKey]*Budget
	// blocked holds hosts that answered 429 with a Retry-After longer
	// than a lookup may wait: no request goes to them until then.
	blocked map[string]time.Time
	// maxWait is the longest Retry-After a lookup waits out.
	maxWait time.Duration
}

// ErrRateLimited marks a lookup skipped because its registry asked urunner
// to come back later than the run can wait.
var ErrRateLimited = errors.New("registry rate limit: asked to retry later than this run can wait")

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// rateLimit is a registry's RateLimit-Limit and RateLimit-Remaining headers
// (the IETF draft Docker Hub follows: "100;w=21600").
type rateLimit struct {
	limit, remaining int
	window           string
	windowDur        time.Duration
}

// low reports whether a tenth or less of the limit remains (RateLimit.Low).
func (r rateLimit) low() bool { return RateLimit{Limit: r.limit, Remaining: r.remaining}.Low() }

func parseRateLimit(h http.Header) (rateLimit, bool) {
	rem, lim := h.Get("RateLimit-Remaining"), h.Get("RateLimit-Limit")
	if rem == "" || lim == "" {
		return rateLimit{}, false
	}
	var r rateLimit
	remN, _, _ := strings.Cut(rem, ";")
	limN, params, _ := strings.Cut(lim, ";")
	var err1, err2 error
	r.remaining, err1 = strconv.Atoi(strings.TrimSpace(remN))
	r.limit, err2 = strconv.Atoi(strings.TrimSpace(limN))
	if err1 != nil || err2 != nil {
		return rateLimit{}, false
	}
	if w, ok := strings.CutPrefix(strings.TrimSpace(params), "w="); ok {
		r.window = w + "s"
		if n, err := strconv.Atoi(w); err == nil && n > 0 {
			r.windowDur = time.Duration(n) * time.Second
		}
	}
	return r, true
}

func newTransport(opts Options) (*transport, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = max(opts.Concurrency, 2)
	t := &transport{
		base: base, hosts: map[string]*http.Transport{},
		counts: map[string]map[string]int{}, limits: map[string]rateLimit{}, blocked: map[string]time.Time{},
		budgets: map[budgetKey]*Budget{},
		maxWait: opts.Timeout / 2,
	}
	if len(opts.Accept) > 0 {
		t.accept = strings.Join(opts.Accept, ", ")
	}
	for _, h := range opts.Hosts {
		if !h.SkipVerify && len(h.CAPEM) == 0 {
			continue
		}
		ht := base.Clone()
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if h.SkipVerify {
			tc.InsecureSkipVerify = true //#nosec G402 -- the user asked for it for this host only, and urunner warns
		}
		if len(h.CAPEM) > 0 {
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(h.CAPEM) {
				return nil, fmt.Errorf("registry %s: CA bundle holds no PEM certificate", h.Name)
			}
			tc.RootCAs = pool
		}
		ht.TLSClientConfig = tc
		t.hosts[h.Name] = ht
	}
	return t, nil
}

// hostPort maps a registry name to the host of its URLs: Docker Hub's API
// lives on registry-1.docker.io.
func hostPort(registry string) string {
	if registry == "docker.io" {
		return "registry-1.docker.io"
	}
	return registry
}

// forHost returns the round tripper of one registry's client: its TLS
// settings apply to every request the client makes, the registry's token
// service (often another host) included. Its requests count in the Budget
// of the registry and credential (see Budget.Credential).
func (t *transport) forHost(h Host, credential string) http.RoundTripper {
	rt := t.base
	if ht, ok := t.hosts[h.Name]; ok {
		rt = ht
	}
	return hostTransport{t: t, rt: rt, host: h, budget: budgetKey{h.Name, credential}}
}

type hostTransport struct {
	t      *transport
	rt     http.RoundTripper
	host   Host
	budget budgetKey
}

// TLSSettingError is a registry whose TLS does not match its
// configuration: it speaks plain HTTP where HTTPS was expected, or its
// certificate is not trusted. Advice names the setting to change.
type TLSSettingError struct {
	Host   string
	Err    error
	Advice string
}

func (e *TLSSettingError) Error() string {
	return fmt.Sprintf("%s: %v; %s", e.Host, e.Err, e.Advice)
}

func (e *TLSSettingError) Unwrap() error { return e.Err }

func (h hostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.t.roundTrip(h.rt, req, h.budget)
	if err == nil || req.URL.Scheme != "https" {
		return resp, err
	}
	var cert *tls.CertificateVerificationError
	switch {
	case answeredPlainHTTP(err):
		return nil, &TLSSettingError{Host: req.URL.Host, Err: errors.New("it answered plain HTTP to HTTPS"), Advice: h.host.Advice.PlainHTTP}
	case errors.As(err, &cert):
		return nil, &TLSSettingError{Host: req.URL.Host, Err: err, Advice: h.host.Advice.Untrusted}
	}
	return resp, err
}

// answeredPlainHTTP reports whether a TLS handshake got an HTTP answer.
func answeredPlainHTTP(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/" || errors.Is(err, http.ErrSchemeMismatch)
}

func (t *transport) roundTrip(rt http.RoundTripper, req *http.Request, bk budgetKey) (*http.Response, error) {
	if t.accept != "" && req.Method == http.MethodHead && strings.Contains(req.URL.Path, "/manifests/") {
		req = req.Clone(req.Context())
		req.Header.Set("Accept", t.accept)
	}
	t.mu.Lock()
	if until, ok := t.blocked[req.URL.Host]; ok && time.Now().Before(until) {
		t.mu.Unlock()
		return nil, fmt.Errorf("%s until %s: %w", req.URL.Host, until.UTC().Format(time.RFC3339), ErrRateLimited)
	}
	if t.counts[req.URL.Host] == nil {
		t.counts[req.URL.Host] = map[string]int{}
	}
	t.counts[req.URL.Host][req.Method]++
	t.budgetOf(bk).count(kindOf(req, bk.registry))
	t.mu.Unlock()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	t.mu.Lock()
	if rl, ok := parseRateLimit(resp.Header); ok {
		t.limits[req.URL.Host] = rl
	}
	t.budgetOf(bk).answered(resp, time.Now())
	t.mu.Unlock()
	if resp.StatusCode == http.StatusTooManyRequests {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			if d > t.maxWait {
				// Waiting would outlive the lookup (and hours-long waits
				// the run): stop asking this host until then.
				until := time.Now().Add(d)
				t.mu.Lock()
				t.blocked[req.URL.Host] = until
				t.mu.Unlock()
				_ = resp.Body.Close()
				return nil, fmt.Errorf("%s for %s: %w", req.URL.Host, d, ErrRateLimited)
			}
			// regclient honours delay-seconds but not HTTP dates.
			resp.Header.Set("Retry-After", strconv.Itoa(int(d.Round(time.Second)/time.Second)))
		}
	}
	return resp, nil
}

// blockedUntil reports whether host asked not to be called before a time
// still to come.
func (t *transport) blockedUntil(host string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	until, ok := t.blocked[host]
	return until, ok && time.Now().Before(until)
}

func (t *transport) rateLimits() map[string]rateLimit {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.limits)
}

func (t *transport) snapshot() map[string]map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]map[string]int, len(t.counts))
	for h, m := range t.counts {
		out[h] = maps.Clone(m)
	}
	return out
}
