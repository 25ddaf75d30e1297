package run

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/urunner/urunner/e2e/testground"
)

// A pushed run (restricted to URUNNER_CONF_REFERENCES) neither resets the
// state's lastSuccess nor replaces the Pushgateway group of full runs: a
// failing scheduled run followed by a successful pushed one still shows
// the failure to the alerts, which read job="urunner".
func TestAPushedRunKeepsTheScheduledRunsFailureVisible(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	var (
		mu     sync.Mutex
		paths  []string
		bodies []string
	)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		paths, bodies = append(paths, r.Method+" "+r.URL.Path), append(bodies, string(b))
		mu.Unlock()
	}))
	t.Cleanup(gw.Close)
	g.setenv("URUNNER_CONF_PUSHGATEWAY_URL", gw.URL)
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.deploy(ns, "gone", g.image("team/gone:latest")) // never pushed: its lookup fails
	if o := g.run(); o.code != 1 {
		t.Fatalf("the scheduled run exited %d, want 1", o.code)
	}
	g.push("team/app:latest", "v2")
	g.setenv("URUNNER_CONF_REFERENCES", g.image("team/app:latest"))
	if o := g.run(); o.code != 0 || g.restartedAt(ns, "web") == "" {
		t.Fatalf("the pushed run exited %d (restarted: %v), want 0 and a restart", o.code, g.restartedAt(ns, "web") != "")
	}
	if st := g.stored(); !st.LastSuccess.IsZero() {
		t.Errorf("lastSuccess %s after a failed full run and a pushed one, want none", st.LastSuccess)
	}
	mu.Lock()
	defer mu.Unlock()
	group := "/namespace/default/state/" + g.state
	want := []string{"PUT /metrics/job/urunner" + group, "PUT /metrics/job/urunner-push" + group}
	if len(paths) != 2 || paths[0] != want[0] || paths[1] != want[1] {
		t.Fatalf("pushes %v, want %v", paths, want)
	}
	if strings.Contains(bodies[1], "urunner_run_last_success_timestamp_seconds") || !strings.Contains(bodies[1], "urunner_run_exit_code 0") {
		t.Errorf("the pushed run's group:\n%s", bodies[1])
	}
	if !strings.Contains(bodies[0], "urunner_run_exit_code 1") {
		t.Errorf("the scheduled run's group:\n%s", bodies[0])
	}
}

// The push of a signature names its subject by digest; the pushed run
// expands it to every stored reference of that repository on that digest,
// and looks them up again: the digest an earlier pushed run refused as
// unsigned restarts once signed, without waiting for the schedule. A
// subject no stored reference has looks nothing up.
func TestASignaturePushRerunsItsSubject(t *testing.T) {
	t.Parallel()
	cosign, err := filepath.Abs(filepath.Join("..", ".cache", "bin", "cosign"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cosign); err != nil {
		t.Fatalf("cosign is missing: run hack/tools.sh cosign (make test does): %v", err)
	}
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), cosign, args...)
		cmd.Dir = dir
		cmd.Env = []string{"HOME=" + dir, "COSIGN_PASSWORD=test", "TUF_ROOT=" + filepath.Join(dir, "tuf"), "PATH=" + os.Getenv("PATH")}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cosign %v: %v\n%s", args, err, out)
		}
	}
	run("generate-key-pair", "--output-key-prefix", "cosign")
	keys := filepath.Join(dir, "keys")
	if err := os.MkdirAll(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "cosign.pub"), filepath.Join(keys, "cosign.pub")); err != nil {
		t.Fatal(err)
	}
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_SIGNATURE_KEYS", keys)
	sign := func(digest string) {
		run("sign", "--yes", "--key", filepath.Join(dir, "cosign.key"), "--allow-http-registry",
			"--tlog-upload=false", "--use-signing-config=false", g.image("team/app@"+digest))
	}
	sign(g.push("team/app:latest", "v1"))
	g.push("team/other:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.deploy(ns, "other", g.image("team/other:latest"))
	g.mustRun()

	// The pushed run comes before the signature: refused.
	unsigned := g.push("team/app:latest", "v2")
	g.setenv("URUNNER_CONF_REFERENCES", g.image("team/app:latest"))
	if o := g.run(); o.code != 1 || g.restartedAt(ns, "web") != "" {
		t.Fatalf("unsigned: exit %d, restarted %v; want 1 and no restart", o.code, g.restartedAt(ns, "web") != "")
	}
	// A subject no stored reference runs: nothing is looked up.
	heads := g.heads()
	g.setenv("URUNNER_CONF_REFERENCES", g.image("team/app@sha256:"+strings.Repeat("0", 64)))
	g.mustRun()
	if g.heads() != heads {
		t.Errorf("a subject nothing runs sent %d HEADs, want none", g.heads()-heads)
	}
	// The signature's push: its subject's reference, and only it, is
	// looked up again and restarts.
	sign(unsigned)
	other := g.stored().Refs[g.image("team/other:latest")].Checked
	g.setenv("URUNNER_CONF_REFERENCES", g.image("team/app@"+unsigned))
	o := g.mustRun()
	if g.restartedAt(ns, "web") == "" || !strings.Contains(o.logs, "its subject's reference is looked up again") {
		t.Errorf("the signed subject did not restart:\n%s", o.logs)
	}
	if st := g.stored(); !st.Refs[g.image("team/other:latest")].Checked.Equal(other) || other.IsZero() {
		t.Errorf("team/other was looked up by the subject's run (checked %s, before %s)", st.Refs[g.image("team/other:latest")].Checked, other)
	}
}
