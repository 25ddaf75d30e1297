package run

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/google/go-cmp/cmp"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/state"
)

// The failure matrix: for every row, no wrong restart, no lost digest, one
// clear log line and a documented exit code. Faults are injected by a proxy
// in front of the real registry (testground.Registry.SetFault) and of the
// real API server (apiCounter.fault).

// moved sets up n Deployments, baselines them, and moves every tag.
func (g *ground) moved(n int) (ns string, names []string) {
	g.t.Helper()
	ns = g.namespace(true)
	for i := range n {
		name := fmt.Sprintf("w%d", i)
		g.push("team/"+name+":latest", "v1")
		g.deploy(ns, name, g.image("team/"+name+":latest"))
		names = append(names, name)
	}
	g.mustRun()
	for _, name := range names {
		g.push("team/"+name+":latest", "v2")
	}
	return ns, names
}

// knowledge is what urunner knows that a failure must never change: each
// reference's digests and times, and what each workload is believed to run.
type knowledge struct {
	refs    map[string]state.Ref
	beliefs map[string]string
}

func (g *ground) knowledge(ns string, names []string) knowledge {
	g.t.Helper()
	k := knowledge{refs: map[string]state.Ref{}, beliefs: map[string]string{}}
	if g.stateBytes() != nil {
		for ref, r := range g.stored().Refs {
			r.Failing, r.Error = time.Time{}, "" // a failure may mark a reference failing
			k.refs[ref] = r
		}
	}
	for _, n := range names {
		k.beliefs[n] = g.believes(ns, n, "app")
	}
	return k
}

// unchanged asserts that no Deployment restarted and that urunner knows
// exactly what it knew before.
func (g *ground) unchanged(ns string, names []string, before knowledge) {
	g.t.Helper()
	for _, n := range names {
		if g.restartedAt(ns, n) != "" {
			g.t.Errorf("%s restarted", n)
		}
	}
	if diff := cmp.Diff(before, g.knowledge(ns, names), cmp.AllowUnexported(knowledge{})); diff != "" {
		g.t.Errorf("what urunner knows changed (-before +after):\n%s", diff)
	}
}

func onHead(f func(w http.ResponseWriter, r *http.Request) bool) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodHead {
			return false
		}
		return f(w, r)
	}
}

func TestRegistryFailuresChangeNothing(t *testing.T) {
	t.Parallel()
	inAnHour := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name     string
		fault    func(w http.ResponseWriter, r *http.Request) bool
		log      string
		maxHeads int // bound on HEADs for 3 images: no retry storm
	}{
		{"403 forbidden", func(w http.ResponseWriter, r *http.Request) bool {
			w.WriteHeader(http.StatusForbidden)
			return true
		}, "refused the credentials", 3}, // one each, in flight together; no retry
		{"429 with a long Retry-After", func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}, "rate limit", 3},
		{"429 with an HTTP date an hour away", func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Retry-After", inAnHour)
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}, "rate limit", 3},
		{"500", status(500), "lookup failed", 9},
		{"502", status(502), "lookup failed", 9},
		{"503", status(503), "lookup failed", 9},
		{"504", status(504), "lookup failed", 9},
		{"malformed Docker-Content-Digest", func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Docker-Content-Digest", "sha256:not-a-digest")
			w.WriteHeader(http.StatusOK)
			return true
		}, "lookup failed", 3},
		{"hanging server", func(w http.ResponseWriter, r *http.Request) bool {
			<-r.Context().Done()
			return true
		}, "deadline exceeded", 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGround(t, testground.RegistryOptions{})
			g.setenv("URUNNER_CONF_REGISTRY_TIMEOUT", "2s")
			ns, names := g.moved(3)
			before := g.knowledge(ns, names)
			g.reg.ResetRequests()
			g.reg.SetFault(onHead(tc.fault))
			o := g.run()
			if o.code != 1 {
				t.Errorf("exit code %d, want 1", o.code)
			}
			g.unchanged(ns, names, before)
			if !strings.Contains(o.logs, tc.log) {
				t.Errorf("no %q line:\n%s", tc.log, o.logs)
			}
			if got := g.heads(); got > tc.maxHeads {
				t.Errorf("%d HEAD requests for 3 images, want at most %d", got, tc.maxHeads)
			}
		})
	}
}

