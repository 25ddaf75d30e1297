package testground

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/scheme/reg"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/ref"
)

// A private registry over TLS: a client without credentials is challenged
// and refused, a client that trusts the CA and logs in resolves the tag,
// and the access log shows every request with its status.
func TestDistributionLoginsOverTLS(t *testing.T) {
	d, err := StartDistribution(t.Context(), DistributionOptions{
		AccessLog: true,
		TLS:       true,
		Logins:    map[string]string{"ci": "s3cret"},
	})
	if err != nil {
		t.Fatalf("StartDistribution: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	push, err := d.PushImage(t.Context(), "private/app:latest", "v1")
	if err != nil {
		t.Fatalf("PushImage: %v", err)
	}
	rf, err := ref.New(d.Host + "/private/app:latest")
	if err != nil {
		t.Fatal(err)
	}
	head := func(user, pass string) (string, error) {
		rc := regclient.New(
			regclient.WithConfigHost(config.Host{Name: d.Host, TLS: config.TLSEnabled, RegCert: string(d.CAPEM), User: user, Pass: pass}),
			regclient.WithRegOpts(reg.WithRetryLimit(1)),
			regclient.WithUserAgent("distribution-test"),
		)
		m, err := rc.ManifestHead(t.Context(), rf)
		if err != nil {
			return "", err
		}
		return m.GetDescriptor().Digest.String(), nil
	}

	if _, err := head("", ""); !errors.Is(err, errs.ErrHTTPUnauthorized) {
		t.Errorf("anonymous HEAD: err = %v, want %v", err, errs.ErrHTTPUnauthorized)
	}
	got, err := head("ci", "s3cret")
	if err != nil {
		t.Fatalf("HEAD with the login: %v", err)
	}
	if got != push.Digest {
		t.Errorf("HEAD digest = %s, want the pushed %s", got, push.Digest)
	}

	counts, err := d.AccessCounts()
	if err != nil {
		t.Fatal(err)
	}
	// The anonymous client is challenged once; the logged-in one is
	// challenged, then answered. The helper's push is not counted.
	want := map[string]int{"HEAD manifest 401": 2, "HEAD manifest 200": 1}
	if d := cmp.Diff(want, counts); d != "" {
		t.Errorf("access log counts (-want +got):\n%s", d)
	}
}

func TestParseAccessLine(t *testing.T) {
	for _, tc := range []struct {
		name, line                  string
		method, path, status, agent string
		ok                          bool
	}{
		{"manifest HEAD", `127.0.0.1 - - [29/Nov/2026:06:00:00 +0000] "HEAD /v2/a/b/manifests/v1 HTTP/1.1" 200 0 "" "urunner/dev"`,
			"HEAD", "/v2/a/b/manifests/v1", "200", "urunner/dev", true},
		{"query dropped", `127.0.0.1 - ci [29/Nov/2026:06:00:00 +0000] "GET /v2/a/tags/list?n=10 HTTP/1.1" 401 145 "" "x y"`,
			"GET", "/v2/a/tags/list", "401", "x y", true},
		{"registry log line", `time="2026-11-29T06:00:00Z" level=info msg="response completed" http.request.method=HEAD`,
			"", "", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, p, s, a, ok := parseAccessLine(tc.line)
			if diff := cmp.Diff([]any{tc.method, tc.path, tc.status, tc.agent, tc.ok}, []any{m, p, s, a, ok}); diff != "" {
				t.Errorf("parseAccessLine (-want +got):\n%s", diff)
			}
		})
	}
}
