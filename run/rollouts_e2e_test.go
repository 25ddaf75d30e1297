package run

// Argo Rollouts as a workload kind, against Argo's own Rollout CRD (from
// its Go module, installed by hack/tools.sh crds) on the real API server.
// The Argo controller does not run here: where a test needs a rollout's
// outcome, it writes the Rollout's status as that controller does
// (observedGeneration as a string, phase, message), and says so.

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
)

var (
	rolloutsGVR     = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	rolloutCRDOnce  sync.Once
	rolloutCRDError error
)

// rollouts installs the Rollout CRD once per test binary and returns a
// dynamic client; urunner is configured to watch Rollouts too.
func (g *ground) rollouts() dynamic.Interface {
	g.t.Helper()
	rolloutCRDOnce.Do(func() {
		rolloutCRDError = testground.InstallCRD(g.t.Context(), cluster.AdminConfig(), filepath.Join("..", ".cache", "crds", "argoproj.io_rollouts.yaml"))
	})
	if rolloutCRDError != nil {
		g.t.Fatal(rolloutCRDError)
	}
	g.setenv("URUNNER_CONF_WORKLOAD_KINDS", "Deployment,Rollout")
	dc, err := dynamic.NewForConfig(cluster.AdminConfig())
	if err != nil {
		g.t.Fatal(err)
	}
	return dc
}

// rollout creates a canary Rollout of no replicas with one container.
func (g *ground) rollout(dc dynamic.Interface, ns, name, image string, paused bool) {
	g.t.Helper()
	r := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"replicas": int64(0),
			"paused":   paused,
			"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": name}},
				"spec": map[string]any{"containers": []any{
					map[string]any{"name": "sidecar", "image": "busybox:1.36"},
					map[string]any{"name": "app", "image": image},
				}},
			},
			"strategy": map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": int64(50)}, map[string]any{"pause": map[string]any{}}}}},
		},
	}}
	if _, err := dc.Resource(rolloutsGVR).Namespace(ns).Create(g.t.Context(), r, metav1.CreateOptions{}); err != nil {
		g.t.Fatal(err)
	}
}

func (g *ground) getRollout(dc dynamic.Interface, ns, name string) *unstructured.Unstructured {
	g.t.Helper()
	r, err := dc.Resource(rolloutsGVR).Namespace(ns).Get(g.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		g.t.Fatal(err)
	}
	return r
}

func rolloutImage(r *unstructured.Unstructured, container string) string {
	cs, _, _ := unstructured.NestedSlice(r.Object, "spec", "template", "spec", "containers")
	for _, c := range cs {
		if m := c.(map[string]any); m["name"] == container {
			return m["image"].(string)
		}
	}
	return ""
}

func restartedFor(t *testing.T, annotations map[string]string) map[string]string {
	t.Helper()
	got := map[string]string{}
	if v := annotations[kube.RestartedForAnnotation]; v != "" {
		if err := json.Unmarshal([]byte(v), &got); err != nil {
			t.Fatalf("restarted-for %q: %v", v, err)
		}
	}
	return got
}

