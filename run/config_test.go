package run

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/exit"
	"github.com/urunner/urunner/state"
)

// A bad value is refused with exit code 2 and a message naming the
// variable, before urunner contacts the API server or the registry.
func TestBadConfigurationExitsTwoBeforeAnyNetworkCall(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, key, value, want string
	}{
		{"log level", "URUNNER_CONF_LOG_LEVEL", "LOUD", `URUNNER_CONF_LOG_LEVEL: want DEBUG, INFO, WARNING or ERROR, got "LOUD"`},
		{"log format", "URUNNER_CONF_LOG_FORMAT", "xml", `URUNNER_CONF_LOG_FORMAT: want text or json, got "xml"`},
		{"kube auth", "URUNNER_CONF_KUBE_AUTH", "foo", `URUNNER_CONF_KUBE_AUTH: want incluster or kubeconfig, got "foo"`},
		{"verify", "URUNNER_CONF_DOCKER_API_VERIFY", "maybe", `URUNNER_CONF_DOCKER_API_VERIFY: want true or false, got "maybe"`},
		{"dry run", "URUNNER_CONF_DRY_RUN", "yes", `URUNNER_CONF_DRY_RUN: want true or false, got "yes"`},
		{"registry type", "URUNNER_CONF_CONTAINER_REGISTRY_TYPE", "quay", `URUNNER_CONF_CONTAINER_REGISTRY_TYPE: want one of aws_ecr, azure_acr`},
		{"registry", "URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH", "a b", `URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH: "a b" is not a registry host`},
		{"no registry", "URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH", "", `URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH: required`},
		{"timeout", "URUNNER_CONF_REGISTRY_TIMEOUT", "soon", `URUNNER_CONF_REGISTRY_TIMEOUT: want a duration`},
		{"concurrency", "URUNNER_CONF_REGISTRY_CONCURRENCY", "0", `URUNNER_CONF_REGISTRY_CONCURRENCY: must be greater than zero`},
		{"qps", "URUNNER_CONF_KUBE_QPS", "fast", `URUNNER_CONF_KUBE_QPS: want a number, got "fast"`},
		{"state configmap", "URUNNER_CONF_STATE_CONFIGMAP", "", `URUNNER_CONF_STATE_CONFIGMAP: must not be empty`},
		{"user without password", "URUNNER_SECR_HARBOR_USER", "robot", `a user needs a password`},
		{"missing signature key", "URUNNER_CONF_SIGNATURE_KEYS", "/nonexistent/cosign.pub", `URUNNER_CONF_SIGNATURE_KEYS: stat /nonexistent/cosign.pub: no such file or directory`},
		{"signature key that is no key", "URUNNER_CONF_SIGNATURE_KEYS", "testdata/not-a-key/notes.txt", `URUNNER_CONF_SIGNATURE_KEYS: signature key file testdata/not-a-key/notes.txt: no PEM block`},
		{"signature key directory without keys", "URUNNER_CONF_SIGNATURE_KEYS", "testdata/no-keys", `URUNNER_CONF_SIGNATURE_KEYS: directory testdata/no-keys holds no key file`},
		{"negative signature grace", "URUNNER_CONF_SIGNATURE_GRACE", "-1m", `URUNNER_CONF_SIGNATURE_GRACE: must not be negative`},
		{"signature tlog", "URUNNER_CONF_SIGNATURE_TLOG", "maybe", `URUNNER_CONF_SIGNATURE_TLOG: want true or false, got "maybe"`},
		{"pull policy", "URUNNER_CONF_PULL_POLICY_MISMATCH", "ignore", `URUNNER_CONF_PULL_POLICY_MISMATCH: want warn or skip, got "ignore"`},
		{"list scope", "URUNNER_CONF_LIST_SCOPE", "node", `URUNNER_CONF_LIST_SCOPE: want auto, cluster or namespace, got "node"`},
		{"approval", "URUNNER_CONF_APPROVAL", "manual", `URUNNER_CONF_APPROVAL: want auto, approve or notify, got "manual"`},
		{"gitops", "URUNNER_CONF_GITOPS", "fight", `URUNNER_CONF_GITOPS: want warn, skip or ignore, got "fight"`},
		{"report", "URUNNER_CONF_REPORT", "yaml", `URUNNER_CONF_REPORT: want json or nothing, got "yaml"`},
		{"first run", "URUNNER_CONF_FIRST_RUN", "restart", `URUNNER_CONF_FIRST_RUN: want baseline or converge, got "restart"`},
		{"converge without the pods", "URUNNER_CONF_FIRST_RUN", "converge", `URUNNER_CONF_FIRST_RUN=converge: needs URUNNER_CONF_RUNNING_PODS=true`},
		{"restart mode", "URUNNER_CONF_RESTART_MODE", "replace", `URUNNER_CONF_RESTART_MODE: want annotation or pin, got "replace"`},
		{"rollback without verification", "URUNNER_CONF_ROLLBACK", "true", `URUNNER_CONF_ROLLBACK: needs URUNNER_CONF_VERIFY_ROLLOUT=true`},
		{"negative soak", "URUNNER_CONF_SOAK", "-1h", `URUNNER_CONF_SOAK: must not be negative`},
		{"negative cap window", "URUNNER_CONF_MAX_RESTARTS_WINDOW", "-1h", `URUNNER_CONF_MAX_RESTARTS_WINDOW: must not be negative`},
		{"cap window that is no duration", "URUNNER_CONF_MAX_RESTARTS_WINDOW", "daily", `URUNNER_CONF_MAX_RESTARTS_WINDOW: want a duration`},
		{"keyless root without identity", "URUNNER_CONF_SIGNATURE_TRUSTED_ROOT", "testdata/root.json", `URUNNER_CONF_SIGNATURE_TRUSTED_ROOT: keyless signatures need the trusted root and an identity`},
		// parsed once into the stages' options, still before any call
		{"workload kind", "URUNNER_CONF_WORKLOAD_KINDS", "Deployment,Pod", `URUNNER_CONF_WORKLOAD_KINDS: want some of`},
		{"namespace name", "URUNNER_CONF_NAMESPACES", "team-a,Team_B", `URUNNER_CONF_NAMESPACES: "Team_B" is not a namespace name`},
		{"reference", "URUNNER_CONF_REFERENCES", "not a reference!", `URUNNER_CONF_REFERENCES: "not a reference!" is neither`},
		{"window", "URUNNER_CONF_WINDOW", "someday", `URUNNER_CONF_WINDOW: window: "someday" is not a day`},
		{"platform", "URUNNER_CONF_PLATFORMS", "linux", `URUNNER_CONF_PLATFORMS: "linux" is not os/arch`},
		{"registries file", "URUNNER_CONF_REGISTRIES_FILE", "/nonexistent/registries.yaml", `URUNNER_CONF_REGISTRIES_FILE: open /nonexistent/registries.yaml`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGround(t, testground.RegistryOptions{})
			if strings.HasPrefix(tc.key, "URUNNER_SECR_HARBOR") {
				g.setenv("URUNNER_CONF_CONTAINER_REGISTRY_TYPE", "harbor")
			}
			g.setenv(tc.key, tc.value)
			o := g.run()
			if o.code != exit.Config {
				t.Errorf("exit code = %d, want %d", o.code, exit.Config)
			}
			if !strings.Contains(o.logs, tc.want) {
				t.Errorf("logs do not say %q:\n%s", tc.want, o.logs)
			}
			if n := g.api.total(); n != 0 {
				t.Errorf("%d API requests before the configuration was checked", n)
			}
			if r := g.reg.Requests(); len(r) != 0 {
				t.Errorf("registry requests before the configuration was checked: %v", r)
			}
		})
	}
}

