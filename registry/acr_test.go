package registry

// Azure AD and Azure Container Registry cannot be reached from the test
// machines, so these tests run the real azidentity client and regclient
// against local servers speaking the documented wire protocols: an Azure
// AD authority (OIDC discovery and the client-credentials token endpoint,
// https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow),
// ACR's POST /oauth2/exchange
// (https://github.com/Azure/acr/blob/main/docs/AAD-OAuth.md), and the test
// ground's registry, whose Docker token flow plays ACR's /oauth2/token.
// What they cannot show: that Azure accepts these requests, workload and
// managed identity (the default chain), and sovereign-cloud audiences.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/regclient/regclient/types/ref"

	"github.com/urunner/urunner/e2e/testground"
)

const (
	testTenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testClientID = "b8a3b7e0-6f4e-4a53-9d6e-6c0f1b7c1a11"
	testSecret   = "sp-secret"
)

// acrJWT is an unsigned JWT with claims: urunner only reads tokens, the
// issuer checks them. Kept short: olareg bcrypt-hashes passwords, and
// bcrypt takes at most 72 bytes.
func acrJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return "e30." + base64.RawURLEncoding.EncodeToString(b) + ".x"
}

// acrCalls counts requests by name, safely across handlers.
type acrCalls struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *acrCalls) add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[name]++
}

func (c *acrCalls) get() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// acrFakeAAD is an Azure AD authority for one tenant and one service
// principal. It issues aadToken to the client-credentials grant for the
// ACR scope and answers invalid_client to a wrong secret.
func acrFakeAAD(t *testing.T, aadToken string, calls *acrCalls) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, req *http.Request) {
		calls.add("discovery")
		base := srv.URL + "/" + req.PathValue("tenant")
		acrWriteJSON(w, http.StatusOK, map[string]any{
			"issuer":                 base + "/v2.0",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"token_endpoint":         base + "/oauth2/v2.0/token",
		})
	})
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", func(w http.ResponseWriter, req *http.Request) {
		calls.add("token")
		if err := req.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f := req.PostForm
		if req.PathValue("tenant") != testTenant || f.Get("grant_type") != "client_credentials" ||
			f.Get("client_id") != testClientID || f.Get("client_secret") != testSecret {
			acrWriteJSON(w, http.StatusBadRequest, map[string]any{
				"error":             "invalid_client",
				"error_description": "AADSTS7000215: Invalid client secret provided.",
				"error_codes":       []int{7000215},
			})
			return
		}
		// MSAL adds "openid offline_access profile", as Azure AD expects.
		if !slices.Contains(strings.Fields(f.Get("scope")), acrAADScope) {
			acrWriteJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_scope", "error_description": "AADSTS70011: unexpected scope " + f.Get("scope")})
			return
		}
		acrWriteJSON(w, http.StatusOK, map[string]any{
			"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": aadToken,
		})
	})
	srv = httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// acrFakeExchange is ACR's POST /oauth2/exchange: it trades aadToken for
// refreshToken.
func acrFakeExchange(aadToken, refreshToken string, calls *acrCalls) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		calls.add("exchange")
		if req.Method != http.MethodPost || req.ParseForm() != nil {
			http.Error(w, "want a POST form", http.StatusBadRequest)
			return
		}
		f := req.PostForm
		if f.Get("grant_type") != "access_token" || f.Get("service") != req.Host ||
			f.Get("tenant") != testTenant || f.Get("access_token") != aadToken {
			acrWriteJSON(w, http.StatusUnauthorized, map[string]any{"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": "bad exchange: " + f.Encode()}}})
			return
		}
		acrWriteJSON(w, http.StatusOK, map[string]string{"refresh_token": refreshToken})
	})
}

func acrWriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// acrGround is a registry that takes refreshToken from /oauth2/exchange
// and the refresh user on its token realm, and an Azure AD authority.
type acrGround struct {
	reg          *testground.Registry
	aad          *httptest.Server
	calls        *acrCalls // "discovery", "token" (AAD) and "exchange"
	refreshToken string
}

