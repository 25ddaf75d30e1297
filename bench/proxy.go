package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// apiProxy is a counting reverse proxy in front of the API server: urunner
// talks plain HTTP to it on loopback, it talks TLS to the API server with
// the cluster's CA and adds the admin bearer token. It counts requests by
// verb and resource ("list deployments", "patch deployments"), the bytes
// of their response bodies as they went over the wire (gzip included when
// the client asked for it, as client-go does), and times them.
type apiProxy struct {
	URL string // http://127.0.0.1:PORT

	srv    *http.Server
	served chan error
	tr     *http.Transport

	mu       sync.Mutex
	counts   map[string]int
	bytes    map[string]int64
	failures map[string]int // "409 patch deployments"
	spans    map[string]span
	lists    listKinds
	gzipped  int // responses the API server compressed
	// inflight are the requests being served: snapshot waits for them, as
	// a handler still counts a response its client already has.
	inflight int
	idle     *sync.Cond
}

// listKinds tells how a run listed: LISTs inside a namespace (listing
// per namespace) and LISTs of one object (the auto scope's count).
type listKinds struct {
	Namespaced, Count int
}

// span is when requests of one key started first and ended last.
type span struct{ first, last time.Time }

func startProxy(target string, caPEM []byte, token string) (*apiProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("api proxy target: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("api proxy: cluster CA holds no PEM certificate")
	}
	tr := &http.Transport{
		Proxy:               nil,
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Set("Authorization", "Bearer "+token)
		},
		Transport:     tr,
		FlushInterval: -1, // watches stream
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("api proxy: listen: %w", err)
	}
	p := &apiProxy{
		URL:      "http://" + ln.Addr().String(),
		served:   make(chan error, 1),
		tr:       tr,
		counts:   map[string]int{},
		bytes:    map[string]int64{},
		failures: map[string]int{},
		spans:    map[string]span{},
	}
	p.idle = sync.NewCond(&p.mu)
	p.srv = &http.Server{
		Handler:           p.count(rp),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { p.served <- p.srv.Serve(ln) }()
	return p, nil
}

// statusRecorder keeps the status code a handler wrote and counts the
// body bytes.
type statusRecorder struct {
	http.ResponseWriter
	code int
	n    int64
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	n, err := s.ResponseWriter.Write(b)
	s.n += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (p *apiProxy) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := requestKey(r.Method, r.URL)
		start := time.Now()
		p.mu.Lock()
		p.counts[key]++
		p.inflight++
		if strings.HasPrefix(key, "list ") && key != "list namespaces" {
			if strings.Contains(r.URL.Path, "/namespaces/") {
				p.lists.Namespaced++
			}
			if r.URL.Query().Get("limit") == "1" {
				p.lists.Count++
			}
		}
		if _, ok := p.spans[key]; !ok {
			p.spans[key] = span{first: start}
		}
		p.mu.Unlock()

		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)

		p.mu.Lock()
		defer p.mu.Unlock()
		p.inflight--
		if p.inflight == 0 {
			p.idle.Broadcast()
		}
		if rec.Header().Get("Content-Encoding") == "gzip" {
			p.gzipped++
		}
		p.bytes[key] += rec.n
		if rec.code >= 400 {
			p.failures[fmt.Sprintf("%d %s", rec.code, key)]++
		}
		sp := p.spans[key]
		sp.last = time.Now()
		p.spans[key] = sp
	})
}

// apiCounts is a snapshot of the proxy's counters.
type apiCounts struct {
	Requests map[string]int
	// Bytes are the response body bytes by key.
	Bytes    map[string]int64
	Failures map[string]int
	// PatchSpan is from the start of the first PATCH to the end of the
	// last; zero without PATCHes.
	PatchSpan time.Duration
	// Spans are, by key, when the first request started and the last
	// ended.
	Spans map[string]span
	Lists listKinds
	// Gzipped are the responses the API server compressed (it does above
	// 128 KiB when the client accepts gzip).
	Gzipped int
}