// A moved tag restarts a Rollout the way `kubectl argo rollouts restart`
// does: spec.restartAt, with no change to its template (no new revision,
// no canary steps); the record goes to the Rollout's own annotations, so
// the next run does not restart it again. Only the moved container counts.
func TestARolloutRestartsThroughRestartAt(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	dc := g.rollouts()
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.rollout(dc, ns, "web", g.image("team/app:latest"), false)
	g.mustRun()
	if got := g.believesOf("Rollout", ns, "web", "app"); got == "" {
		t.Fatal("the Rollout's container was not recorded on the first run")
	}
	before := g.getRollout(dc, ns, "web")
	moved := g.push("team/app:latest", "v2")

	o := g.mustRun()
	after := g.getRollout(dc, ns, "web")
	at, _, _ := unstructured.NestedString(after.Object, "spec", "restartAt")
	if ts, err := time.Parse(time.RFC3339, at); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("spec.restartAt = %q, want the time of the run:\n%s", at, o.logs)
	}
	tplBefore, _, _ := unstructured.NestedMap(before.Object, "spec", "template")
	tplAfter, _, _ := unstructured.NestedMap(after.Object, "spec", "template")
	if b, _ := json.Marshal(tplBefore); string(b) != func() string { a, _ := json.Marshal(tplAfter); return string(a) }() {
		t.Errorf("the template changed (a new revision), want it untouched:\nbefore %v\nafter  %v", tplBefore, tplAfter)
	}
	want := map[string]string{"app": g.image("team/app:latest") + "@" + moved}
	if got := restartedFor(t, after.GetAnnotations()); len(got) != 1 || got["app"] != want["app"] {
		t.Errorf("restarted-for = %v, want %v", got, want)
	}
	found := false
	for _, e := range g.events(ns, string(after.GetUID())) {
		found = found || e.Reason == kube.ReasonDigestChanged && e.InvolvedObject.APIVersion == "argoproj.io/v1alpha1" && e.InvolvedObject.Kind == "Rollout"
	}
	if !found {
		t.Error("no ImageDigestChanged event on the Rollout")
	}

	o = g.mustRun()
	if again, _, _ := unstructured.NestedString(g.getRollout(dc, ns, "web").Object, "spec", "restartAt"); again != at {
		t.Errorf("restarted again (restartAt %s, was %s):\n%s", again, at, o.logs)
	}
}

// In pin mode a Rollout's moved container gets tag@digest in its template
// (a new revision, which Argo takes through the canary steps), the other
// containers keep their images, and spec.restartAt is not set.
func TestARolloutInPinMode(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	dc := g.rollouts()
	g.setenv("URUNNER_CONF_RESTART_MODE", "pin")
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.rollout(dc, ns, "web", g.image("team/app:latest"), false)
	g.mustRun()
	moved := g.push("team/app:latest", "v2")
	o := g.mustRun()
	r := g.getRollout(dc, ns, "web")
	if got, want := rolloutImage(r, "app"), g.image("team/app:latest")+"@"+moved; got != want {
		t.Errorf("app image = %s, want %s:\n%s", got, want, o.logs)
	}
	if got := rolloutImage(r, "sidecar"); got != "busybox:1.36" {
		t.Errorf("sidecar image = %s, want it untouched", got)
	}
	if at, found, _ := unstructured.NestedString(r.Object, "spec", "restartAt"); found {
		t.Errorf("spec.restartAt = %s in pin mode, want none (the new revision replaces the pods)", at)
	}
	if r.GetAnnotations()[kube.RolloutRestartedAtAnnotation] == "" {
		t.Error("no urunner.io/restarted-at: a cooldown would not see the pin")
	}
}

// A paused Rollout is held like a paused Deployment; a Rollout changed
// between urunner's read and its patch is read again and decided again,
// never patched from the old read.
func TestARolloutIsHeldWhenPausedAndNeverPatchedFromAStaleRead(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	dc := g.rollouts()
	g.setenv("URUNNER_CONF_RESTART_MODE", "pin")
	g.push("team/app:latest", "v1")
	g.push("team/app:next", "v1")
	ns := g.namespace(true)
	g.rollout(dc, ns, "paused", g.image("team/app:latest"), true)
	g.rollout(dc, ns, "web", g.image("team/app:latest"), false)
	g.mustRun()
	g.push("team/app:latest", "v2")
	var once sync.Once
	g.api.setFault(func(r *http.Request) *http.Response {
		if r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/namespaces/"+ns+"/rollouts/web") {
			once.Do(func() {
				// a person's `kubectl argo rollouts set image`
				patch := `[{"op":"replace","path":"/spec/template/spec/containers/1/image","value":"` + g.image("team/app:next") + `"}]`
				if _, err := dc.Resource(rolloutsGVR).Namespace(ns).Patch(t.Context(), "web", types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
					t.Error(err)
				}
			})
		}
		return nil
	})
	t.Cleanup(func() { g.api.setFault(nil) })
	o := g.mustRun()
	if !strings.Contains(o.logs, "changed since listed; decided again") {
		t.Errorf("no line says it decided again:\n%s", o.logs)
	}
	if got := rolloutImage(g.getRollout(dc, ns, "web"), "app"); got != g.image("team/app:next") {
		t.Errorf("image = %s after the run, want the person's %s", got, g.image("team/app:next"))
	}
	paused := g.getRollout(dc, ns, "paused")
	if got := rolloutImage(paused, "app"); got != g.image("team/app:latest") {
		t.Errorf("the paused Rollout was pinned (%s)", got)
	}
	if !strings.Contains(o.logs, "restart deferred: paused") {
		t.Errorf("no line says the paused Rollout waits:\n%s", o.logs)
	}
}

