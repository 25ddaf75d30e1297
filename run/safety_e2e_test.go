package run

// The safety layer on the real ground (issue 16): soak and retraction,
// rings, approval and notify modes, signatures, what a restart changed.
// Quarantine is in rollout_e2e_test.go.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/notify"
	"github.com/urunner/urunner/policy"
)

func reportOf(t *testing.T, o result) runReport {
	t.Helper()
	i := strings.Index(o.logs, `{"version":2`)
	if i < 0 {
		t.Fatalf("no JSON report in:\n%s", o.logs)
	}
	var rep runReport
	if err := json.NewDecoder(strings.NewReader(o.logs[i:])).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// A new digest restarts nothing until its tag has pointed at it for the
// soak time; one the tag leaves meanwhile is retracted, and said so.
func TestSoakWaitsAndRetracts(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_REPORT", "json")
	g.setenv("URUNNER_CONF_SOAK", "3s")
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.mustRun()

	mid := g.push("team/app:latest", "v2")
	o := g.mustRun()
	if g.restartedAt(ns, "web") != "" || !strings.Contains(o.logs, "soaking") {
		t.Fatalf("restarted before the soak, or no soaking line:\n%s", o.logs)
	}
	now := g.push("team/app:latest", "v3") // the push is corrected within the soak
	o = g.mustRun()
	if g.restartedAt(ns, "web") != "" {
		t.Fatal("restarted onto a digest still soaking")
	}
	rep := reportOf(t, o)
	if len(rep.Retractions) != 1 || rep.Retractions[0].From != mid || rep.Retractions[0].To != now {
		t.Errorf("retractions = %+v, want %s retracted for %s", rep.Retractions, mid, now)
	}
	found := false
	for _, e := range g.events(ns, string(g.deployment(ns, "web").UID)) {
		found = found || e.Reason == kube.ReasonRetracted && strings.Contains(e.Message, short(mid))
	}
	if !found {
		t.Error("no Event says the digest was retracted")
	}
	time.Sleep(3100 * time.Millisecond)
	g.mustRun()
	if g.restartedAt(ns, "web") == "" {
		t.Error("not restarted once the digest had soaked")
	}
	if got := g.believes(ns, "web", "app"); got != now {
		t.Errorf("web believed to run %s, want %s", got, now)
	}
	// web now carries its restarted-for record, and the state's base is
	// the tag's digest: a digest left while it soaks is still retracted.
	mid = g.push("team/app:latest", "v4")
	g.mustRun()
	now = g.push("team/app:latest", "v5")
	o = g.mustRun()
	if rep := reportOf(t, o); len(rep.Retractions) != 1 || rep.Retractions[0].From != mid || !strings.Contains(o.logs, "retracted: ") {
		t.Errorf("retractions = %+v, want %s retracted for %s, logged:\n%s", rep.Retractions, mid, now, o.logs)
	}
}

func ringed(n int) deployOpt {
	return func(d *appsv1.Deployment) {
		if d.Labels == nil {
			d.Labels = map[string]string{}
		}
		d.Labels[policy.RingAnnotation] = fmt.Sprint(n)
	}
}

// Ring 0 restarts onto a new digest first; ring 1 once every ring-0
// workload on the image has rolled it out healthily (here: verified).
func TestRingsRollOutInOrder(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_REPORT", "json")
	g.setenv("URUNNER_CONF_VERIFY_ROLLOUT", "true")
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "canary", g.image("team/app:latest"), ringed(0), replicas(0))
	g.deploy(ns, "main", g.image("team/app:latest"), ringed(1), replicas(0))
	g.deploy(ns, "last", g.image("team/app:latest"), ringed(2), replicas(0))
	g.waitReplicaSets(ns, "main", 1)
	g.mustRun()
	g.push("team/app:latest", "v2")
	o := g.mustRun()
	if g.restartedAt(ns, "canary") == "" || g.restartedAt(ns, "main") != "" || g.restartedAt(ns, "last") != "" {
		t.Fatalf("run 1: only ring 0 should restart:\n%s", o.logs)
	}
	if !strings.Contains(o.logs, "ring 1: waits for ring 0") {
		t.Errorf("no line says ring 1 waits for ring 0:\n%s", o.logs)
	}
	if r := reportOf(t, o).Rings; len(r) != 1 || r[0].Reached != 0 || r[0].Rings != 3 {
		t.Errorf("rings in the report = %+v, want ring 0 of 3 reached", r)
	}
	g.mustRun()
	if g.restartedAt(ns, "main") == "" || g.restartedAt(ns, "last") != "" {
		t.Fatal("run 2: ring 1 should restart, ring 2 wait")
	}
	g.mustRun()
	if g.restartedAt(ns, "last") == "" {
		t.Fatal("run 3: ring 2 should restart")
	}
}

