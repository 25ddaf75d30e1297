package run

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/state"
)

// pushLabeled pushes team/app:latest with a revision and a version.
func (g *ground) pushLabeled(seed, rev, version string) string {
	g.t.Helper()
	d, err := g.reg.PushLabeledImage(g.t.Context(), "team/app:latest", seed, map[string]string{
		"org.opencontainers.image.revision": rev, "org.opencontainers.image.version": version,
		"org.opencontainers.image.source": "https://github.com/acme/shop",
	})
	if err != nil {
		g.t.Fatal(err)
	}
	return d
}

// provenanceKept returns the digests of the state's change context cache.
func (g *ground) provenanceKept() []string {
	g.t.Helper()
	cm, err := g.cs.CoreV1().ConfigMaps("default").Get(g.t.Context(), g.state, metav1.GetOptions{})
	if err != nil {
		g.t.Fatal(err)
	}
	data, ok := cm.BinaryData[state.ProvenanceKey]
	if !ok {
		return nil
	}
	ps, err := state.DecodeProvenance(data)
	if err != nil {
		g.t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(ps))
}

// In steady operation a move costs one manifest GET (and one config GET)
// for change context: the digest a tag moves from was read when it moved
// to it, and the state keeps what was read, for the digests the
// references name only.
func TestChangeContextReadsEachMovedDigestOnce(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_REPORT", "json")
	g.pushLabeled("v1", "1111111111111111", "1.0.0")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.mustRun() // the baseline reads nothing
	g.pushLabeled("v2", "2222222222222222", "2.0.0")
	g.mustRun() // the first move reads both digests

	for _, step := range []struct{ seed, rev, version, want string }{
		{"v3", "3333333333333333", "3.0.0", "revision 222222222222 → 333333333333 (https://github.com/acme/shop/compare/2222222222222222...3333333333333333), version 2.0.0 → 3.0.0"},
		{"v4", "4444444444444444", "4.0.0", "revision 333333333333 → 444444444444 (https://github.com/acme/shop/compare/3333333333333333...4444444444444444), version 3.0.0 → 4.0.0"},
	} {
		to := g.pushLabeled(step.seed, step.rev, step.version)
		g.reg.ResetRequests()
		o := g.mustRun()
		if got := g.reg.Requests(); got["GET manifest"] != 1 || got["GET blob"] != 1 {
			t.Errorf("move to %s: requests %v, want 1 manifest and 1 config GET (the digest moved to only)", step.seed, got)
		}
		if rep := reportOf(t, o); len(rep.Restarts) != 1 || rep.Restarts[0].Change != step.want {
			t.Errorf("move to %s: report restarts %+v, want the change %q", step.seed, rep.Restarts, step.want)
		}
		if diff := cmp.Diff([]string{to}, g.provenanceKept()); diff != "" {
			t.Errorf("move to %s: the state's cache keeps (-want +got):\n%s", step.seed, diff)
		}
	}
}

// With a registry's rate limit low once the lookups are made, its optional
// reads wait: no change context GET, no GET of a moved index's platforms,
// one log line that says so. The plain image restarts all the same (its
// change line says less); the moved index holds rather than restart on a
// guess, its digest kept and its move due, and the first run with budget
// again reads its platforms and restarts it.
func TestOptionalReadsWaitForALowRegistryBudget(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{RateLimit: &testground.RateLimit{Limit: 100, Window: 6 * time.Hour}})
	g.setenv("URUNNER_CONF_PLATFORMS", "linux/amd64")
	pushIndex := func(amd64 string) string {
		t.Helper()
		d, _, err := g.reg.PushIndex(t.Context(), "team/multi:latest", map[string]string{"linux/amd64": amd64, "linux/arm64": "arm"})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	pushIndex("a1")
	g.pushLabeled("v1", "1111111111111111", "1.0.0")
	ns := g.namespace(true)
	g.deploy(ns, "multi", g.image("team/multi:latest"))
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.mustRun()

	moved := pushIndex("a2") // the watched platform moved: due to restart
	g.pushLabeled("v2", "2222222222222222", "2.0.0")
	g.reg.SetRateLimitRemaining(5)
	g.reg.ResetRequests()
	o := g.mustRun()
	if got := g.reg.Requests(); got["GET manifest"] != 0 || got["GET blob"] != 0 {
		t.Errorf("with 5 of 100 pulls left: requests %v, want no manifest or blob GET", got)
	}
	line := "registry budget low: lookups first"
	if n := strings.Count(o.logs, line); n != 1 || !strings.Contains(o.logs, "remaining=5") ||
		!strings.Contains(o.logs, "change_context_digests=2") || !strings.Contains(o.logs, "platform_indexes=1") {
		t.Errorf("%d %q lines, want 1 with remaining=5, change_context_digests=2 (web's from and to), platform_indexes=1:\n%s", n, line, o.logs)
	}
	if g.restartedAt(ns, "web") == "" {
		t.Error("the plain image's move waited for its change context")
	}
	if g.restartedAt(ns, "multi") != "" {
		t.Error("the index whose platforms were not read restarted on a guess")
	}
	if !strings.Contains(o.logs, "restart deferred: the watched platforms of index "+short(moved)+" were not read ("+g.reg.Host+" has 5 of 100 pulls left); waits for the registry budget") {
		t.Errorf("no hold for the registry budget:\n%s", o.logs)
	}
	if got := g.seen(g.image("team/multi:latest")); got != moved {
		t.Errorf("remembered %s for the index, want the moved %s", got, moved)
	}

	g.reg.SetRateLimitRemaining(100)
	g.reg.ResetRequests()
	o = g.mustRun()
	if g.restartedAt(ns, "multi") == "" {
		t.Errorf("with budget again the held index did not restart:\n%s", o.logs)
	}
	if strings.Contains(o.logs, line) || g.reg.Requests()["GET manifest"] == 0 {
		t.Errorf("with budget again: requests %v, want the platforms read and no wait:\n%s", g.reg.Requests(), o.logs)
	}
}

// A 429 on a moved index's platforms, with the budget fine at the lookups,
// is no reason to restart: the move holds, its digest kept, and restarts
// once the platforms can be read.
func TestARateLimitedIndexReadHoldsItsMove(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_PLATFORMS", "linux/amd64")
	pushIndex := func(amd64 string) string {
		t.Helper()
		d, _, err := g.reg.PushIndex(t.Context(), "team/multi:latest", map[string]string{"linux/amd64": amd64, "linux/arm64": "arm"})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	pushIndex("a1")
	ns := g.namespace(true)
	g.deploy(ns, "multi", g.image("team/multi:latest"))
	g.mustRun()
	moved := pushIndex("a2")
	g.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/manifests/") {
			return false
		}
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	})
	o := g.run()
	if g.restartedAt(ns, "multi") != "" {
		t.Errorf("a 429 on the index's platforms restarted it:\n%s", o.logs)
	}
	if !strings.Contains(o.logs, "restart deferred: the watched platforms of index "+short(moved)+" were not read ("+g.reg.Host+" answered 429 (rate limited)); waits for the registry budget") {
		t.Errorf("no hold for the 429:\n%s", o.logs)
	}
	if got := g.seen(g.image("team/multi:latest")); got != moved {
		t.Errorf("remembered %s for the index, want the moved %s", got, moved)
	}
	g.reg.SetFault(nil)
	o = g.mustRun()
	if g.restartedAt(ns, "multi") == "" {
		t.Errorf("once the platforms could be read, the held index did not restart:\n%s", o.logs)
	}
}
