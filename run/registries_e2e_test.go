package run

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urunner/urunner/e2e/testground"
)

// One install, three registries of three kinds, from the registries file:
// each is asked once per image with its own credentials and TLS settings.
func TestMixedRegistriesInOneRun(t *testing.T) {
	t.Parallel()
	anon := newGround(t, testground.RegistryOptions{})
	private, err := testground.StartRegistry(testground.RegistryOptions{Logins: map[string]string{"robot": "s3cret-harbor"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = private.Close() })
	tlsReg, err := testground.StartRegistry(testground.RegistryOptions{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tlsReg.Close() })
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, tlsReg.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "registries.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(`registries:
  - host: http://%s
  - host: http://%s
    type: harbor
    user: robot
    password: {env: HARBOR_PASS}
  - host: %s
    caFile: %s
`, anon.reg.Host, private.Host, tlsReg.Host, ca)), 0o600); err != nil {
		t.Fatal(err)
	}
	anon.setenv("URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH", "")
	anon.setenv("URUNNER_CONF_REGISTRIES_FILE", file)
	anon.setenv("HARBOR_PASS", "s3cret-harbor")

	ctx := t.Context()
	ns := anon.namespace(true)
	regs := map[string]*testground.Registry{"anon": anon.reg, "private": private, "tls": tlsReg}
	for name, r := range regs {
		if _, err := r.PushImage(ctx, "team/app:latest", "v1"); err != nil {
			t.Fatal(err)
		}
		anon.deploy(ns, name, r.Host+"/team/app:latest")
	}
	o := anon.mustRun()
	if got := remembered(anon.stored()); got != 3 {
		t.Fatalf("remembered %d digests, want 3:\n%s", got, o.logs)
	}
	for _, r := range regs {
		if _, err := r.PushImage(ctx, "team/app:latest", "v2"); err != nil {
			t.Fatal(err)
		}
		r.ResetRequests()
	}
	o = anon.mustRun()
	for name, r := range regs {
		if anon.restartedAt(ns, name) == "" {
			t.Errorf("%s: not restarted", name)
		}
		if got := r.Requests()["HEAD manifest"]; got < 1 || got > 2 {
			t.Errorf("%s: %d HEAD requests, want 1 (2 with the auth challenge)", name, got)
		}
	}
	if strings.Contains(o.logs, "s3cret-harbor") {
		t.Error("a password reached the log")
	}
	for name, r := range regs {
		if anon.seen(r.Host+"/team/app:latest") == "" {
			t.Errorf("%s's image missing from state", name)
		}
	}
}

// TLS is never silently relaxed: an unknown CA fails the lookup; turning
// verification off is an explicit, per-host, logged choice.
func TestTLSVerificationIsPerHostAndExplicit(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{TLS: true})
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))

	o := g.run()
	if o.code != 1 || !strings.Contains(o.logs, "certificate") || !strings.Contains(o.logs, "set URUNNER_CONF_DOCKER_API_VERIFY=false") {
		t.Errorf("a registry with an unknown CA: exit %d, want 1 and a certificate error naming the setting:\n%s", o.code, o.logs)
	}
	if g.stateBytes() != nil && remembered(g.stored()) != 0 {
		t.Error("a lookup over unverified TLS was recorded")
	}

	g.setenv("URUNNER_CONF_DOCKER_API_VERIFY", "false")
	o = g.mustRun()
	if !strings.Contains(o.logs, "TLS verification is off for this registry") {
		t.Errorf("no warning that verification is off:\n%s", o.logs)
	}
	if remembered(g.stored()) != 1 {
		t.Error("with verification off, the lookup did not succeed")
	}
}

// Docker Hub (and any registry following the RateLimit headers draft)
// reports its pull budget; urunner warns once when a tenth or less is left.
func TestLowRateLimitBudgetIsWarnedAbout(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	d := g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodHead {
			return false
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", d)
		w.Header().Set("RateLimit-Limit", "100;w=21600")
		w.Header().Set("RateLimit-Remaining", "7;w=21600")
		w.WriteHeader(http.StatusOK)
		return true
	})
	o := g.mustRun()
	if n := strings.Count(o.logs, "registry rate limit running low"); n != 1 || !strings.Contains(o.logs, "remaining=7") || !strings.Contains(o.logs, "window=21600s") {
		t.Errorf("%d low-budget warnings, want 1 with remaining=7 and window=21600s:\n%s", n, o.logs)
	}
}

// A registry named without a scheme that speaks only plain HTTP: with TLS
// verification on, the run fails saying which setting to change and
// records nothing; with it off, urunner talks HTTP to it as Docker does for
// an insecure registry, and says so.
func TestARegistryWithoutSchemeThatSpeaksOnlyHTTP(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{Logins: map[string]string{"ci": "secret"}})
	g.setenv("URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH", g.reg.Host)
	g.setenv("URUNNER_SECR_REGISTRY_USER", "ci")
	g.setenv("URUNNER_SECR_REGISTRY_PASS", "secret")
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))

	o := g.run()
	want := "set URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH=http://" + g.reg.Host
	said := 0
	for _, line := range strings.Split(o.logs, "\n") {
		if strings.Contains(line, want) && !strings.Contains(line, " DBG ") {
			said++
		}
	}
	if o.code != 1 || said != 1 {
		t.Errorf("exit %d, want 1 and one line (beside debug ones) saying %q:\n%s", o.code, want, o.logs)
	}
	if g.stateBytes() != nil && remembered(g.stored()) != 0 {
		t.Error("a failed lookup was recorded")
	}

	g.setenv("URUNNER_CONF_DOCKER_API_VERIFY", "false")
	o = g.mustRun()
	if !strings.Contains(o.logs, "does not speak TLS; talking plain HTTP") {
		t.Errorf("no warning that the registry is spoken to over plain HTTP:\n%s", o.logs)
	}
	if remembered(g.stored()) != 1 {
		t.Error("with verification off, the lookup over plain HTTP did not succeed")
	}
}