// Approve mode restarts only what a person approved, and says how; notify
// mode never restarts and tells the webhook of each new move once.
func TestApprovalAndNotifyModes(t *testing.T) {
	t.Parallel()
	t.Run("approve", func(t *testing.T) {
		t.Parallel()
		g := newGround(t, testground.RegistryOptions{})
		g.setenv("URUNNER_CONF_APPROVAL", "approve")
		g.push("team/app:latest", "v1")
		ns := g.namespace(true)
		g.deploy(ns, "web", g.image("team/app:latest"))
		g.mustRun()
		moved := g.push("team/app:latest", "v2")
		o := g.mustRun("--dry-run")
		annotate := fmt.Sprintf("kubectl annotate deployment/web -n %s urunner.io/approve=%s --overwrite", ns, moved)
		if !strings.Contains(o.logs, annotate) {
			t.Fatalf("the plan does not say how to approve with the full digest (%s):\n%s", annotate, o.logs)
		}
		g.mustRun()
		if g.restartedAt(ns, "web") != "" {
			t.Fatal("restarted without approval")
		}
		// A prefix approves nothing (anyone who can push can forge one),
		// and the hold says so, with the command that approves.
		approve := func(v string) {
			patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, policy.ApproveAnnotation, v)
			if _, err := g.cs.AppsV1().Deployments(ns).Patch(t.Context(), "web", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		approve(short(moved)[:7])
		o = g.mustRun()
		if g.restartedAt(ns, "web") != "" {
			t.Fatal("restarted on a 7-hex prefix")
		}
		if want := "urunner.io/approve=" + short(moved)[:7] + ": a prefix approves nothing since urunner 0.4; approve the full digest: " + annotate; !strings.Contains(o.logs, want) {
			t.Errorf("no line says %q:\n%s", want, o.logs)
		}
		approve(moved)
		g.mustRun()
		if g.restartedAt(ns, "web") == "" {
			t.Error("not restarted once approved")
		}
	})
	// In namespaced mode the namespace's annotations are read with a GET
	// of it: an approval there counts as in cluster mode.
	t.Run("approved on the namespace, in namespaced mode", func(t *testing.T) {
		t.Parallel()
		g := newGround(t, testground.RegistryOptions{})
		g.setenv("URUNNER_CONF_APPROVAL", "approve")
		g.push("team/app:latest", "v1")
		ns := g.namespace(false)
		g.setenv("URUNNER_CONF_NAMESPACES", ns)
		g.deploy(ns, "web", g.image("team/app:latest"))
		g.mustRun()
		moved := g.push("team/app:latest", "v2")
		g.mustRun()
		if g.restartedAt(ns, "web") != "" {
			t.Fatal("restarted without approval")
		}
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, policy.ApproveAnnotation, moved)
		if _, err := g.cs.CoreV1().Namespaces().Patch(t.Context(), ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		g.mustRun()
		if g.restartedAt(ns, "web") == "" {
			t.Error("not restarted once its namespace approved the digest")
		}
	})
	t.Run("notify", func(t *testing.T) {
		t.Parallel()
		g := newGround(t, testground.RegistryOptions{})
		var (
			mu   sync.Mutex
			msgs []notify.Report
		)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var m struct {
				Waiting []notify.Restart `json:"waiting"`
			}
			b, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(b, &m)
			mu.Lock()
			msgs = append(msgs, notify.Report{Waiting: m.Waiting})
			mu.Unlock()
		}))
		t.Cleanup(hook.Close)
		g.setenv("URUNNER_CONF_APPROVAL", "notify")
		g.setenv("URUNNER_SECR_WEBHOOK_URL", hook.URL)
		g.push("team/app:latest", "v1")
		ns := g.namespace(true)
		g.deploy(ns, "web", g.image("team/app:latest"))
		g.mustRun()
		moved := g.push("team/app:latest", "v2")
		g.mustRun()
		g.mustRun()
		if g.restartedAt(ns, "web") != "" {
			t.Fatal("notify mode restarted")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(msgs) != 1 || len(msgs[0].Waiting) != 1 || msgs[0].Waiting[0].To != moved || !strings.Contains(msgs[0].Waiting[0].Pending, "notify mode") {
			t.Errorf("notifications = %+v, want one, naming the waiting move once", msgs)
		}
	})
}