// A keyless trusted root that names no transparency log cannot require a
// log entry: the run refuses to start, naming the root and the opt-out,
// unless URUNNER_CONF_SIGNATURE_TLOG=false, which then says signatures are
// trusted on a timestamp alone (issue 22, item 17).
func TestTrustedRootWithoutLogNeedsTheOptOut(t *testing.T) {
	t.Parallel()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, vs.FulcioCertificateAuthorities(), nil, vs.TimestampingAuthorities(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_SIGNATURE_TRUSTED_ROOT", file)
	g.setenv("URUNNER_CONF_SIGNATURE_ISSUER", "https://token.actions.githubusercontent.com")
	g.setenv("URUNNER_CONF_SIGNATURE_SUBJECT", "^https://github.com/org/app/")
	o := g.run()
	want := "URUNNER_CONF_SIGNATURE_TRUSTED_ROOT: signature trusted root " + file + ": names no transparency log"
	if o.code != exit.Config || !strings.Contains(o.logs, want) || !strings.Contains(o.logs, "URUNNER_CONF_SIGNATURE_TLOG=false") {
		t.Errorf("exit %d; want %d and a line saying %q and naming the opt-out:\n%s", o.code, exit.Config, want, o.logs)
	}
	if n := g.api.total(); n != 0 {
		t.Errorf("%d API requests before the configuration was checked", n)
	}

	g.setenv("URUNNER_CONF_SIGNATURE_TLOG", "false")
	o = g.mustRun()
	if !strings.Contains(o.logs, "keyless signatures are trusted on a timestamp alone") {
		t.Errorf("the opt-out is not said:\n%s", o.logs)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if code := Main(t.Context(), []string{"--help"}, &out, &out, Hooks{}); code != 0 {
		t.Fatalf("--help exit code %d", code)
	}
	for _, v := range []string{
		// the original urunner's variables, a compatibility contract
		"DOCKER_API_ACCEPT_HEADER", "URUNNER_CONF_DOCKER_API_VERIFY", "URUNNER_CONF_LOG_LEVEL",
		"URUNNER_CONF_KUBE_AUTH", "URUNNER_CONF_SQLLIGHT_PATH", "URUNNER_CONF_FREQUENCY_CHECK_SECONDS",
		"URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH", "URUNNER_CONF_CONTAINER_REGISTRY_TYPE",
		"URUNNER_SECR_HARBOR_USER", "URUNNER_SECR_HARBOR_PASS", "URUNNER_SECR_DIGITAL_OCEAN_TOKEN",
		"URUNNER_SECR_AWS_ACCESS_KEY_ID", "URUNNER_SECR_AWS_SECRET_ACCESS_KEY", "URUNNER_SECR_AWS_REGION",
		"URUNNER_SECR_GITLAB_TOKEN", "URUNNER_SECR_GITLAB_AUTH_URL",
		// the credentials of the types urunner added, read likewise
		"URUNNER_SECR_REGISTRY_USER", "URUNNER_SECR_REGISTRY_PASS", "URUNNER_SECR_GITLAB_USER",
		"URUNNER_SECR_AZURE_TENANT_ID", "URUNNER_SECR_AZURE_CLIENT_ID", "URUNNER_SECR_AZURE_CLIENT_SECRET",
		// urunner's own
		"URUNNER_CONF_STATE_CONFIGMAP", "URUNNER_CONF_STATE_NAMESPACE", "URUNNER_CONF_DRY_RUN",
		"URUNNER_CONF_LOG_FORMAT", "URUNNER_CONF_KUBE_QPS", "URUNNER_CONF_KUBE_BURST",
		"URUNNER_CONF_REGISTRY_CONCURRENCY", "URUNNER_CONF_REGISTRY_TIMEOUT", "URUNNER_CONF_RUN_TIMEOUT",
		"URUNNER_CONF_REGISTRIES_FILE", "URUNNER_CONF_PULL_SECRET_AUTH", "URUNNER_CONF_MAX_RESTARTS",
		"URUNNER_CONF_MAX_RESTARTS_WINDOW",
		"Exit codes",
	} {
		if !strings.Contains("\n"+out.String(), "\n"+v) { // at the start of its line
			t.Errorf("--help does not mention %s", v)
		}
	}
}

func TestRetiredVariablesWarnOnce(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_SQLLIGHT_PATH", "./urunner.db")
	g.setenv("URUNNER_CONF_FREQUENCY_CHECK_SECONDS", "30")
	o := g.mustRun()
	for _, want := range []string{"URUNNER_CONF_SQLLIGHT_PATH is ignored", "URUNNER_CONF_FREQUENCY_CHECK_SECONDS is ignored"} {
		if n := strings.Count(o.logs, want); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", want, n, o.logs)
		}
	}
}

func TestJSONLogs(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_LOG_FORMAT", "json")
	o := g.mustRun()
	if !strings.Contains(o.logs, `"msg":"run finished"`) {
		t.Errorf("no JSON summary line:\n%s", o.logs)
	}
}

// URUNNER_CONF_REFERENCES takes tags and subjects by digest; a subject
// stands for the stored references of its repository on that digest.
func TestReferencesTakeTagsAndSubjects(t *testing.T) {
	d1, d2 := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
	c := Config{References: "R.example.com/a:v1, r.example.com/b@" + d1 + ",r.example.com/c@" + d2}
	p, err := c.references()
	if err != nil {
		t.Fatal(err)
	}
	st := state.State{Refs: map[string]state.Ref{
		"r.example.com/b:latest": {Digest: d1}, "R.Example.com/b:1.0": {Digest: d1}, "r.example.com/b:0.9": {Digest: d2},
		"r.example.com/bb:latest": {Digest: d1}, "r.example.com/c:latest": {Digest: d1},
	}}
	refs, unmatched := p.expand(st)
	want := map[string]bool{"r.example.com/a:v1": true, "r.example.com/b:latest": true, "r.example.com/b:1.0": true}
	if diff := cmp.Diff(want, refs); diff != "" {
		t.Errorf("references (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"r.example.com/c@" + d2}, unmatched); diff != "" {
		t.Errorf("unmatched (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"r.example.com/a:v1@" + d1, "r.example.com/a@md5:00", "not a reference!"} {
		if _, err := (&Config{References: bad}).references(); err == nil || !strings.Contains(err.Error(), "URUNNER_CONF_REFERENCES") {
			t.Errorf("%q: error %v, want one naming URUNNER_CONF_REFERENCES", bad, err)
		}
	}
}

// The configuration is read once per run, and parsed once into the
// options the stages read.
func TestConfigLoadedOncePerRun(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	h := g.Hooks()
	var loads atomic.Int32
	load := h.loadConfig
	h.loadConfig = func() (Config, error) {
		loads.Add(1)
		return load()
	}
	var out bytes.Buffer
	if code := Main(t.Context(), nil, &out, &out, h); code != exit.OK {
		t.Fatalf("exit code %d, want %d:\n%s", code, exit.OK, out.String())
	}
	if n := loads.Load(); n != 1 {
		t.Errorf("the configuration was loaded %d times in one run, want once", n)
	}
}

// parseOptions turns each variable the stages read into its parsed form,
// and refuses a bad one with a configuration error (exit code 2) naming it.
func TestConfigParsedOnceIntoOptions(t *testing.T) {
	base := func() Config {
		return Config{Kinds: "Deployment", Registry: "r.example.com", RegistryType: "generic", Verify: true}
	}
	c := base()
	c.Kinds, c.Namespaces = " StatefulSet ,Deployment,", "b, a,b"
	c.References, c.AcceptHeader = "r.example.com/app:v1", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"
	c.Platforms, c.Window, c.RestartMode = "linux/amd64, linux/arm64/v8", "Mon-Fri 22:00-06:00", "pin"
	o, err := parseOptions(&c, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{
		"kinds": o.kinds, "namespaces": o.namespaces, "pushed": o.pushed.tags, "accept": o.accept,
		"platforms": o.settings.Platforms, "window": o.settings.Window != nil, "pin": o.settings.Pin,
		"hosts": len(o.hosts), "host": o.hosts[0].Name, "signer": o.signer != nil,
	}
	want := map[string]any{
		"kinds": []string{"StatefulSet", "Deployment"}, "namespaces": []string{"b", "a"},
		"pushed":    map[string]bool{"r.example.com/app:v1": true},
		"accept":    []string{"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json"},
		"platforms": []string{"linux/amd64", "linux/arm64/v8"}, "window": true, "pin": true,
		"hosts": 1, "host": "r.example.com", "signer": false,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("options (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"no kind", func(c *Config) { c.Kinds = " , " }, "URUNNER_CONF_WORKLOAD_KINDS: name at least one of"},
		{"unknown kind", func(c *Config) { c.Kinds = "Pod" }, "URUNNER_CONF_WORKLOAD_KINDS: want some of"},
		{"namespace", func(c *Config) { c.Namespaces = "-a" }, `URUNNER_CONF_NAMESPACES: "-a" is not a namespace name`},
		{"reference", func(c *Config) { c.References = "r.example.com/a@md5:00" }, "URUNNER_CONF_REFERENCES:"},
		{"window", func(c *Config) { c.Window = "25:00-26:00" }, "URUNNER_CONF_WINDOW:"},
		{"platform", func(c *Config) { c.Platforms = "linux/amd64,arm64" }, `URUNNER_CONF_PLATFORMS: "arm64" is not os/arch`},
		{"registry type", func(c *Config) { c.RegistryType = "quay" }, "URUNNER_CONF_CONTAINER_REGISTRY_TYPE: want one of"},
		{"no registry", func(c *Config) { c.Registry = "" }, "URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH: required"},
		{"harbor user without password", func(c *Config) { c.RegistryType, c.OriginalSecrets.HarborUser = "harbor", "robot" }, "a user needs a password"},
		{"signature key", func(c *Config) { c.SignatureKeys = "testdata/no-keys" }, "URUNNER_CONF_SIGNATURE_KEYS: directory testdata/no-keys holds no key file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.set(&c)
			_, err := parseOptions(&c, func(string) (string, bool) { return "", false })
			var ce *configError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want a configuration error saying %q", err, tc.want)
			}
		})
	}
}
