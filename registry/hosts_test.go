package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadHostsFileReadsSecretsFromEnvAndFiles(t *testing.T) {
	pass := writeFile(t, "pass", "from-file\n")
	f := writeFile(t, "registries.yaml", `
registries:
  - host: harbor.example.com
    type: harbor
    user: robot$ci
    password: {file: `+pass+`}
  - host: http://127.0.0.1:5000
  - host: index.docker.io
    type: dockerhub
    user: me
    password: {env: HUB_TOKEN}
    concurrency: 2
`)
	got, err := LoadHostsFile(f, env(map[string]string{"HUB_TOKEN": "from-env"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []HostConfig{
		{Host: "harbor.example.com", Type: "harbor", User: "robot$ci", Password: Secret{File: pass, Value: "from-file"}},
		{Host: "127.0.0.1:5000", Type: "generic", PlainHTTP: true},
		{Host: "docker.io", Type: "dockerhub", User: "me", Password: Secret{Env: "HUB_TOKEN", Value: "from-env"}, Concurrency: 2},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(HostConfig{}, "Advice")); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	// A registry whose TLS does not match is told of by its item.
	if a := got[2].Advice; !strings.Contains(a.PlainHTTP, "registries[2]: write host: http://docker.io") || !strings.Contains(a.Untrusted, "registries[2]: give caFile:") {
		t.Errorf("advice for registries[2] = %+v", a)
	}
}

func TestLoadHostsFileRejects(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown type", "registries:\n- host: r.example.com\n  type: quay\n", `registries[0] (r.example.com): type: want one of`},
		{"missing variable", "registries:\n- host: r.example.com\n  user: u\n  password: {env: NOPE}\n", "password: environment variable NOPE is not set"},
		{"env and file", "registries:\n- host: r.example.com\n  password: {env: A, file: /b}\n", "password: set env or file, not both"},
		{"missing file", "registries:\n- host: r.example.com\n  password: {file: /nonexistent/urunner}\n", "/nonexistent/urunner"},
		{"unknown field", "registries:\n- host: r.example.com\n  pasword: x\n", `unknown field "pasword"`},
		{"literal secret", "registries:\n- host: r.example.com\n  password: hunter2\n", "registries"},
		{"no host", "registries:\n- type: generic\n", "host: required"},
		{"bad host", "registries:\n- host: a b\n", "host:"},
		{"empty", "registries: []\n", "no registries listed"},
		{"negative concurrency", "registries:\n- host: r.example.com\n  concurrency: -1\n", "concurrency: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := writeFile(t, "registries.yaml", tc.doc)
			_, err := LoadHostsFile(f, env(map[string]string{"A": "a"}))
			if err == nil {
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), f) {
				t.Errorf("error %q does not name the file and %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error reveals a secret: %v", err)
			}
		})
	}
}

func TestSecretStringNeverRevealsTheValue(t *testing.T) {
	for _, s := range []Secret{{Value: "hunter2"}, {Env: "X", Value: "hunter2"}, {File: "/f", Value: "hunter2"}} {
		if strings.Contains(s.String(), "hunter2") {
			t.Errorf("%#v prints its value", s.Env)
		}
	}
}

func TestRateLimitHeaders(t *testing.T) {
	for _, tc := range []struct {
		limit, remaining string
		ok, low          bool
	}{
		{"100;w=21600", "76;w=21600", true, false},
		{"100;w=21600", "10;w=21600", true, true},
		{"200", "0", true, true},
		{"", "5", false, false},
		{"x", "5", false, false},
	} {
		h := map[string][]string{}
		if tc.limit != "" {
			h["Ratelimit-Limit"] = []string{tc.limit}
		}
		h["Ratelimit-Remaining"] = []string{tc.remaining}
		rl, ok := parseRateLimit(h)
		if ok != tc.ok || rl.low() != tc.low {
			t.Errorf("limit %q remaining %q: ok=%v low=%v, want ok=%v low=%v", tc.limit, tc.remaining, ok, rl.low(), tc.ok, tc.low)
		}
	}
}
