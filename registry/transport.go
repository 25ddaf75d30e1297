package registry

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
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
}

func newTransport(opts Options) (*transport, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = max(opts.Concurrency, 2)
	t := &transport{base: base, hosts: map[string]*http.Transport{}, counts: map[string]map[string]int{}}
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
	if ht, ok := t.hosts[req.URL.Host]; ok {
		return ht.RoundTrip(req)
	}
	return t.base.RoundTrip(req)
}

func (t *transport) snapshot() map[string]map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]map[string]int, len(t.counts))
	for h, m := range t.counts {
		c := make(map[string]int, len(m))
		for k, v := range m {
			c[k] = v
		}
		out[h] = c
	}
	return out
}
