package run

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
)

// events returns urunner's Events among those `kubectl describe` shows
// for an object (found, as describe finds them, by the object's UID).
func (g *ground) events(ns string, uid string) []corev1.Event {
	g.t.Helper()
	l, err := g.cs.CoreV1().Events(ns).List(g.t.Context(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", uid).String(),
	})
	if err != nil {
		g.t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range l.Items {
		if e.Source.Component == "urunner" {
			out = append(out, e)
		}
	}
	return out
}

func TestEventsExplainRestartsAndFailures(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	old := g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.deploy(ns, "gone", g.image("team/gone:latest"))
	g.push("team/gone:latest", "v1")
	g.mustRun()
	moved := g.push("team/app:latest", "v2")
	if err := g.reg.DeleteTag(t.Context(), "team/gone:latest"); err != nil {
		t.Fatal(err)
	}
	g.run()
	g.run() // the same failure again: no second Event

	web := g.deployment(ns, "web")
	evs := g.events(ns, string(web.UID))
	if len(evs) != 1 || evs[0].Reason != kube.ReasonDigestChanged || evs[0].Type != corev1.EventTypeNormal {
		t.Fatalf("events on web = %+v, want one Normal %s", evs, kube.ReasonDigestChanged)
	}
	for _, want := range []string{"container app", g.image("team/app:latest"), old, moved} {
		if !strings.Contains(evs[0].Message, want) {
			t.Errorf("event message %q lacks %q", evs[0].Message, want)
		}
	}
	gone := g.deployment(ns, "gone")
	evs = g.events(ns, string(gone.UID))
	if len(evs) != 1 || evs[0].Reason != kube.ReasonLookupFailed || evs[0].Type != corev1.EventTypeWarning {
		t.Fatalf("events on gone after two failing runs = %+v, want exactly one Warning %s", evs, kube.ReasonLookupFailed)
	}
}

func TestStatefulSetsAndDaemonSetsRestartLikeDeployments(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/db:latest", "v1")
	g.push("team/agent:latest", "v1")
	ns := g.namespace(true)
	sel := func(n string) (*metav1.LabelSelector, corev1.PodTemplateSpec) {
		l := map[string]string{"app": n}
		return &metav1.LabelSelector{MatchLabels: l}, corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: l},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: g.image("team/" + n + ":latest")}}},
		}
	}
	s, tpl := sel("db")
	if _, err := g.cs.AppsV1().StatefulSets(ns).Create(t.Context(), &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec:       appsv1.StatefulSetSpec{Selector: s, Template: tpl},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s, tpl = sel("agent")
	if _, err := g.cs.AppsV1().DaemonSets(ns).Create(t.Context(), &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns},
		Spec:       appsv1.DaemonSetSpec{Selector: s, Template: tpl},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	g.settled("StatefulSet", ns, "db") // the PATCHes are counted
	g.settled("DaemonSet", ns, "agent")
	g.mustRun()
	if got := len(g.stored().Refs); got != 2 {
		t.Fatalf("remembered images = %d, want the StatefulSet's and the DaemonSet's", got)
	}
	g.push("team/db:latest", "v2")
	g.push("team/agent:latest", "v2")
	o := g.mustRun()
	if got := g.api.get("PATCH statefulsets") + g.api.get("PATCH daemonsets"); got != 2 {
		t.Errorf("PATCHes = %d, want one each", got)
	}
	for _, want := range []string{"statefulset=db", "daemonset=agent"} {
		if !strings.Contains(o.logs, want) {
			t.Errorf("no restart line with %s:\n%s", want, o.logs)
		}
	}
	sts, _ := g.cs.AppsV1().StatefulSets(ns).Get(t.Context(), "db", metav1.GetOptions{})
	ds, _ := g.cs.AppsV1().DaemonSets(ns).Get(t.Context(), "agent", metav1.GetOptions{})
	if sts.Spec.Template.Annotations[kube.RestartedAtAnnotation] == "" || ds.Spec.Template.Annotations[kube.RestartedAtAnnotation] == "" {
		t.Fatal("StatefulSet or DaemonSet not restarted")
	}
	// The controller manager rolls them: a new ControllerRevision each.
	deadline := time.Now().Add(time.Minute)
	for {
		revs, err := g.cs.AppsV1().ControllerRevisions(ns).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(revs.Items) >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ControllerRevisions, want 2 per workload", len(revs.Items))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A kind switched off is neither listed nor restarted.
	g.setenv("URUNNER_CONF_WORKLOAD_KINDS", "Deployment")
	g.push("team/db:latest", "v3")
	g.mustRun()
	if g.api.get("GET statefulsets") != 0 || g.api.get("PATCH statefulsets") != 0 {
		t.Errorf("StatefulSets listed or patched while switched off: %v", g.api.counts)
	}
}

func TestIgnoreContainersAnnotation(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/app:1", "v1")
	g.push("team/sidecar:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:1"), withContainer("sidecar", g.image("team/sidecar:latest")), func(d *appsv1.Deployment) {
		d.Annotations = map[string]string{kube.IgnoreContainersAnnotation: "sidecar"}
	})
	g.mustRun()
	g.push("team/sidecar:latest", "v2")
	g.mustRun()
	if g.restartedAt(ns, "web") != "" {
		t.Error("an ignored container's image restarted the workload")
	}
	if d := g.seen(g.image("team/sidecar:latest")); d != "" {
		t.Error("an ignored container's image is looked up")
	}
}