func status(code int) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(code)
		return true
	}
}

// A short Retry-After is waited out within the lookup's budget.
func TestShortRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	for _, after := range []string{"1", time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)} {
		t.Run(after, func(t *testing.T) {
			g := newGround(t, testground.RegistryOptions{})
			ns, names := g.moved(1)
			var once atomic.Bool
			g.reg.SetFault(onHead(func(w http.ResponseWriter, r *http.Request) bool {
				if once.Swap(true) {
					return false
				}
				w.Header().Set("Retry-After", after)
				w.WriteHeader(http.StatusTooManyRequests)
				return true
			}))
			g.mustRun()
			if g.restartedAt(ns, names[0]) == "" {
				t.Error("not restarted after waiting out a short Retry-After")
			}
		})
	}
}

// A digest that flips back and forth is a change each time, restarted
// once per change: a registry serving two digests for one tag is visible
// in the logs, never hidden.
func TestFlippingDigestRestartsOncePerChange(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	ns, _ := g.moved(0)
	g.push("team/app:latest", "a")
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.mustRun()
	var gens []int64
	for _, seed := range []string{"b", "a", "a", "b"} {
		g.push("team/app:latest", seed)
		g.mustRun()
		gens = append(gens, g.deployment(ns, "web").Generation)
	}
	// b (restart), a (restart), a (nothing), b (restart)
	if gens[1] == gens[0] || gens[2] != gens[1] || gens[3] == gens[2] {
		t.Errorf("generations %v: want a restart per change and none without", gens)
	}
}

// A PATCH the API server refuses leaves that workload's digest alone; the
// others restart.
func TestRefusedPatchKeepsThatWorkloadsDigest(t *testing.T) {
	t.Parallel()
	for _, code := range []int{409, 403, 422} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			g := newGround(t, testground.RegistryOptions{})
			ns, names := g.moved(3)
			reasons := map[int]string{409: "Conflict", 403: "Forbidden", 422: "Invalid"}
			g.api.setFault(func(r *http.Request) *http.Response {
				if r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/deployments/w1") {
					return apiStatus(r, code, reasons[code])
				}
				if code == 409 && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/deployments/w1") {
					return nil // the re-read after a conflict goes through
				}
				return nil
			})
			t.Cleanup(func() { g.api.setFault(nil) })
			o := g.run()
			if o.code != 1 {
				t.Errorf("exit code %d, want 1", o.code)
			}
			if !strings.Contains(o.logs, "restart failed") || !strings.Contains(o.logs, "deployment=w1") {
				t.Errorf("no restart-failed line for w1:\n%s", o.logs)
			}
			for _, n := range names {
				restarted := g.restartedAt(ns, n) != ""
				if n == "w1" && restarted || n != "w1" && !restarted {
					t.Errorf("%s restarted = %v", n, restarted)
				}
				moved := g.believes(ns, n, "app") == g.digestOf("team/"+n+":latest")
				if n == "w1" && moved || n != "w1" && !moved {
					t.Errorf("%s believed to run the new digest = %v", n, moved)
				}
			}
		})
	}
}

func (g *ground) digestOf(repoTag string) string {
	g.t.Helper()
	d, err := g.reg.PushImage(g.t.Context(), repoTag, "v2") // same seed: same digest, tag unchanged
	if err != nil {
		g.t.Fatal(err)
	}
	return d
}

// A LIST whose continue token expires half-way is a failed listing: nothing
// is pruned, nothing restarted.
func TestExpiredContinueTokenPrunesNothing(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	ns, names := g.moved(2)
	// 501 more Deployments make the LIST take two pages.
	var more []string
	for i := range 501 {
		more = append(more, fmt.Sprintf("filler-%03d", i))
	}
	zero := int32(0)
	parallel(t, more, func(ctx context.Context, name string) error {
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: appsv1.DeploymentSpec{
				Replicas: &zero,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/x:1"}}},
				},
			},
		}
		_, err := g.cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		return err
	})
	before := g.knowledge(ns, names)
	g.api.setFault(func(r *http.Request) *http.Response {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/deployments") && r.URL.Query().Get("continue") != "" {
			return apiStatus(r, http.StatusGone, "Expired")
		}
		return nil
	})
	t.Cleanup(func() { g.api.setFault(nil) })
	o := g.run()
	if o.code != 1 || !strings.Contains(o.logs, "list deployments") {
		t.Errorf("exit %d, want 1 and a listing error:\n%s", o.code, o.logs)
	}
	g.unchanged(ns, names, before)
}

