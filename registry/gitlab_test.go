package registry

// GitLab cannot be reached from the test machines, so these tests run
// regclient against the test ground's registry with token logins: olareg
// answers 401 with a Bearer challenge whose realm, its own /token, plays
// GitLab's /jwt/auth (service container_registry) and issues a token to
// valid basic credentials, as GitLab does. What they cannot show: GitLab's
// own answers for each token type and scope, and its ban of addresses
// after failed logins.

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/regclient/regclient/types/errs"

	"github.com/urunner/urunner/e2e/testground"
)

const gitlabTestToken = "glpat-0123456789abcdefghij"

func startGitLabRegistry(t *testing.T) *testground.Registry {
	t.Helper()
	reg, err := testground.StartRegistry(testground.RegistryOptions{
		TokenLogins:  map[string]string{gitlabDefaultUser: gitlabTestToken},
		TokenService: gitlabService,
	})
	if err != nil {
		t.Fatalf("StartRegistry: %v", err)
	}
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Errorf("close registry: %v", err)
		}
	})
	return reg
}

func gitlabResolver(t *testing.T, hc HostConfig, concurrency int) *Resolver {
	t.Helper()
	if err := hc.Prepare(func(string) (string, bool) { return "", false }); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	h, err := NewHost(hc)
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	res, err := NewResolver(Options{Hosts: []Host{h}, Concurrency: concurrency, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("NewResolver: %v", err)
	}
	return res
}

func TestGitLabTokenResolves(t *testing.T) {
	t.Parallel() // bcrypt on every login makes these the slow ones
	for _, tc := range []struct {
		name    string
		authURL func(reg *testground.Registry) string
		// wantChecks is the token requests beyond one per repository.
		wantChecks int
	}{
		{"challenge leads to the token service", func(*testground.Registry) string { return "" }, 0},
		{"authURL checks the token once per run first", func(reg *testground.Registry) string { return "http://" + reg.Host + "/token" }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := startGitLabRegistry(t)
			refs, want := pushRepoTags(t, reg, "group/app:1", "group/app:2", "group/other/tool:latest")
			for run := range 2 {
				// Each run is a new process, with a new Resolver.
				res := gitlabResolver(t, HostConfig{
					Host: "http://" + reg.Host, Type: "gitlab", Token: Secret{Value: gitlabTestToken}, AuthURL: tc.authURL(reg),
				}, 2)
				reg.ResetRequests()
				if diff := cmp.Diff(want, resultDigests(t, res.ResolveAll(t.Context(), refs))); diff != "" {
					t.Errorf("run %d: digests mismatch (-want +got):\n%s", run, diff)
				}
				got := reg.Requests()
				t.Logf("run %d: registry %v", run, got)
				// Two repositories: a token each at most, plus the check.
				if n := got["GET token"]; n < 1 || n > 2+tc.wantChecks {
					t.Errorf("run %d: %d token requests, want 1 to %d", run, n, 2+tc.wantChecks)
				}
			}
		})
	}
}

func TestGitLabWrongTokenSkipsTheHost(t *testing.T) {
	reg := startGitLabRegistry(t)
	refs := repoTagRefs(t, reg, "group/app:1", "group/web:1", "group/api:1")
	res := gitlabResolver(t, HostConfig{
		Host: "http://" + reg.Host, Type: "gitlab", Token: Secret{Value: "glpat-revoked"},
	}, 1)
	got := res.ResolveAll(t.Context(), refs)
	var refused, skipped int
	for k, r := range got {
		switch {
		case errors.Is(r.Err, errs.ErrHTTPUnauthorized):
			refused++
		case errors.Is(r.Err, ErrHostFailed):
			skipped++
		default:
			t.Errorf("%s: err = %v, want ErrHTTPUnauthorized or ErrHostFailed", k, r.Err)
		}
		if r.Err != nil && !strings.Contains(r.Err.Error(), reg.Host) {
			t.Errorf("%s: error %q does not name the host", k, r.Err)
		}
	}
	// Two repositories refused in a row prove the token wrong (one alone
	// could be a repository the token may not read); the rest is skipped.
	if refused != 2 || skipped != len(refs)-2 {
		t.Errorf("%d refused and %d skipped, want 2 and %d", refused, skipped, len(refs)-2)
	}
	t.Logf("registry %v", reg.Requests())
	// The first probe asks for a token once; the second twice, since
	// regclient first tries the realm it knows for the new scope, then the
	// registry's fresh challenge. Three failed logins a run, whatever the
	// number of images.
	if n := reg.Requests()["GET token"]; n < 2 || n > 3 {
		t.Errorf("%d token requests with the wrong token, want 2 or 3", n)
	}
}