// cosignKey is a key pair made by the real cosign CLI, its public key in
// a directory as the chart mounts a Secret: hidden ..data entries beside it
// are not keys.
type cosignKey struct {
	bin, dir, keys string
}

func newCosignKey(t *testing.T) cosignKey {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", ".cache", "bin", "cosign"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("cosign is missing: run hack/tools.sh cosign (make test does): %v", err)
	}
	k := cosignKey{bin: bin, dir: t.TempDir()}
	k.cosign(t, "generate-key-pair", "--output-key-prefix", "cosign")
	k.keys = filepath.Join(k.dir, "keys")
	if err := os.MkdirAll(filepath.Join(k.keys, "..2026_11_29"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(k.dir, "cosign.pub"), filepath.Join(k.keys, "cosign.pub")); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k cosignKey) cosign(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), k.bin, args...)
	cmd.Dir = k.dir
	cmd.Env = []string{"HOME=" + k.dir, "COSIGN_PASSWORD=test", "TUF_ROOT=" + filepath.Join(k.dir, "tuf"), "PATH=" + os.Getenv("PATH")}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign %v: %v\n%s", args, err, out)
	}
}

// sign signs image (host/repo@digest) offline, in cosign's bundle format.
func (k cosignKey) sign(t *testing.T, image string) {
	t.Helper()
	k.cosign(t, "sign", "--yes", "--key", filepath.Join(k.dir, "cosign.key"), "--allow-http-registry",
		"--tlog-upload=false", "--use-signing-config=false", image)
}

// signatureWarning reports whether a Warning Event on web in ns names digest
// as refused by the signature policy.
func signatureWarning(g *ground, ns, digest string) bool {
	g.t.Helper()
	for _, e := range g.events(ns, string(g.deployment(ns, "web").UID)) {
		if e.Reason == kube.ReasonSignature && strings.Contains(e.Message, digest) {
			return true
		}
	}
	return false
}

// With a signature policy, only a digest signed by a trusted key (here by
// the real cosign CLI, in the test registry) restarts anything; an unsigned
// one is refused, with a Warning Event and exit 1.
func TestOnlySignedDigestsRestart(t *testing.T) {
	t.Parallel()
	key := newCosignKey(t)
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_SIGNATURE_KEYS", key.keys)
	key.sign(t, g.image("team/app@"+g.push("team/app:latest", "v1")))
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.mustRun()

	unsigned := g.push("team/app:latest", "v2")
	o := g.run()
	if o.code != 1 || g.restartedAt(ns, "web") != "" || !strings.Contains(o.logs, "signature refused") {
		t.Fatalf("an unsigned digest: exit %d, restarted %v; want 1, not restarted, a refusal line:\n%s", o.code, g.restartedAt(ns, "web") != "", o.logs)
	}
	if !signatureWarning(g, ns, unsigned) {
		t.Error("no Warning Event says the digest was refused")
	}
	signed := g.push("team/app:latest", "v3")
	key.sign(t, g.image("team/app@"+signed))
	o = g.mustRun()
	if g.restartedAt(ns, "web") == "" || !strings.Contains(o.logs, "signature verified") {
		t.Errorf("a signed digest did not restart:\n%s", o.logs)
	}
}