// Serial: it points KUBECONFIG, which every run of the process reads, at
// an unreachable server.
func TestUnreachableAPIServerChangesNothing(t *testing.T) {
	g := newGround(t, testground.RegistryOptions{})
	ns, names := g.moved(1)
	before := g.knowledge(ns, names)
	cfg, err := clientcmd.LoadFromFile(cluster.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		u, _ := url.Parse(c.Server)
		u.Host = "127.0.0.1:1"
		c.Server = u.String()
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kc); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kc)
	o := g.run()
	if o.code != 1 || !strings.Contains(o.logs, "connection refused") {
		t.Errorf("exit %d, want 1 and connection refused:\n%s", o.code, o.logs)
	}
	t.Setenv("KUBECONFIG", cluster.KubeconfigPath)
	g.unchanged(ns, names, before)
}

// SIGTERM after the first restart: the PATCHes in flight are seen
// through, no new one starts, and what was restarted is saved, so the next
// run does not restart it again.
func TestSIGTERMSavesWhatWasDone(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	const n = patchWorkers + 4
	ns, names := g.moved(n)
	for _, name := range names {
		g.settled("Deployment", ns, name)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		mu      sync.Mutex
		patched []string
	)
	g.api.setAfter(func(r *http.Request, resp *http.Response) {
		if r.Method == http.MethodPatch && resp.StatusCode == 200 && strings.HasSuffix(r.URL.Path, "/w0") {
			cancel() // SIGTERM right after the first restart
		}
	})
	// The other PATCHes in flight are slow, and fail once the signal came.
	g.api.setFault(func(r *http.Request) *http.Response {
		if r.Method != http.MethodPatch {
			return nil
		}
		mu.Lock()
		patched = append(patched, r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/w0") {
			return nil
		}
		<-ctx.Done()
		// cancel closes ctx's Done before it cancels the run's contexts
		// derived from it: answering at once, a PATCH would free its worker
		// inside that window, which a real SIGTERM never does (a PATCH in
		// flight is not tied to the signal), and the run could start new
		// work seeing its own context not yet cancelled.
		time.Sleep(100 * time.Millisecond)
		return apiStatus(r, http.StatusServiceUnavailable, "ServiceUnavailable")
	})
	t.Cleanup(func() { g.api.setFault(nil); g.api.setAfter(nil) })
	o := g.runCtx(ctx)
	if o.code != 1 || !strings.Contains(o.logs, "run stopped early") {
		t.Errorf("exit %d, want 1 and a stopped-early line:\n%s", o.code, o.logs)
	}
	// Workloads, not PATCHes: one whose controller wrote its status
	// between the listing and the PATCH is read and patched again.
	if started := len(slices.Compact(slices.Sorted(slices.Values(patched)))); started > patchWorkers {
		t.Errorf("%d workloads patched for %d restarts with %d workers: new work started after SIGTERM (%v)", started, n, patchWorkers, patched)
	}
	moved := g.digestOf("team/w0:latest")
	for _, name := range names {
		restarted := g.restartedAt(ns, name) != ""
		saved := g.believes(ns, name, "app") == moved
		if restarted != (name == "w0") || saved != restarted {
			t.Errorf("%s: restarted %v, new digest saved %v; want both only for w0", name, restarted, saved)
		}
	}
	// The next run finishes the job, without restarting w0 again.
	g.api.setFault(nil)
	g.api.setAfter(nil)
	gen := g.deployment(ns, "w0").Generation
	g.mustRun()
	if g.deployment(ns, "w0").Generation != gen {
		t.Error("w0 restarted twice")
	}
	for _, name := range names[1:] {
		if g.restartedAt(ns, name) == "" {
			t.Errorf("%s not restarted by the next run", name)
		}
	}
}