func TestGitLabAuthURLRefusalSkipsTheHost(t *testing.T) {
	reg := startGitLabRegistry(t)
	refs := repoTagRefs(t, reg, "group/app:1", "group/web:1")
	res := gitlabResolver(t, HostConfig{
		Host: "http://" + reg.Host, Type: "gitlab", Token: Secret{Value: "glpat-revoked"},
		AuthURL: "http://" + reg.Host + "/token",
	}, 2)
	for k, r := range res.ResolveAll(t.Context(), refs) {
		if !errors.Is(r.Err, ErrCredentials) {
			t.Errorf("%s: err = %v, want ErrCredentials", k, r.Err)
			continue
		}
		for _, s := range []string{reg.Host, "read_registry"} {
			if !strings.Contains(r.Err.Error(), s) {
				t.Errorf("%s: error %q does not mention %q", k, r.Err, s)
			}
		}
		if strings.Contains(r.Err.Error(), "glpat-revoked") {
			t.Errorf("%s: error reveals the token: %v", k, r.Err)
		}
	}
	// Only the check: no registry request with a token known to be bad.
	if diff := cmp.Diff(map[string]int{"GET token": 1}, reg.Requests()); diff != "" {
		t.Errorf("Requests() mismatch (-want +got):\n%s", diff)
	}
}

func TestNewGitLab(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hc       HostConfig
		wantUser string
		wantURL  string
		wantErr  string
	}{
		{"access token under the default user", HostConfig{Token: Secret{Value: "glpat-x"}}, gitlabDefaultUser, "", ""},
		{"password accepted as the token", HostConfig{Password: Secret{Value: "glpat-x"}}, gitlabDefaultUser, "", ""},
		{"deploy token under its user", HostConfig{User: "gitlab+deploy-token-7", Token: Secret{Value: "gldt-x"}}, "gitlab+deploy-token-7", "", ""},
		{"authURL base gets /jwt/auth", HostConfig{Token: Secret{Value: "glpat-x"}, AuthURL: "https://gitlab.example.com"},
			gitlabDefaultUser, "https://gitlab.example.com/jwt/auth?account=urunner&client_id=urunner&service=container_registry", ""},
		{"authURL with a path is used as is", HostConfig{Token: Secret{Value: "glpat-x"}, AuthURL: "https://example.com/gitlab/jwt/auth"},
			gitlabDefaultUser, "https://example.com/gitlab/jwt/auth?account=urunner&client_id=urunner&service=container_registry", ""},
		{"no token", HostConfig{}, "", "", "token with the read_registry scope is required"},
		{"token and password", HostConfig{Token: Secret{Value: "a"}, Password: Secret{Value: "b"}}, "", "", "not both"},
		{"deploy token without its user", HostConfig{Token: Secret{Value: "gldt-x"}}, "", "", "gitlab+deploy-token-N"},
		{"authURL without scheme", HostConfig{Token: Secret{Value: "glpat-x"}, AuthURL: "gitlab.example.com"}, "", "", "authURL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.hc.Host, tc.hc.Type = "registry.gitlab.example.com", "gitlab"
			p, err := newGitLab(tc.hc)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.hc.Host) {
					t.Errorf("newGitLab: err = %v, want one naming the host and saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("newGitLab: %v", err)
			}
			g := p.(*gitlab)
			if g.creds.User != tc.wantUser || g.authURL != tc.wantURL {
				t.Errorf("user %q, authURL %q; want %q, %q", g.creds.User, g.authURL, tc.wantUser, tc.wantURL)
			}
		})
	}
}