// A verified Rollout restart is judged from the phase the Argo controller
// writes for the generation it observed: Healthy completes it, Degraded
// fails it (the digest is quarantined and, with rollback, the record is
// restored), Paused at a canary step is left to a person. The test plays
// the Argo controller's part by writing that status.
func TestAVerifiedRolloutIsJudgedByItsPhase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		phase, message string
		code           int
		log            string
	}{
		{"Healthy", "", 0, "rollout complete"},
		{"Degraded", "ProgressDeadlineExceeded: ReplicaSet web-6c4d has timed out progressing.", 1, "rolled back to what it ran before"},
		{"Paused", "CanaryPauseStep", 0, "promote it with kubectl argo rollouts promote web"},
	} {
		t.Run(tc.phase, func(t *testing.T) {
			t.Parallel()
			g := newGround(t, testground.RegistryOptions{})
			dc := g.rollouts()
			g.setenv("URUNNER_CONF_VERIFY_ROLLOUT", "true")
			g.setenv("URUNNER_CONF_ROLLBACK", "true")
			g.setenv("URUNNER_CONF_ROLLOUT_TIMEOUT", "30s")
			first := g.push("team/app:latest", "v1")
			ns := g.namespace(true)
			g.rollout(dc, ns, "web", g.image("team/app:latest"), false)
			g.mustRun()
			moved := g.push("team/app:latest", "v2")
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { // the Argo controller's part: status for each new generation
				defer close(done)
				seen := int64(0)
				for {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					r, err := dc.Resource(rolloutsGVR).Namespace(ns).Get(t.Context(), "web", metav1.GetOptions{})
					if err != nil || r.GetGeneration() == seen {
						continue
					}
					seen = r.GetGeneration()
					_ = unstructured.SetNestedField(r.Object, map[string]any{
						"observedGeneration": strconv.FormatInt(seen, 10), "phase": tc.phase, "message": tc.message,
					}, "status")
					if _, err := dc.Resource(rolloutsGVR).Namespace(ns).UpdateStatus(t.Context(), r, metav1.UpdateOptions{}); err != nil {
						seen = 0 // try again
					}
				}
			}()
			o := g.run()
			close(stop)
			<-done
			if o.code != tc.code || !strings.Contains(o.logs, tc.log) {
				t.Fatalf("exit %d, want %d and %q:\n%s", o.code, tc.code, tc.log, o.logs)
			}
			want := moved
			if tc.phase == "Degraded" {
				want = first
				if got := restartedFor(t, g.getRollout(dc, ns, "web").GetAnnotations()); len(got) != 0 {
					t.Errorf("restarted-for after the rollback = %v, want none (as before the restart)", got)
				}
				if q, ok := g.stored().Quarantines[moved]; !ok || !q.HoldsIn(ns) {
					t.Errorf("%s not quarantined: %+v", moved, q)
				}
			}
			if got := g.believesOf("Rollout", ns, "web", "app"); got != want {
				t.Errorf("believed to run %s, want %s", got, want)
			}
		})
	}
}
