package testground

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/scheme/reg"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
)

func startRegistry(t *testing.T, opts RegistryOptions) *Registry {
	t.Helper()
	r, err := StartRegistry(opts)
	if err != nil {
		t.Fatalf("StartRegistry: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// client returns a plain regclient client, as urunner would build one,
// that fails on the first error instead of backing off and retrying.
func client(r *Registry, host config.Host) *regclient.RegClient {
	host.Name = r.Host
	if host.TLS == config.TLSUndefined {
		host.TLS = config.TLSDisabled
	}
	return regclient.New(
		regclient.WithConfigHost(host),
		regclient.WithRegOpts(reg.WithRetryLimit(1)),
	)
}

// head resolves repoTag on r the way urunner does, with one HEAD.
func head(t *testing.T, rc *regclient.RegClient, r *Registry, repoTag string, opts ...regclient.ManifestOpts) (string, error) {
	t.Helper()
	rf, err := ref.New(r.Host + "/" + repoTag)
	if err != nil {
		t.Fatalf("parse reference: %v", err)
	}
	m, err := rc.ManifestHead(t.Context(), rf, opts...)
	if err != nil {
		return "", err
	}
	return m.GetDescriptor().Digest.String(), nil
}

func TestRegistryPushImageResolvesWithOneHead(t *testing.T) {
	r := startRegistry(t, RegistryOptions{})
	want, err := r.PushImage(t.Context(), "team/app:latest", "v1")
	if err != nil {
		t.Fatalf("PushImage: %v", err)
	}
	if !strings.HasPrefix(want, "sha256:") {
		t.Errorf("PushImage digest = %q, want a sha256 digest", want)
	}

	got, err := head(t, client(r, config.Host{}), r, "team/app:latest")
	if err != nil {
		t.Fatalf("HEAD: %v", err)
	}
	if got != want {
		t.Errorf("HEAD digest = %s, want the pushed %s", got, want)
	}
	// The pushes themselves are not counted: only the client's HEAD is.
	if diff := cmp.Diff(map[string]int{"HEAD manifest": 1}, r.Requests()); diff != "" {
		t.Errorf("Requests() mismatch (-want +got):\n%s", diff)
	}

	r.ResetRequests()
	if diff := cmp.Diff(map[string]int{}, r.Requests()); diff != "" {
		t.Errorf("Requests() after ResetRequests mismatch (-want +got):\n%s", diff)
	}
}

func TestRegistryPushImageToSameTag(t *testing.T) {
	tests := []struct {
		name      string
		first     string
		second    string
		wantMoved bool
	}{
		{"new seed moves the tag to a new digest", "v1", "v2", true},
		{"same seed gives the same digest", "v1", "v1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startRegistry(t, RegistryOptions{})
			first, err := r.PushImage(t.Context(), "team/app:latest", tt.first)
			if err != nil {
				t.Fatalf("PushImage %s: %v", tt.first, err)
			}
			second, err := r.PushImage(t.Context(), "team/app:latest", tt.second)
			if err != nil {
				t.Fatalf("PushImage %s: %v", tt.second, err)
			}
			if moved := first != second; moved != tt.wantMoved {
				t.Errorf("digest moved = %t (%s -> %s), want %t", moved, first, second, tt.wantMoved)
			}
			got, err := head(t, client(r, config.Host{}), r, "team/app:latest")
			if err != nil {
				t.Fatalf("HEAD: %v", err)
			}
			if got != second {
				t.Errorf("HEAD digest = %s, want the last pushed %s", got, second)
			}
		})
	}
}

func TestRegistryPushIndex(t *testing.T) {
	r := startRegistry(t, RegistryOptions{})
	rc := client(r, config.Host{})
	ctx := t.Context()

	before, childrenBefore, err := r.PushIndex(ctx, "team/multi:1", map[string]string{"linux/amd64": "a1", "linux/arm64": "b1"})
	if err != nil {
		t.Fatalf("PushIndex: %v", err)
	}
	got, err := head(t, rc, r, "team/multi:1")
	if err != nil {
		t.Fatalf("HEAD: %v", err)
	}
	if got != before {
		t.Errorf("HEAD digest = %s, want the index digest %s", got, before)
	}
	for plat, want := range childrenBefore {
		p, err := platform.Parse(plat)
		if err != nil {
			t.Fatalf("parse platform %s: %v", plat, err)
		}
		got, err := head(t, rc, r, "team/multi:1", regclient.WithManifestPlatform(p))
		if err != nil {
			t.Fatalf("HEAD for %s: %v", plat, err)
		}
		if got != want {
			t.Errorf("HEAD for %s = %s, want child %s", plat, got, want)
		}
	}

	after, childrenAfter, err := r.PushIndex(ctx, "team/multi:1", map[string]string{"linux/amd64": "a1", "linux/arm64": "b2"})
	if err != nil {
		t.Fatalf("PushIndex with a new arm64 seed: %v", err)
	}
	if after == before {
		t.Errorf("index digest stayed %s after the arm64 seed changed", after)
	}
	if childrenAfter["linux/amd64"] != childrenBefore["linux/amd64"] {
		t.Errorf("amd64 child moved %s -> %s, want it unchanged", childrenBefore["linux/amd64"], childrenAfter["linux/amd64"])
	}
	if childrenAfter["linux/arm64"] == childrenBefore["linux/arm64"] {
		t.Errorf("arm64 child stayed %s, want it moved", childrenAfter["linux/arm64"])
	}
	got, err = head(t, rc, r, "team/multi:1")
	if err != nil {
		t.Fatalf("HEAD after second push: %v", err)
	}
	if got != after {
		t.Errorf("HEAD digest = %s, want the new index digest %s", got, after)
	}
}

func TestRegistryDeleteTag(t *testing.T) {
	r := startRegistry(t, RegistryOptions{})
	rc := client(r, config.Host{})
	dig, err := r.PushImage(t.Context(), "team/app:gone", "v1")
	if err != nil {
		t.Fatalf("PushImage: %v", err)
	}
	if err := r.DeleteTag(t.Context(), "team/app:gone"); err != nil {
		t.Fatalf("DeleteTag: %v", err)
	}

	_, err = head(t, rc, r, "team/app:gone")
	if !errors.Is(err, errs.ErrNotFound) {
		t.Errorf("HEAD deleted tag: err = %v, want errs.ErrNotFound", err)
	}
	got, err := head(t, rc, r, "team/app@"+dig)
	if err != nil {
		t.Fatalf("HEAD by digest after the tag was deleted: %v", err)
	}
	if got != dig {
		t.Errorf("HEAD by digest = %s, want %s", got, dig)
	}
}

func TestRegistryLogins(t *testing.T) {
	tests := []struct {
		name          string
		anonymousRead bool
		user, pass    string
		wantErr       error
	}{
		{"anonymous is refused", false, "", "", errs.ErrHTTPUnauthorized},
		{"wrong password is refused", false, "ci", "wrong", errs.ErrHTTPUnauthorized},
		{"unknown user is refused", false, "nobody", "s3cret", errs.ErrHTTPUnauthorized},
		{"correct login resolves", false, "ci", "s3cret", nil},
		{"anonymous resolves when anonymous read is allowed", true, "", "", nil},
	}
	// One registry per anonymous-read setting: olareg checks every login
	// with bcrypt, which is slow under the race detector.
	logins := map[string]string{"ci": "s3cret"}
	registries := map[bool]*Registry{}
	pushed := map[bool]string{}
	for _, anonymousRead := range []bool{false, true} {
		r := startRegistry(t, RegistryOptions{Logins: logins, AllowAnonymousRead: anonymousRead})
		dig, err := r.PushImage(t.Context(), "private/app:latest", "v1")
		if err != nil {
			t.Fatalf("PushImage with login: %v", err)
		}
		registries[anonymousRead], pushed[anonymousRead] = r, dig
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := registries[tt.anonymousRead]
			r.ResetRequests()
			got, err := head(t, client(r, config.Host{User: tt.user, Pass: tt.pass}), r, "private/app:latest")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("HEAD: err = %v, want %v", err, tt.wantErr)
			}
			if want := pushed[tt.anonymousRead]; tt.wantErr == nil && got != want {
				t.Errorf("HEAD digest = %s, want %s", got, want)
			}
			// Refused requests reach the registry too, so they are counted.
			t.Logf("requests: %v", r.Requests())
			if n := r.Requests()["HEAD manifest"]; n < 1 {
				t.Errorf("counted %d HEAD manifest requests, want at least 1", n)
			}
		})
	}
}