// span returns when the first request of the keys accepted by match
// started, and when the last ended; zero times if none.
func (c apiCounts) span(match func(key string) bool) span {
	var out span
	for k, sp := range c.Spans {
		if !match(k) {
			continue
		}
		if out.first.IsZero() || sp.first.Before(out.first) {
			out.first = sp.first
		}
		if sp.last.After(out.last) {
			out.last = sp.last
		}
	}
	return out
}

// totalBytes is the response body bytes of every request.
func (c apiCounts) totalBytes() int64 {
	var n int64
	for _, v := range c.Bytes {
		n += v
	}
	return n
}

func (c apiCounts) total() int {
	n := 0
	for _, v := range c.Requests {
		n += v
	}
	return n
}

// byVerb sums the requests of one verb ("list", "patch", ...).
func (c apiCounts) byVerb(verb string) int {
	n := 0
	for k, v := range c.Requests {
		if strings.HasPrefix(k, verb+" ") {
			n += v
		}
	}
	return n
}

// snapshot waits, at most 5 s, for the requests in flight, then returns
// the counts and resets them.
func (p *apiProxy) snapshot() apiCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	deadline := time.AfterFunc(5*time.Second, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.idle.Broadcast()
	})
	for start := time.Now(); p.inflight > 0 && time.Since(start) < 5*time.Second; {
		p.idle.Wait()
	}
	deadline.Stop()
	c := apiCounts{Requests: maps.Clone(p.counts), Bytes: maps.Clone(p.bytes), Failures: maps.Clone(p.failures), Spans: maps.Clone(p.spans), Lists: p.lists, Gzipped: p.gzipped}
	if sp, ok := p.spans["patch deployments"]; ok {
		c.PatchSpan = sp.last.Sub(sp.first)
	}
	clear(p.counts)
	clear(p.bytes)
	clear(p.failures)
	clear(p.spans)
	p.lists = listKinds{}
	p.gzipped = 0
	return c
}

func (p *apiProxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if err != nil {
		_ = p.srv.Close()
	}
	if serr := <-p.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	p.tr.CloseIdleConnections()
	return err
}

// requestKey names a Kubernetes API request "verb resource", with the
// verbs of RBAC: a GET on a collection is "list" (or "watch"), on a named
// object "get". Paths outside /api and /apis are "get nonresource",
// discovery ("/api", "/apis/apps/v1") is "get discovery".
func requestKey(method string, u *url.URL) string {
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	var rest []string
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		rest = segs[2:] // api/v1/...
	case len(segs) >= 3 && segs[0] == "apis":
		rest = segs[3:] // apis/group/version/...
	case segs[0] == "api" || segs[0] == "apis":
		return strings.ToLower(method) + " discovery"
	default:
		return strings.ToLower(method) + " nonresource"
	}
	if len(rest) == 0 {
		return strings.ToLower(method) + " discovery"
	}
	var resource, name, sub string
	switch {
	case rest[0] == "namespaces" && len(rest) == 3 && (rest[2] == "status" || rest[2] == "finalize"):
		resource, name, sub = "namespaces", rest[1], rest[2]
	case rest[0] == "namespaces" && len(rest) >= 3:
		// namespaces/NS/resource[/name[/subresource]]
		resource = rest[2]
		if len(rest) >= 4 {
			name = rest[3]
		}
		if len(rest) >= 5 {
			sub = rest[4]
		}
	default:
		// resource[/name[/subresource]], namespaces included
		resource = rest[0]
		if len(rest) >= 2 {
			name = rest[1]
		}
		if len(rest) >= 3 {
			sub = rest[2]
		}
	}
	if sub != "" {
		resource += "/" + sub
	}
	var verb string
	switch method {
	case http.MethodGet, http.MethodHead:
		switch {
		case name != "":
			verb = "get"
		case u.Query().Get("watch") == "true" || u.Query().Get("watch") == "1":
			verb = "watch"
		default:
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
		if name == "" {
			verb = "deletecollection"
		}
	default:
		verb = strings.ToLower(method)
	}
	return verb + " " + resource
}
