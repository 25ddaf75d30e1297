package registry

// How urunner meets a registry whose TLS is not what its configuration
// says, against the test ground's registry (olareg, in-process, over plain
// HTTP or HTTPS with a self-signed certificate).

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/urunner/urunner/e2e/testground"
)

func loggedResolver(t *testing.T, h Host) (*Resolver, *testground.LogBuffer) {
	t.Helper()
	logs := &testground.LogBuffer{}
	res, err := NewResolver(Options{Hosts: []Host{h}, Concurrency: 8, Timeout: time.Minute, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return res, logs
}

var advice = TLSAdvice{PlainHTTP: "set SCHEME-SETTING", Untrusted: "set CA-SETTING"}

// Docker's insecure registries: a registry named without a scheme, its TLS
// verification off, that speaks only plain HTTP is looked up over HTTP
// after one TLS attempt, with its credentials, and the log says so once.
func TestARegistryWithoutTLSVerificationThatSpeaksOnlyHTTPIsLookedUpOverHTTP(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts testground.RegistryOptions
	}{
		{"basic auth", testground.RegistryOptions{Logins: map[string]string{"ci": "secret"}}},
		{"token auth", testground.RegistryOptions{TokenLogins: map[string]string{"ci": "secret"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := startRegistry(t, tc.opts)
			refs, want := pushRepoTags(t, reg, "team/app:1", "team/web:1", "team/api:1")
			res, logs := loggedResolver(t, Host{Name: reg.Host, SkipVerify: true, Advice: advice,
				Provider: basic{Credentials{User: "ci", Password: "secret"}}})
			if diff := cmp.Diff(want, resultDigests(t, res.ResolveAll(t.Context(), refs))); diff != "" {
				t.Errorf("digests (-want +got):\n%s", diff)
			}
			if n := strings.Count(logs.String(), "does not speak TLS"); n != 1 {
				t.Errorf("%d warnings that the registry speaks plain HTTP, want 1:\n%s", n, logs)
			}
			if got := reg.Requests()["HEAD manifest"]; got != len(refs)+1 {
				t.Errorf("%d HEAD requests reached the registry, want %d (one per image and the auth challenge's)", got, len(refs)+1)
			}
		})
	}
}

// With verification on, a registry that speaks plain HTTP is never spoken
// to over HTTP: every lookup fails, with the setting to change, after one
// attempt.
func TestARegistryThatSpeaksOnlyHTTPWhereHTTPSIsExpectedSaysWhichSettingToChange(t *testing.T) {
	reg := startRegistry(t, testground.RegistryOptions{})
	refs, _ := pushRepoTags(t, reg, "team/app:1", "team/web:1", "team/api:1")
	res, logs := loggedResolver(t, Host{Name: reg.Host, Advice: advice})
	for k, r := range res.ResolveAll(t.Context(), refs) {
		var tlsErr *TLSSettingError
		if !errors.As(r.Err, &tlsErr) || !strings.Contains(r.Err.Error(), "set SCHEME-SETTING") {
			t.Errorf("%s: err = %v, want a TLS setting error naming the setting", k, r.Err)
		}
	}
	if n := strings.Count(logs.String(), "TLS does not match its configuration"); n != 1 {
		t.Errorf("%d error lines for the registry, want 1:\n%s", n, logs)
	}
	if got := reg.Requests()["HEAD manifest"]; got != 0 {
		t.Errorf("%d requests reached the registry over plain HTTP, want 0", got)
	}
}

// A registry with a self-signed certificate: verification off speaks TLS
// to it (never HTTP); verification on fails with the setting to change.
func TestASelfSignedRegistry(t *testing.T) {
	reg := startRegistry(t, testground.RegistryOptions{TLS: true, Logins: map[string]string{"ci": "secret"}})
	refs, want := pushRepoTags(t, reg, "team/app:1", "team/web:1")
	creds := basic{Credentials{User: "ci", Password: "secret"}}

	res, logs := loggedResolver(t, Host{Name: reg.Host, SkipVerify: true, Advice: advice, Provider: creds})
	if diff := cmp.Diff(want, resultDigests(t, res.ResolveAll(t.Context(), refs))); diff != "" {
		t.Errorf("verification off: digests (-want +got):\n%s", diff)
	}
	if strings.Contains(logs.String(), "does not speak TLS") {
		t.Errorf("a TLS registry was taken for a plain HTTP one:\n%s", logs)
	}

	res, _ = loggedResolver(t, Host{Name: reg.Host, Advice: advice, Provider: creds})
	for k, r := range res.ResolveAll(t.Context(), refs) {
		var tlsErr *TLSSettingError
		if !errors.As(r.Err, &tlsErr) || !strings.Contains(r.Err.Error(), "set CA-SETTING") || !strings.Contains(r.Err.Error(), "certificate") {
			t.Errorf("verification on: %s: err = %v, want an untrusted certificate error naming the setting", k, r.Err)
		}
	}
}

// A registry configured http:// is spoken to over HTTP from the first
// request: no TLS attempt, no warning.
func TestAPlainHTTPRegistryIsNeverTriedOverTLS(t *testing.T) {
	reg := startRegistry(t, testground.RegistryOptions{})
	refs, want := pushRepoTags(t, reg, "team/app:1")
	res, logs := loggedResolver(t, Host{Name: reg.Host, PlainHTTP: true, SkipVerify: true, Advice: advice})
	if diff := cmp.Diff(want, resultDigests(t, res.ResolveAll(t.Context(), refs))); diff != "" {
		t.Errorf("digests (-want +got):\n%s", diff)
	}
	if logs.String() != "" {
		t.Errorf("unexpected log lines:\n%s", logs)
	}
}