func TestPullPolicyMismatch(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"warn", "skip"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			g := newGround(t, testground.RegistryOptions{})
			g.setenv("URUNNER_CONF_PULL_POLICY_MISMATCH", mode)
			g.push("team/app:main", "v1")
			ns := g.namespace(true)
			// :main with no policy gets IfNotPresent from the API server.
			g.deploy(ns, "web", g.image("team/app:main"))
			g.mustRun()
			moved := g.push("team/app:main", "v2")
			o := g.mustRun()
			if !strings.Contains(o.logs, "imagePullPolicy may keep the old one") || !strings.Contains(o.logs, "pull_policy=IfNotPresent") {
				t.Errorf("no pull-policy warning:\n%s", o.logs)
			}
			restarted := g.restartedAt(ns, "web") != ""
			if restarted != (mode == "warn") {
				t.Errorf("restarted = %v in mode %s", restarted, mode)
			}
			if got := g.believes(ns, "web", "app"); got != moved {
				t.Errorf("web is believed to run %s, want the new %s either way", got, moved)
			}
			web := g.deployment(ns, "web")
			found := false
			for _, e := range g.events(ns, string(web.UID)) {
				found = found || e.Reason == kube.ReasonPullPolicy
			}
			if !found {
				t.Error("no pull-policy Warning event")
			}
		})
	}
}

func TestWebhooksAreToldAndNeverFailTheRun(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	var (
		mu    sync.Mutex
		posts [][]byte
	)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts = append(posts, b)
		mu.Unlock()
	}))
	t.Cleanup(ok.Close)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	g.setenv("URUNNER_SECR_WEBHOOK_URL", ok.URL+"/hook")
	g.setenv("URUNNER_SECR_SLACK_WEBHOOK_URL", broken.URL+"/services/T0/B0/SECRETXYZ")
	g.setenv("URUNNER_CONF_CLUSTER_NAME", "test-ground")
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.mustRun() // baseline: nothing to tell
	g.push("team/app:latest", "v2")
	o := g.mustRun() // exit 0 although Slack answers 500
	if strings.Contains(o.logs, "SECRETXYZ") {
		t.Error("the Slack webhook's secret path reached the log")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posts) != 1 {
		t.Fatalf("webhook got %d posts, want 1 (the restart run only)", len(posts))
	}
	var rep struct {
		Cluster  string `json:"cluster"`
		Restarts []struct{ Namespace, Name, Container string }
	}
	if err := json.Unmarshal(posts[0], &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Cluster != "test-ground" || len(rep.Restarts) != 1 || rep.Restarts[0].Name != "web" || rep.Restarts[0].Namespace != ns {
		t.Errorf("webhook report = %s", posts[0])
	}
}

func TestDryRunPrintsThePlan(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/app:latest", "v1")
	g.push("team/new:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.mustRun()
	g.afterTheListing()
	g.deploy(ns, "fresh", g.image("team/new:latest"))
	g.push("team/app:latest", "v2")
	o := g.mustRun("--dry-run")
	for _, want := range []string{"IMAGE", "RUNS", "CURRENT", "ACTION", g.image("team/app:latest"), "restart", "baseline", ns + "/deployment/web:app"} {
		if !strings.Contains(o.logs, want) {
			t.Errorf("plan lacks %q:\n%s", want, o.logs)
		}
	}
}