func TestRegistryFault(t *testing.T) {
	r := startRegistry(t, RegistryOptions{})
	if _, err := r.PushImage(t.Context(), "team/app:latest", "v1"); err != nil {
		t.Fatalf("PushImage: %v", err)
	}
	r.SetFault(func(w http.ResponseWriter, req *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	// A push while the fault is set is not affected: helpers bypass it.
	if _, err := r.PushImage(t.Context(), "team/app:latest", "v2"); err != nil {
		t.Fatalf("PushImage during fault: %v", err)
	}

	_, err := head(t, client(r, config.Host{}), r, "team/app:latest")
	if !errors.Is(err, errs.ErrHTTPStatus) || !strings.Contains(err.Error(), "503") {
		t.Errorf("HEAD during fault: err = %v, want errs.ErrHTTPStatus with 503", err)
	}
	if diff := cmp.Diff(map[string]int{"HEAD manifest": 1}, r.Requests()); diff != "" {
		t.Errorf("faulted requests are counted: Requests() mismatch (-want +got):\n%s", diff)
	}

	r.SetFault(nil)
	if _, err := head(t, client(r, config.Host{}), r, "team/app:latest"); err != nil {
		t.Errorf("HEAD after clearing the fault: %v", err)
	}
}

func TestRegistryLatency(t *testing.T) {
	const latency = 150 * time.Millisecond
	r := startRegistry(t, RegistryOptions{Latency: latency})
	if _, err := r.PushImage(t.Context(), "team/app:latest", "v1"); err != nil {
		t.Fatalf("PushImage: %v", err)
	}
	rc := client(r, config.Host{})

	start := time.Now()
	if _, err := head(t, rc, r, "team/app:latest"); err != nil {
		t.Fatalf("HEAD: %v", err)
	}
	// Only a lower bound: a loaded machine may be arbitrarily slower.
	if took := time.Since(start); took < latency {
		t.Errorf("HEAD took %v, want at least the latency %v", took, latency)
	}
}

func TestRegistryTLS(t *testing.T) {
	r := startRegistry(t, RegistryOptions{TLS: true})
	if !strings.Contains(string(r.CAPEM), "BEGIN CERTIFICATE") {
		t.Fatalf("CAPEM = %q, want a PEM certificate", r.CAPEM)
	}
	want, err := r.PushImage(t.Context(), "team/app:latest", "v1")
	if err != nil {
		t.Fatalf("PushImage over TLS: %v", err)
	}

	trusted := client(r, config.Host{TLS: config.TLSEnabled, RegCert: string(r.CAPEM)})
	got, err := head(t, trusted, r, "team/app:latest")
	if err != nil {
		t.Fatalf("HEAD trusting CAPEM: %v", err)
	}
	if got != want {
		t.Errorf("HEAD digest = %s, want %s", got, want)
	}

	untrusting := client(r, config.Host{TLS: config.TLSEnabled})
	if _, err := head(t, untrusting, r, "team/app:latest"); err == nil {
		t.Errorf("HEAD without trusting CAPEM succeeded, want a certificate error")
	}
}

func TestRegistryCountsConcurrentRequests(t *testing.T) {
	r := startRegistry(t, RegistryOptions{})
	if _, err := r.PushImage(t.Context(), "team/app:latest", "v1"); err != nil {
		t.Fatalf("PushImage: %v", err)
	}
	const n = 16
	rc := client(r, config.Host{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := head(t, rc, r, "team/app:latest"); err != nil {
				t.Errorf("HEAD: %v", err)
			}
			_ = r.Requests()
		})
	}
	wg.Wait()
	if diff := cmp.Diff(map[string]int{"HEAD manifest": n}, r.Requests()); diff != "" {
		t.Errorf("Requests() mismatch (-want +got):\n%s", diff)
	}
}

func TestRegistryRequestKind(t *testing.T) {
	tests := []struct {
		path string
		want string
	}{
		{"/v2/", "ping"},
		{"/v2", "ping"},
		{"/token", "token"},
		{"/v2/team/app/manifests/latest", "manifest"},
		{"/v2/team/app/manifests/sha256:abc", "manifest"},
		{"/v2/team/app/blobs/sha256:abc", "blob"},
		{"/v2/team/app/blobs/uploads/", "upload"},
		{"/v2/team/app/blobs/uploads/1234", "upload"},
		{"/v2/team/app/tags/list", "tags"},
		{"/v2/team/app/referrers/sha256:abc", "other"},
		{"/healthz", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := requestKind(tt.path); got != tt.want {
				t.Errorf("requestKind(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func TestRegistryTokenLogins(t *testing.T) {
	tests := []struct {
		name         string
		user, pass   string
		wantErr      error
		wantRequests map[string]int
	}{
		// The challenge, the token, the HEAD retried with it.
		{"correct login gets a token and resolves", "ci", "s3cret", nil, map[string]int{"HEAD manifest": 2, "GET token": 1}},
		{"wrong password is refused a token", "ci", "wrong", errs.ErrHTTPUnauthorized, map[string]int{"HEAD manifest": 1, "GET token": 1}},
		{"anonymous gets a token that does not pull", "", "", errs.ErrHTTPUnauthorized, map[string]int{"HEAD manifest": 2, "GET token": 1}},
	}
	// One registry for all cases: olareg checks every login with bcrypt,
	// which is slow under the race detector.
	r := startRegistry(t, RegistryOptions{TokenLogins: map[string]string{"ci": "s3cret"}})
	want, err := r.PushImage(t.Context(), "private/app:latest", "v1")
	if err != nil {
		t.Fatalf("PushImage with token login: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.ResetRequests()
			got, err := head(t, client(r, config.Host{User: tt.user, Pass: tt.pass}), r, "private/app:latest")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("HEAD: err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && got != want {
				t.Errorf("HEAD digest = %s, want %s", got, want)
			}
			if diff := cmp.Diff(tt.wantRequests, r.Requests()); diff != "" {
				t.Errorf("Requests() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegistryTokenChallenge(t *testing.T) {
	r := startRegistry(t, RegistryOptions{TokenLogins: map[string]string{"ci": "s3cret"}, TokenService: "container_registry"})
	resp, err := http.Head("http://" + r.Host + "/v2/team/app/manifests/latest")
	if err != nil {
		t.Fatalf("HEAD: %v", err)
	}
	_ = resp.Body.Close()
	want := `Bearer realm="http://` + r.Host + `/token",service="container_registry",scope="repository:team/app:pull"`
	if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(got, want) {
		t.Errorf("HEAD without credentials: %d %q, want 401 with a challenge starting %q", resp.StatusCode, got, want)
	}
}

func TestRegistryLoginsAndTokenLoginsConflict(t *testing.T) {
	_, err := StartRegistry(RegistryOptions{Logins: map[string]string{"a": "b"}, TokenLogins: map[string]string{"a": "b"}})
	if err == nil {
		t.Fatal("StartRegistry with Logins and TokenLogins succeeded, want an error")
	}
}

func TestRegistryExtra(t *testing.T) {
	var got []string
	var mu sync.Mutex
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			mu.Lock()
			got = append(got, name+" "+req.Method+" "+req.URL.Path)
			mu.Unlock()
			w.WriteHeader(http.StatusTeapot)
		})
	}
	r := startRegistry(t, RegistryOptions{Extra: map[string]http.Handler{
		"/oauth2/":         handler("oauth2"),
		"/oauth2/exchange": handler("exchange"),
	}})
	if _, err := r.PushImage(t.Context(), "team/app:latest", "v1"); err != nil {
		t.Fatalf("PushImage: %v", err)
	}
	for _, path := range []string{"/oauth2/exchange", "/oauth2/token"} {
		resp, err := http.Post("http://"+r.Host+path, "application/x-www-form-urlencoded", strings.NewReader("grant_type=access_token"))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusTeapot {
			t.Errorf("POST %s: status %d, want the handler's 418", path, resp.StatusCode)
		}
	}
	if _, err := head(t, client(r, config.Host{}), r, "team/app:latest"); err != nil {
		t.Errorf("HEAD next to Extra handlers: %v", err)
	}
	wantGot := []string{"exchange POST /oauth2/exchange", "oauth2 POST /oauth2/token"}
	if diff := cmp.Diff(wantGot, got); diff != "" {
		t.Errorf("handlers called mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"POST other": 2, "HEAD manifest": 1}, r.Requests()); diff != "" {
		t.Errorf("Requests() mismatch (-want +got):\n%s", diff)
	}
}

// A Docker-Hub-like rate limit: manifest answers carry it, HEADs are free,
// each GET takes one, and past the limit a GET gets 429 with Retry-After.
func TestRegistryRateLimit(t *testing.T) {
	r := startRegistry(t, RegistryOptions{RateLimit: &RateLimit{Limit: 2, Window: 6 * time.Hour}})
	if _, err := r.PushImage(t.Context(), "team/app:latest", "v1"); err != nil {
		t.Fatalf("PushImage: %v", err)
	}
	do := func(method string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, "http://"+r.Host+"/v2/team/app/manifests/latest", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	for _, step := range []struct {
		method, remaining string
		status            int
	}{
		{http.MethodHead, "2;w=21600", 200},
		{http.MethodGet, "1;w=21600", 200},
		{http.MethodHead, "1;w=21600", 200},
		{http.MethodGet, "0;w=21600", 200},
		{http.MethodGet, "0;w=21600", 429},
	} {
		resp := do(step.method)
		if resp.StatusCode != step.status || resp.Header.Get("RateLimit-Remaining") != step.remaining ||
			resp.Header.Get("RateLimit-Limit") != "2;w=21600" {
			t.Errorf("%s: %d, RateLimit-Limit %q, RateLimit-Remaining %q; want %d, 2;w=21600, %s", step.method, resp.StatusCode,
				resp.Header.Get("RateLimit-Limit"), resp.Header.Get("RateLimit-Remaining"), step.status, step.remaining)
		}
		if step.status == 429 && resp.Header.Get("Retry-After") != "21600" {
			t.Errorf("429 Retry-After %q, want 21600", resp.Header.Get("Retry-After"))
		}
	}
	if got := r.RateLimitRemaining(); got != 0 {
		t.Errorf("RateLimitRemaining = %d, want 0", got)
	}
}