func TestRunDeadlineChangesNothing(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	ns, names := g.moved(2)
	before := g.knowledge(ns, names)
	g.setenv("URUNNER_CONF_RUN_TIMEOUT", "2s")
	g.setenv("URUNNER_CONF_REGISTRY_TIMEOUT", "1m")
	g.reg.SetFault(onHead(func(w http.ResponseWriter, r *http.Request) bool {
		<-r.Context().Done()
		return true
	}))
	o := g.run()
	if o.code != 1 || !strings.Contains(o.logs, "deadline exceeded") {
		t.Errorf("exit %d, want 1 and deadline exceeded:\n%s", o.code, o.logs)
	}
	g.unchanged(ns, names, before)
}

// The blast-radius cap: more restarts than allowed restarts none.
func TestMaxRestartsCapRestartsNone(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	ns, names := g.moved(3)
	g.setenv("URUNNER_CONF_MAX_RESTARTS", "2")
	o := g.run()
	if o.code != 1 || !strings.Contains(o.logs, "3 workloads would restart, more than URUNNER_CONF_MAX_RESTARTS=2") {
		t.Errorf("exit %d, want 1 and the cap named:\n%s", o.code, o.logs)
	}
	for _, n := range names {
		if g.restartedAt(ns, n) != "" {
			t.Errorf("%s restarted over the cap", n)
		}
	}
	g.setenv("URUNNER_CONF_MAX_RESTARTS", "3")
	g.mustRun()
	for _, n := range names {
		if g.restartedAt(ns, n) == "" {
			t.Errorf("%s not restarted once the cap allowed it", n)
		}
	}
}

// The cap bounds restarts over a window, whatever triggered the runs: a
// base-image rebuild arriving as pushes, one image at a time, is capped
// like one scheduled run; the next full run starts a new window.
func TestTheCapCountsPushedRunsUntilTheNextFullRun(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	ns, names := g.moved(4)
	g.setenv("URUNNER_CONF_MAX_RESTARTS", "2")
	pushed := func(ws ...string) result {
		var refs []string
		for _, w := range ws {
			refs = append(refs, g.image("team/"+w+":latest"))
		}
		g.setenv("URUNNER_CONF_REFERENCES", strings.Join(refs, ","))
		return g.run()
	}
	if o := pushed("w0", "w1"); o.code != 0 || g.restartedAt(ns, "w0") == "" || g.restartedAt(ns, "w1") == "" {
		t.Fatalf("a pushed run within the cap: exit %d, w0 and w1 restarted = %v, %v", o.code, g.restartedAt(ns, "w0") != "", g.restartedAt(ns, "w1") != "")
	}
	o := pushed("w2")
	if want := "1 workloads would restart and 2 restarted since the start of the last full run"; o.code != 1 || !strings.Contains(o.logs, want) {
		t.Errorf("exit %d, want 1 and %q:\n%s", o.code, want, o.logs)
	}
	if g.restartedAt(ns, "w2") != "" {
		t.Error("w2 restarted past the cap by a pushed run")
	}
	g.setenv("URUNNER_CONF_REFERENCES", "")
	g.mustRun() // a full run: its own two restarts are all its window holds
	for _, n := range names[2:] {
		if g.restartedAt(ns, n) == "" {
			t.Errorf("%s not restarted by the full run that started a new window", n)
		}
	}
	if st := g.stored(); len(st.Restarts) != 1 || st.CapSince.IsZero() {
		t.Errorf("after the full run, the window holds %v since %v; want the full run's restarts only", st.Restarts, st.CapSince)
	}
}

// A manual Job during a scheduled one: each changed workload restarts once.
func TestTwoRunsAtOnceRestartOnce(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	ns, names := g.moved(4)
	gens := map[string]int64{}
	for _, n := range names {
		gens[n] = g.deployment(ns, n).Generation
	}
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Go(func() {
			var out bytes.Buffer
			codes[i] = Main(t.Context(), nil, &out, &out, g.Hooks())
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != 0 {
			t.Errorf("run %d exit %d", i, c)
		}
	}
	for _, n := range names {
		if got := g.deployment(ns, n).Generation - gens[n]; got != 1 {
			t.Errorf("%s rolled %d times, want once", n, got)
		}
	}
}