// With URUNNER_CONF_SIGNATURE_GRACE, a digest pushed before its signature
// (a pushed run comes before cosign sign) waits quietly: exit 0, no
// Warning, no failure in the report; the run after cosign sign restarts
// onto it. A digest signed, but by an untrusted key, is refused at once,
// grace or not (issue 22, item 12).
func TestUnsignedDigestWaitsForItsSignature(t *testing.T) {
	t.Parallel()
	trusted, stranger := newCosignKey(t), newCosignKey(t)
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_SIGNATURE_KEYS", trusted.keys)
	g.setenv("URUNNER_CONF_SIGNATURE_GRACE", "10m")
	g.setenv("URUNNER_CONF_REPORT", "json")
	trusted.sign(t, g.image("team/app@"+g.push("team/app:latest", "v1")))
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.mustRun()

	pushed := g.push("team/app:latest", "v2")
	for range 2 { // the run the push starts, and the next on schedule
		o := g.run()
		rep := reportOf(t, o)
		if o.code != 0 || g.restartedAt(ns, "web") != "" || rep.Held != 1 || len(rep.Failures) != 0 {
			t.Fatalf("an unsigned digest within the grace: exit %d, restarted %v, held %d, failures %v; want 0, not restarted, held 1, none:\n%s",
				o.code, g.restartedAt(ns, "web") != "", rep.Held, rep.Failures, o.logs)
		}
		want := "waiting for a signature of " + strings.TrimPrefix(pushed, "sha256:")[:12] + " until "
		if !strings.Contains(o.logs, want) || strings.Contains(o.logs, "signature refused") {
			t.Errorf("logs do not say %q, or say it was refused:\n%s", want, o.logs)
		}
	}
	if signatureWarning(g, ns, pushed) {
		t.Error("a Warning Event refuses a digest that waits for its signature")
	}

	trusted.sign(t, g.image("team/app@"+pushed))
	o := g.mustRun()
	restarted := g.restartedAt(ns, "web")
	if restarted == "" || !strings.Contains(o.logs, "signature verified") {
		t.Fatalf("the digest, once signed, did not restart:\n%s", o.logs)
	}

	wrong := g.push("team/app:latest", "v3")
	stranger.sign(t, g.image("team/app@"+wrong))
	o = g.run()
	if o.code != 1 || g.restartedAt(ns, "web") != restarted || !strings.Contains(o.logs, "signature refused") {
		t.Fatalf("a digest signed by an untrusted key within the grace: exit %d; want 1, not restarted, a refusal line:\n%s", o.code, o.logs)
	}
	if !signatureWarning(g, ns, wrong) {
		t.Error("no Warning Event says the wrongly signed digest was refused")
	}
}

// A restart says what changed, from the images' own labels: revisions,
// with a compare link on a known forge, and versions; for one manifest and
// one config GET per digest, only when something moves.
func TestARestartSaysWhatChanged(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_REPORT", "json")
	labels := func(rev, version string) map[string]string {
		return map[string]string{
			"org.opencontainers.image.revision": rev, "org.opencontainers.image.version": version,
			"org.opencontainers.image.source": "https://github.com/acme/shop",
		}
	}
	push := func(seed, rev, version string) string {
		d, err := g.reg.PushLabeledImage(t.Context(), "team/app:latest", seed, labels(rev, version))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	push("v1", "3f2a1c4d5e6f7a8b", "1.2.0")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.mustRun()
	g.reg.ResetRequests()
	g.mustRun()
	if n := g.reg.Requests()["GET manifest"] + g.reg.Requests()["GET blob"]; n != 0 {
		t.Errorf("steady state read %d manifests or blobs, want none", n)
	}
	push("v2", "9b7e02d1c0ffee00", "1.3.0")
	g.reg.ResetRequests()
	o := g.mustRun()
	want := "revision 3f2a1c4d5e6f → 9b7e02d1c0ff (https://github.com/acme/shop/compare/3f2a1c4d5e6f7a8b...9b7e02d1c0ffee00), version 1.2.0 → 1.3.0"
	if rep := reportOf(t, o); len(rep.Restarts) != 1 || rep.Restarts[0].Change != want {
		t.Errorf("report restarts = %+v, want the change %q", rep.Restarts, want)
	}
	found := false
	for _, e := range g.events(ns, string(g.deployment(ns, "web").UID)) {
		found = found || strings.Contains(e.Message, want)
	}
	if !found {
		t.Error("the restart's Event does not say what changed")
	}
	if got := g.reg.Requests(); got["GET manifest"] != 2 || got["GET blob"] != 2 {
		t.Errorf("requests for one move = %v, want 2 manifest and 2 config GETs (old and new digest)", got)
	}
}