func startACRGround(t *testing.T, tls bool, refreshExpiry time.Time) *acrGround {
	t.Helper()
	calls := &acrCalls{}
	aadToken := acrJWT(t, map[string]any{"tid": testTenant, "aud": "https://containerregistry.azure.net"})
	refresh := acrJWT(t, map[string]any{"exp": refreshExpiry.Unix()})
	reg, err := testground.StartRegistry(testground.RegistryOptions{
		TLS:         tls,
		TokenLogins: map[string]string{acrRefreshUser: refresh},
		Extra:       map[string]http.Handler{"/oauth2/exchange": acrFakeExchange(aadToken, refresh, calls)},
	})
	if err != nil {
		t.Fatalf("StartRegistry: %v", err)
	}
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Errorf("close registry: %v", err)
		}
	})
	return &acrGround{reg: reg, aad: acrFakeAAD(t, aadToken, calls), calls: calls, refreshToken: refresh}
}

// hostConfig is the service principal's registries-file entry.
func (g *acrGround) hostConfig(t *testing.T, tls bool) HostConfig {
	t.Helper()
	hc := HostConfig{
		Host: g.reg.Host, Type: "azure_acr", PlainHTTP: !tls,
		TenantID: testTenant, ClientID: testClientID, ClientSecret: Secret{Value: testSecret},
		AuthorityHost: g.aad.URL + "/",
	}
	if tls {
		hc.CAFile = filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(hc.CAFile, g.reg.CAPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return hc
}

// resolver wires hc as urunner does, with p as its provider.
func (g *acrGround) resolver(t *testing.T, hc HostConfig, p Provider) *Resolver {
	t.Helper()
	h, err := NewHost(hc)
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	h.Provider = p
	res, err := NewResolver(Options{Hosts: []Host{h}, Concurrency: 2, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("NewResolver: %v", err)
	}
	return res
}

// pushRepoTags pushes each repo:tag and returns the references and the
// digests by Key.
func pushRepoTags(t *testing.T, reg *testground.Registry, repoTags ...string) ([]ref.Ref, map[string]string) {
	t.Helper()
	refs := repoTagRefs(t, reg, repoTags...)
	want := map[string]string{}
	for i, rt := range repoTags {
		d, err := reg.PushImage(t.Context(), rt, fmt.Sprint("seed", i))
		if err != nil {
			t.Fatalf("PushImage %s: %v", rt, err)
		}
		want[Key(refs[i])] = d
	}
	return refs, want
}

// repoTagRefs returns references to repo:tags on reg, pushing nothing:
// enough where no lookup is to succeed.
func repoTagRefs(t *testing.T, reg *testground.Registry, repoTags ...string) []ref.Ref {
	t.Helper()
	var refs []ref.Ref
	for _, rt := range repoTags {
		r, err := ParseImage(reg.Host + "/" + rt)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	return refs
}

// resultDigests returns the digest of each result, failing the test on
// errors; the provider tests share it.
func resultDigests(t *testing.T, got map[string]Result) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, r := range got {
		if r.Err != nil {
			t.Errorf("resolve %s: %v", k, r.Err)
			continue
		}
		out[k] = r.Digest
	}
	return out
}

func TestACRServicePrincipalResolves(t *testing.T) {
	t.Parallel() // bcrypt on every login makes these the slow ones
	for _, tc := range []struct {
		name string
		tls  bool
	}{
		{"plain HTTP registry", false},
		{"TLS registry trusting its caFile for the exchange too", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := startACRGround(t, tc.tls, time.Now().Add(3*time.Hour))
			// Three images in two repositories: one token per repository.
			refs, want := pushRepoTags(t, g.reg, "team/api:1", "team/api:2", "team/web:latest")
			hc := g.hostConfig(t, tc.tls)
			p, err := newACRWith(hc, g.aad.Client())
			if err != nil {
				t.Fatalf("newACRWith: %v", err)
			}
			res := g.resolver(t, hc, p)

			if diff := cmp.Diff(want, resultDigests(t, res.ResolveAll(t.Context(), refs))); diff != "" {
				t.Errorf("digests mismatch (-want +got):\n%s", diff)
			}
			t.Logf("first run: Azure AD and exchange %v, registry %v", g.calls.get(), g.reg.Requests())
			if diff := cmp.Diff(map[string]int{"discovery": 1, "token": 1, "exchange": 1}, g.calls.get()); diff != "" {
				t.Errorf("one Azure AD token and one exchange per run: calls mismatch (-want +got):\n%s", diff)
			}
			regReqs := g.reg.Requests()
			if n := regReqs["GET token"]; n < 1 || n > 2 {
				t.Errorf("registry token requests = %d, want one per repository (2) at most", n)
			}
			if n := regReqs["HEAD manifest"]; n < len(refs) {
				t.Errorf("HEAD manifest requests = %d, want at least %d", n, len(refs))
			}

			// The next run reuses the refresh token: it is valid for hours.
			g.reg.ResetRequests()
			if diff := cmp.Diff(want, resultDigests(t, res.ResolveAll(t.Context(), refs))); diff != "" {
				t.Errorf("second run digests mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]int{"discovery": 1, "token": 1, "exchange": 1}, g.calls.get()); diff != "" {
				t.Errorf("second run reuses the refresh token: calls mismatch (-want +got):\n%s", diff)
			}
			t.Logf("second run: registry %v", g.reg.Requests())
		})
	}
}

func TestACRCredentialsCacheAndRenewal(t *testing.T) {
	for _, tc := range []struct {
		name          string
		expiresIn     time.Duration
		wantExchanges int
	}{
		{"refresh token valid for hours is reused", 3 * time.Hour, 1},
		{"refresh token expiring within five minutes is renewed", 4 * time.Minute, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := time.Now().Add(tc.expiresIn).Truncate(time.Second)
			g := startACRGround(t, false, exp)
			p, err := newACRWith(g.hostConfig(t, false), g.aad.Client())
			if err != nil {
				t.Fatalf("newACRWith: %v", err)
			}
			var got Credentials
			for range 2 {
				if got, err = p.Credentials(t.Context()); err != nil {
					t.Fatalf("Credentials: %v", err)
				}
			}
			want := Credentials{User: acrRefreshUser, Password: g.refreshToken, Expiry: exp}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("Credentials mismatch (-want +got):\n%s", diff)
			}
			if n := g.calls.get()["exchange"]; n != tc.wantExchanges {
				t.Errorf("exchanges = %d, want %d", n, tc.wantExchanges)
			}
		})
	}
}

func TestACRAdminUserResolves(t *testing.T) {
	calls := &acrCalls{}
	reg, err := testground.StartRegistry(testground.RegistryOptions{
		TokenLogins: map[string]string{"myregistry": "admin-password"},
		Extra: map[string]http.Handler{"/oauth2/exchange": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			calls.add("exchange")
			w.WriteHeader(http.StatusUnauthorized)
		})},
	})
	if err != nil {
		t.Fatalf("StartRegistry: %v", err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	refs, want := pushRepoTags(t, reg, "team/api:1")
	hc := HostConfig{Host: reg.Host, Type: "azure_acr", PlainHTTP: true, User: "myregistry", Password: Secret{Value: "admin-password"}}
	h, err := NewHost(hc)
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	res, err := NewResolver(Options{Hosts: []Host{h}, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, resultDigests(t, res.ResolveAll(t.Context(), refs))); diff != "" {
		t.Errorf("digests mismatch (-want +got):\n%s", diff)
	}
	if n := calls.get()["exchange"]; n != 0 {
		t.Errorf("the admin user was exchanged %d times, want it presented as is", n)
	}
	t.Logf("registry %v", reg.Requests())
}

func TestACRAzureADRefusalSkipsTheHost(t *testing.T) {
	g := startACRGround(t, false, time.Now().Add(3*time.Hour))
	refs := repoTagRefs(t, g.reg, "team/api:1", "team/web:1")
	hc := g.hostConfig(t, false)
	hc.ClientSecret = Secret{Value: "expired-secret"}
	p, err := newACRWith(hc, g.aad.Client())
	if err != nil {
		t.Fatalf("newACRWith: %v", err)
	}
	got := g.resolver(t, hc, p).ResolveAll(t.Context(), refs)
	if len(got) != len(refs) {
		t.Fatalf("got %d results, want %d", len(got), len(refs))
	}
	for k, r := range got {
		if !errors.Is(r.Err, ErrCredentials) {
			t.Errorf("%s: err = %v, want ErrCredentials", k, r.Err)
		}
		for _, s := range []string{g.reg.Host, "invalid_client"} {
			if r.Err != nil && !strings.Contains(r.Err.Error(), s) {
				t.Errorf("%s: error %q does not mention %q", k, r.Err, s)
			}
		}
		if r.Err != nil && strings.Contains(r.Err.Error(), "expired-secret") {
			t.Errorf("%s: error reveals the client secret: %v", k, r.Err)
		}
	}
	if diff := cmp.Diff(map[string]int{}, g.reg.Requests()); diff != "" {
		t.Errorf("no request reaches the registry: Requests() mismatch (-want +got):\n%s", diff)
	}
	if n := g.calls.get()["exchange"]; n != 0 {
		t.Errorf("exchanges = %d, want 0", n)
	}
}

func TestACRExchangeRefusal(t *testing.T) {
	g := startACRGround(t, false, time.Now().Add(3*time.Hour))
	hc := g.hostConfig(t, false)
	// Another tenant: the exchange refuses it, as ACR refuses an identity
	// from a tenant it does not trust.
	p, err := newACRWith(hc, g.aad.Client())
	if err != nil {
		t.Fatal(err)
	}
	p.(*acr).tenant = "00000000-1111-2222-3333-444444444444"
	_, err = p.Credentials(t.Context())
	if err == nil || !strings.Contains(err.Error(), "refused the Azure AD token") || !strings.Contains(err.Error(), "AcrPull") {
		t.Errorf("Credentials: err = %v, want the refusal explained", err)
	}
}

// The exchange's form carries the Azure AD token: a redirect, which Go
// would follow with the same body, is an error and nothing is sent on.
func TestACRExchangeNeverFollowsARedirect(t *testing.T) {
	var leaked atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(elsewhere.Close)
	calls := &acrCalls{}
	aadToken := acrJWT(t, map[string]any{"tid": testTenant, "aud": "https://containerregistry.azure.net"})
	reg, err := testground.StartRegistry(testground.RegistryOptions{
		Extra: map[string]http.Handler{"/oauth2/exchange": http.RedirectHandler(elsewhere.URL+"/oauth2/exchange", http.StatusTemporaryRedirect)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	aad := acrFakeAAD(t, aadToken, calls)
	p, err := newACRWith(HostConfig{
		Host: reg.Host, Type: "azure_acr", PlainHTTP: true,
		TenantID: testTenant, ClientID: testClientID, ClientSecret: Secret{Value: testSecret},
		AuthorityHost: aad.URL + "/",
	}, aad.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Credentials(t.Context())
	if err == nil || !strings.Contains(err.Error(), "never sends a token on a redirect") {
		t.Errorf("Credentials: err = %v, want a refused redirect", err)
	}
	if n := leaked.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests, want none", n)
	}
}

func TestNewACRRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		hc   HostConfig
		want string
	}{
		{"user without password", HostConfig{User: "admin"}, "needs a password"},
		{"admin user and service principal", HostConfig{User: "admin", Password: Secret{Value: "p"}, ClientID: testClientID}, "not both"},
		{"client secret without tenant", HostConfig{ClientID: testClientID, ClientSecret: Secret{Value: "s"}}, "tenantID, clientID and clientSecret"},
		{"client id without secret", HostConfig{TenantID: testTenant, ClientID: testClientID}, "tenantID, clientID and clientSecret"},
		{"plain HTTP authority", HostConfig{AuthorityHost: "http://login.example.com/"}, "authorityHost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.hc.Host, tc.hc.Type = "myregistry.azurecr.io", "azure_acr"
			_, err := newACR(tc.hc)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.hc.Host) {
				t.Errorf("newACR: err = %v, want one naming the host and saying %q", err, tc.want)
			}
		})
	}
}

func TestJWTClaims(t *testing.T) {
	for _, tc := range []struct {
		name, token string
		exp         int64
		tid         string
	}{
		{"claims read", "e30." + base64.RawURLEncoding.EncodeToString([]byte(`{"exp":1700000000,"tid":"t"}`)) + ".sig", 1700000000, "t"},
		{"padded payload", "e30." + base64.URLEncoding.EncodeToString([]byte(`{"exp":1}`)) + ".sig", 1, ""},
		{"opaque token", "not-a-jwt", 0, ""},
		{"bad base64", "a.%%%.b", 0, ""},
		{"not JSON", "a." + base64.RawURLEncoding.EncodeToString([]byte("exp")) + ".b", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := jwtClaims(tc.token)
			if c.Exp != tc.exp || c.Tid != tc.tid {
				t.Errorf("jwtClaims = exp %d tid %q, want %d %q", c.Exp, c.Tid, tc.exp, tc.tid)
			}
		})
	}
}
