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

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/state"
)

func annotate(k, v string) deployOpt {
	return func(d *appsv1.Deployment) {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[k] = v
	}
}

// A cooldown defers a second restart; the change waits, stored digest
// untouched, and applies once the cooldown is over.
func TestCooldownDefersThenApplies(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"), annotate(policy.CooldownAnnotation, "1h"))
	g.mustRun()
	g.push("team/app:latest", "v2")
	g.mustRun() // first restart: no earlier one, no cooldown
	first := g.deployment(ns, "web").Generation
	v3 := g.push("team/app:latest", "v3")
	o := g.mustRun()
	if g.deployment(ns, "web").Generation != first {
		t.Fatal("restarted again within the cooldown")
	}
	if !strings.Contains(o.logs, "restart deferred: cooldown of 1h0m0s") || !strings.Contains(o.logs, "held=1") {
		t.Errorf("no deferral line:\n%s", o.logs)
	}
	if g.believes(ns, "web", "app") == v3 {
		t.Error("a deferred restart changed what urunner believes web runs")
	}
	// The cooldown over (annotation shortened), the next run applies it.
	if _, err := g.cs.AppsV1().Deployments(ns).Patch(t.Context(), "web", "application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"urunner.io/cooldown":"1s"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the cooldown is wall-clock by definition
	g.mustRun()
	if g.deployment(ns, "web").Generation == first || g.believes(ns, "web", "app") != v3 {
		t.Error("the deferred change was not applied after the cooldown")
	}
}

// Outside its maintenance window a change is recorded as pending (stored
// digest kept) and applied by the next run inside the window.
func TestMaintenanceWindowDefersThenApplies(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	now := time.Now().UTC()
	closed := fmt.Sprintf("%02d:00-%02d:00 UTC", (now.Hour()+2)%24, (now.Hour()+3)%24)
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.setenv("URUNNER_CONF_WINDOW", closed)
	g.mustRun()
	g.push("team/app:latest", "v2")
	o := g.mustRun()
	if g.restartedAt(ns, "web") != "" || !strings.Contains(o.logs, "outside the maintenance window") {
		t.Fatalf("restarted outside the window, or no deferral line:\n%s", o.logs)
	}
	// The workload's own annotation opens it now.
	open := fmt.Sprintf("%02d:00-%02d:00 UTC", now.Hour(), (now.Hour()+2)%24)
	if _, err := g.cs.AppsV1().Deployments(ns).Patch(t.Context(), "web", "application/merge-patch+json",
		fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, policy.WindowAnnotation, open), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	g.mustRun()
	if g.restartedAt(ns, "web") == "" {
		t.Error("not restarted inside the window")
	}
}

func TestGitOpsManagedWorkloads(t *testing.T) {
	t.Parallel()
	argo := func(d *appsv1.Deployment) {
		d.Annotations = map[string]string{"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/web"}
	}
	flux := func(d *appsv1.Deployment) {
		d.Labels = map[string]string{"kustomize.toolkit.fluxcd.io/name": "apps"}
	}
	for _, mode := range []string{"warn", "skip"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			g := newGround(t, testground.RegistryOptions{})
			g.setenv("URUNNER_CONF_GITOPS", mode)
			g.push("team/app:latest", "v1")
			ns := g.namespace(true)
			g.deploy(ns, "argo", g.image("team/app:latest"), argo)
			g.deploy(ns, "flux", g.image("team/app:latest"), flux)
			g.deploy(ns, "plain", g.image("team/app:latest"))
			g.mustRun()
			g.push("team/app:latest", "v2")
			o := g.mustRun()
			for _, n := range []string{"argo", "flux"} {
				restarted := g.restartedAt(ns, n) != ""
				if restarted != (mode == "warn") {
					t.Errorf("%s restarted = %v in mode %s", n, restarted, mode)
				}
			}
			if g.restartedAt(ns, "plain") == "" {
				t.Error("an unmanaged workload was not restarted")
			}
			if mode == "warn" {
				for _, want := range []string{"managed by Argo CD", "managed by Flux", "deployment=argo"} {
					if !strings.Contains(o.logs, want) {
						t.Errorf("no %q warning:\n%s", want, o.logs)
					}
				}
			}
			// The image string is never rewritten.
			if img := g.deployment(ns, "argo").Spec.Template.Spec.Containers[0].Image; img != g.image("team/app:latest") {
				t.Errorf("image rewritten to %s", img)
			}
		})
	}
}

// The run report: one JSON document on stdout that matches what happened,
// kept in the state ConfigMap, and pushed to a Pushgateway.
func TestRunReportAndMetricsPush(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	var (
		mu     sync.Mutex
		pushed []string
		paths  []string
	)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		pushed = append(pushed, string(b))
		paths = append(paths, r.Method+" "+r.URL.Path)
		mu.Unlock()
	}))
	t.Cleanup(gw.Close)
	g.setenv("URUNNER_CONF_REPORT", "json")
	g.setenv("URUNNER_CONF_PUSHGATEWAY_URL", gw.URL)
	g.setenv("URUNNER_CONF_CLUSTER_NAME", "ground")
	g.push("team/app:latest", "v1")
	g.push("team/gone:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.deploy(ns, "gone", g.image("team/gone:latest"))
	g.mustRun()
	moved := g.push("team/app:latest", "v2")
	if err := g.reg.DeleteTag(t.Context(), "team/gone:latest"); err != nil {
		t.Fatal(err)
	}
	o := g.run()
	var rep runReport
	line := o.logs[strings.Index(o.logs, `{"version":2`):]
	if err := json.NewDecoder(strings.NewReader(line)).Decode(&rep); err != nil {
		t.Fatalf("report does not parse: %v\n%s", err, o.logs)
	}
	if rep.ExitCode != 1 || rep.Restarted != 1 || rep.Failed != 1 || rep.Images != 2 || rep.Requests["HEAD"] != 2 ||
		len(rep.Restarts) != 1 || rep.Restarts[0].Name != "web" || rep.Restarts[0].To != moved ||
		len(rep.Failures) != 1 || !strings.Contains(rep.Failures[0].Image, "team/gone") || rep.Cluster != "ground" {
		t.Errorf("report does not match the run: %+v", rep)
	}
	cm, err := g.cs.CoreV1().ConfigMaps("default").Get(t.Context(), g.state, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var kept runReport
	if err := json.Unmarshal([]byte(cm.Data[state.ReportKey]), &kept); err != nil || kept.Restarted != 1 {
		t.Errorf("report kept in the state = %q (%v)", cm.Data[state.ReportKey], err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The harness's state ConfigMap is not the default one: its group says which.
	if len(pushed) != 2 || paths[1] != "PUT /metrics/job/urunner/namespace/default/state/"+g.state+"/cluster/ground" {
		t.Fatalf("pushes = %v", paths)
	}
	for _, want := range []string{"urunner_run_restarts 1", "urunner_run_failures 1", "urunner_run_registry_head_requests 2", "urunner_run_exit_code 1", "# TYPE urunner_run_images gauge"} {
		if !strings.Contains(pushed[1], want) {
			t.Errorf("pushed metrics lack %q:\n%s", want, pushed[1])
		}
	}
}
