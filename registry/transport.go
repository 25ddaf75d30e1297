package registry

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// transport sends regclient's requests. It exists because regclient's own
// TLS settings only apply to an *http.Transport it can clone, and urunner
// also needs to rewrite the Accept header and count requests: so TLS is
// configured here, per host, and never relaxed for a host not configured so.
type transport struct {
	base   *http.Transport
	hosts  map[string]*http.Transport // by host[:port] as in URLs
	accept string

	mu     sync.Mutex
	counts map[string]map[string]int // host → method → requests
	limits map[string]rateLimit      // host → last reported rate limit
}

// rateLimit is a registry's RateLimit-Limit and RateLimit-Remaining headers
// (the IETF draft Docker Hub follows: "100;w=21600").
type rateLimit struct {
	limit, remaining int
	window           string
}

// low reports whether a tenth or less of the limit remains.
func (r rateLimit) low() bool { return r.limit > 0 && r.remaining*10 <= r.limit }

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
	}
	return r, true
}

func newTransport(opts Options) (*transport, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = max(opts.Concurrency, 2)
	t := &transport{base: base, hosts: map[string]*http.Transport{}, counts: map[string]map[string]int{}, limits: map[string]rateLimit{}}
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
		t.hosts[hostPort(h.Name)] = ht
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

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.accept != "" && req.Method == http.MethodHead && strings.Contains(req.URL.Path, "/manifests/") {
		req = req.Clone(req.Context())
		req.Header.Set("Accept", t.accept)
	}
	t.mu.Lock()
	if t.counts[req.URL.Host] == nil {
		t.counts[req.URL.Host] = map[string]int{}
	}
	t.counts[req.URL.Host][req.Method]++
	t.mu.Unlock()
	rt := http.RoundTripper(t.base)
	if ht, ok := t.hosts[req.URL.Host]; ok {
		rt = ht
	}
	resp, err := rt.RoundTrip(req)
	if err == nil {
		if rl, ok := parseRateLimit(resp.Header); ok {
			t.mu.Lock()
			t.limits[req.URL.Host] = rl
			t.mu.Unlock()
		}
	}
	return resp, err
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
