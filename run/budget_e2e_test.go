package run

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/report"
	"github.com/urunner/urunner/state"
)

// The registry budget against a registry that limits pulls as Docker Hub
// does: each run's report, summary line, stored report and pushed metrics
// say what the registry itself served and what it says is left; a run
// where nothing moved spends no pull.
func TestTheRegistryBudgetIsWhatTheRegistryCounted(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{RateLimit: &testground.RateLimit{Limit: 100, Window: 6 * time.Hour}})
	var (
		mu     sync.Mutex
		pushed []string
	)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		pushed = append(pushed, string(b))
		mu.Unlock()
	}))
	t.Cleanup(gw.Close)
	g.setenv("URUNNER_CONF_REPORT", "json")
	g.setenv("URUNNER_CONF_PUSHGATEWAY_URL", gw.URL)
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	first := g.budgetRun(t) // the baseline
	g.push("team/app:latest", "v2")

	g.reg.ResetRequests()
	o := g.mustRun()
	moved := g.budgetOf(t, o)
	served := g.reg.Requests()
	want := report.Registry{Registry: g.reg.Host, ManifestHeads: served["HEAD manifest"], ManifestGets: served["GET manifest"],
		BlobGets: served["GET blob"], Tokens: served["GET token"], Other: served["GET ping"] + served["GET other"], Pulls: served["GET manifest"],
		RateLimit: &report.RateLimit{Limit: 100, Remaining: g.reg.RateLimitRemaining(), Window: 21600}}
	if diff := cmp.Diff(want, moved); diff != "" {
		t.Errorf("budget of the run that restarted against what the registry served %v (-want +got):\n%s", served, diff)
	}
	if moved.Pulls == 0 {
		t.Error("the change context of the moved digest spent no pull")
	}
	if spent := 100 - g.reg.RateLimitRemaining(); spent != first.Pulls+moved.Pulls {
		t.Errorf("the registry counted %d pulls, the reports %d and %d", spent, first.Pulls, moved.Pulls)
	}
	for _, s := range []string{fmt.Sprintf("registry_pulls=%d", moved.Pulls),
		fmt.Sprintf("registries.%s.manifest_heads=%d", g.reg.Host, moved.ManifestHeads),
		fmt.Sprintf("registries.%s.remaining=%d", g.reg.Host, g.reg.RateLimitRemaining())} {
		if !strings.Contains(o.logs, s) {
			t.Errorf("the summary line lacks %s:\n%s", s, o.logs)
		}
	}
	g.storedBudgetIs(t, moved)
	mu.Lock()
	last := pushed[len(pushed)-1]
	mu.Unlock()
	for _, s := range []string{
		fmt.Sprintf(`urunner_registry_requests{registry=%q,credential="",kind="manifest_head"} %d`, g.reg.Host, moved.ManifestHeads),
		fmt.Sprintf(`urunner_registry_requests{registry=%q,credential="",kind="manifest_get"} %d`, g.reg.Host, moved.ManifestGets),
		fmt.Sprintf(`urunner_registry_pulls{registry=%q,credential=""} %d`, g.reg.Host, moved.Pulls),
		fmt.Sprintf(`urunner_registry_ratelimit_remaining{registry=%q,credential=""} %d`, g.reg.Host, g.reg.RateLimitRemaining()),
		fmt.Sprintf(`urunner_registry_ratelimit_limit{registry=%q,credential=""} 100`, g.reg.Host),
		fmt.Sprintf(`urunner_registry_ratelimit_window_seconds{registry=%q,credential=""} 21600`, g.reg.Host),
	} {
		if !strings.Contains(last, s) {
			t.Errorf("pushed metrics lack %s:\n%s", s, last)
		}
	}

	// Nothing moved: HEADs only, which Docker Hub does not count.
	left := g.reg.RateLimitRemaining()
	if steady := g.budgetRun(t); steady.Pulls != 0 || steady.ManifestHeads == 0 || g.reg.RateLimitRemaining() != left {
		t.Errorf("a run where nothing moved spent %+v; the registry had %d left, now %d", steady, left, g.reg.RateLimitRemaining())
	}
}

// budgetRun runs urunner and returns its report's budget for the ground's
// registry.
func (g *ground) budgetRun(t *testing.T) report.Registry {
	t.Helper()
	return g.budgetOf(t, g.mustRun())
}

// budgetOf returns the budget for the ground's registry in a run's report.
func (g *ground) budgetOf(t *testing.T, o result) report.Registry {
	t.Helper()
	i := strings.Index(o.logs, `{"version":2`)
	if i < 0 {
		t.Fatalf("no report in the run's output:\n%s", o.logs)
	}
	var rep runReport
	if err := json.NewDecoder(strings.NewReader(o.logs[i:])).Decode(&rep); err != nil {
		t.Fatalf("report does not parse: %v", err)
	}
	if len(rep.Registries) != 1 || rep.Registries[0].Registry != g.reg.Host {
		t.Fatalf("report registries %+v, want the ground's registry %s only", rep.Registries, g.reg.Host)
	}
	return rep.Registries[0]
}

// storedBudgetIs checks the report kept in the state carries the budget.
func (g *ground) storedBudgetIs(t *testing.T, want report.Registry) {
	t.Helper()
	cm, err := g.cs.CoreV1().ConfigMaps("default").Get(t.Context(), g.state, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var kept runReport
	if err := json.Unmarshal([]byte(cm.Data[state.ReportKey]), &kept); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]report.Registry{want}, kept.Registries); diff != "" {
		t.Errorf("stored report registries (-want +got):\n%s", diff)
	}
}
