package webhook

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/types/ref"

	"github.com/urunner/urunner/e2e/testground"
)

var update = flag.Bool("update", false, "rewrite the recorded distribution fixture")

// recorder is a pusher that keeps what it was given.
type recorder struct {
	mu   sync.Mutex
	refs [][]string
}

func (r *recorder) Push(_ context.Context, refs []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs = append(r.refs, refs)
	return nil
}

func (r *recorder) got() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.refs)
}

// The real CNCF distribution registry 2.8 (Debian's docker-registry)
// sends its notifications to the real handler: a tag push becomes one
// pushed reference on the host the pusher addressed; its blobs, a
// manifest pushed by digest only and urunner's own HEAD (a pull event)
// are answered 200 and push nothing; a wrong token is refused with 401
// and retried by the registry until it is right.
func TestRealDistributionNotificationsReachTheHandler(t *testing.T) {
	const token = "distribution-token-0123456789"
	rec := &recorder{}
	s := &server{maxBody: 1 << 20, push: rec, ready: func() bool { return true }, log: discardLog(), seen: newIDSet(64)}
	cfg := Config{DistributionToken: token}

	var mu sync.Mutex
	var bodies [][]byte
	var codes []int
	h := s.handler(cfg.endpoints())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytesReader(body))
		rw := &codeRecorder{ResponseWriter: w, code: 200}
		h.ServeHTTP(rw, r)
		mu.Lock()
		bodies, codes = append(bodies, body), append(codes, rw.code)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)

	ctx := t.Context()
	d, err := testground.StartDistribution(ctx, testground.DistributionOptions{Endpoints: []testground.NotifyEndpoint{{
		Name: "urunner", URL: srv.URL + "/hooks/distribution",
		Headers: map[string][]string{"Authorization": {"Bearer " + token}},
		Timeout: time.Second, Threshold: 1, Backoff: 200 * time.Millisecond,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })

	p, err := d.PushImage(ctx, "shop/web:latest", "v1")
	if err != nil {
		t.Fatal(err)
	}
	// urunner's own lookup: one HEAD by tag, which the registry reports as
	// a pull.
	rc := regclient.New(regclient.WithConfigHost(config.Host{Name: d.Host, TLS: config.TLSDisabled}))
	rf, _ := ref.New(d.Host + "/shop/web:latest")
	if _, err := rc.ManifestHead(ctx, rf); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{d.Host + "/shop/web:latest"}}
	waitFor(t, 10*time.Second, func() bool { return len(rec.got()) >= 1 && pullSeen(&mu, &bodies) })
	if diff := cmp.Diff(want, rec.got()); diff != "" {
		t.Errorf("pushed references (-want +got):\n%s", diff)
	}
	mu.Lock()
	for i, c := range codes {
		if c != http.StatusOK && c != http.StatusAccepted {
			t.Errorf("notification %d answered %d:\n%s", i, c, bodies[i])
		}
	}
	mu.Unlock()
	t.Logf("pushed %s (manifest PUT %s)", p.Digest, p.Done.Sub(p.ManifestPut))

	if *update {
		// The envelope with the tag's manifest push, as the registry sent it.
		mu.Lock()
		for _, b := range bodies {
			n, err := parseDistribution(b, hostRewrite{})
			if err == nil && len(n.refs) > 0 {
				if err := os.WriteFile(filepath.Join("testdata", "distribution-push.json"), indent(t, b), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		mu.Unlock()
	}
}

// A registry whose token is wrong gets 401 and nothing is pushed; it keeps
// retrying the same event, in order, and the event is taken once the token
// is right (here: once the receiver is configured with it).
func TestRealDistributionRetriesAnUnauthenticatedEvent(t *testing.T) {
	rec := &recorder{}
	var mu sync.Mutex
	var codes []int
	right := "right-token-0123456789"
	handlerFor := func(token string) http.Handler {
		s := &server{maxBody: 1 << 20, push: rec, ready: func() bool { return true }, log: discardLog(), seen: newIDSet(64)}
		return s.handler(Config{DistributionToken: token}.endpoints())
	}
	current := handlerFor("another-token-0123456789")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := current
		mu.Unlock()
		rw := &codeRecorder{ResponseWriter: w, code: 200}
		h.ServeHTTP(rw, r)
		mu.Lock()
		codes = append(codes, rw.code)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	ctx := t.Context()
	d, err := testground.StartDistribution(ctx, testground.DistributionOptions{Endpoints: []testground.NotifyEndpoint{{
		Name: "urunner", URL: srv.URL + "/hooks/distribution",
		Headers: map[string][]string{"Authorization": {"Bearer " + right}},
		Timeout: time.Second, Threshold: 1, Backoff: 100 * time.Millisecond, IgnoreActions: []string{"pull"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if _, err := d.PushImage(ctx, "shop/api:1.0", "v1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(codes, http.StatusUnauthorized)
	})
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("an unauthenticated notification pushed %v", got)
	}
	mu.Lock()
	current = handlerFor(right)
	mu.Unlock()
	waitFor(t, 10*time.Second, func() bool { return len(rec.got()) > 0 })
	if diff := cmp.Diff([][]string{{d.Host + "/shop/api:1.0"}}, rec.got()); diff != "" {
		t.Errorf("pushed references after the retry (-want +got):\n%s", diff)
	}
}

func pullSeen(mu *sync.Mutex, bodies *[][]byte) bool {
	mu.Lock()
	defer mu.Unlock()
	for _, b := range *bodies {
		var env struct {
			Events []struct{ Action string } `json:"events"`
		}
		if json.Unmarshal(b, &env) == nil {
			for _, e := range env.Events {
				if e.Action == "pull" {
					return true
				}
			}
		}
	}
	return false
}

func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// The real registry's notification of a signature tag (cosign's
// sha256-<hex>.sig, pushed like any manifest) reaches the handler as the
// subject by digest, never as a run of the .sig tag itself.
func TestRealDistributionSignaturePushNamesItsSubject(t *testing.T) {
	const token = "distribution-token-0123456789"
	rec := &recorder{}
	s := &server{maxBody: 1 << 20, push: rec, ready: func() bool { return true }, log: discardLog(), seen: newIDSet(64)}
	srv := httptest.NewServer(s.handler(Config{DistributionToken: token}.endpoints()))
	t.Cleanup(srv.Close)
	ctx := t.Context()
	d, err := testground.StartDistribution(ctx, testground.DistributionOptions{Endpoints: []testground.NotifyEndpoint{{
		Name: "urunner", URL: srv.URL + "/hooks/distribution",
		Headers: map[string][]string{"Authorization": {"Bearer " + token}},
		Timeout: time.Second, Threshold: 1, Backoff: 200 * time.Millisecond, IgnoreActions: []string{"pull"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	p, err := d.PushImage(ctx, "shop/web:latest", "v1")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return len(rec.got()) == 1 })
	hex := strings.TrimPrefix(p.Digest, "sha256:")
	if _, err := d.PushImage(ctx, "shop/web:sha256-"+hex+".sig", "signature"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return len(rec.got()) == 2 })
	want := [][]string{{d.Host + "/shop/web:latest"}, {d.Host + "/shop/web@" + p.Digest}}
	if diff := cmp.Diff(want, rec.got()); diff != "" {
		t.Errorf("pushed references (-want +got):\n%s", diff)
	}
}
