package run

// Argo Rollouts whose pod template lives in a Deployment (spec.workloadRef),
// against Argo's own Rollout CRD on the real API server. The Argo
// controller does not run here: where a test needs what it does (resolve
// the Deployment's generation, judge the rollout), the test writes it as
// that controller does, and says so.

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
)

// scaledToZero is the Deployment Argo scaled down once its Rollout took
// over (scaleDown: onsuccess).
func scaledToZero(d *appsv1.Deployment) { d.Spec.Replicas = new(int32) }

// rolloutWithRef creates a canary Rollout of no replicas that runs the pod
// template of Deployment template (spec.workloadRef, of kind kind), with
// a selector of its own.
func (g *ground) rolloutWithRef(dc dynamic.Interface, ns, name, kind, template string) {
	g.t.Helper()
	r := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"replicas":    int64(0),
			"selector":    map[string]any{"matchLabels": map[string]any{"app": template}},
			"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": kind, "name": template, "scaleDown": "onsuccess"},
			"strategy":    map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": int64(50)}, map[string]any{"pause": map[string]any{}}}}},
		},
	}}
	if _, err := dc.Resource(rolloutsGVR).Namespace(ns).Create(g.t.Context(), r, metav1.CreateOptions{}); err != nil {
		g.t.Fatal(err)
	}
}

// templateDeployment creates the Deployment a Rollout takes its template
// from: scaled to zero, with a sidecar beside "app".
func (g *ground) templateDeployment(ns, name, image string) {
	g.t.Helper()
	g.deploy(ns, name, image, scaledToZero, withContainer("sidecar", "busybox:1.36"))
}

func containerImage(d *appsv1.Deployment, name string) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c.Image
		}
	}
	return ""
}

// A Rollout with a workloadRef is found with the Deployment's containers
// and restarted the way `kubectl argo rollouts restart` does it: its own
// spec.restartAt, its own records. The Deployment, which holds the
// template, is left alone, named as the Rollout's template: restarting it
// would be a second, new revision of the Rollout.
func TestARolloutWithWorkloadRefRestartsThroughRestartAt(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	dc := g.rollouts()
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.templateDeployment(ns, "web-template", g.image("team/app:latest"))
	g.rolloutWithRef(dc, ns, "web", "Deployment", "web-template")
	o := g.mustRun()
	if got := g.believesOf("Rollout", ns, "web", "app"); got == "" {
		t.Fatalf("the Rollout's container (from its Deployment) was not recorded:\n%s", o.logs)
	}
	if !strings.Contains(o.logs, "left alone: the pod template of Rollout "+ns+"/web") {
		t.Errorf("no line says the Deployment is left alone as the Rollout's template:\n%s", o.logs)
	}
	before := g.deployment(ns, "web-template")
	moved := g.push("team/app:latest", "v2")

	o = g.mustRun()
	r := g.getRollout(dc, ns, "web")
	at, _, _ := unstructured.NestedString(r.Object, "spec", "restartAt")
	if ts, err := time.Parse(time.RFC3339, at); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("spec.restartAt = %q, want the time of the run:\n%s", at, o.logs)
	}
	if got, want := restartedFor(t, r.GetAnnotations())["app"], g.image("team/app:latest")+"@"+moved; got != want {
		t.Errorf("restarted-for on the Rollout = %q, want %q", got, want)
	}
	after := g.deployment(ns, "web-template")
	if after.Generation != before.Generation || len(after.Spec.Template.Annotations) > 0 {
		t.Errorf("the Deployment was restarted (generation %d → %d, template annotations %v): Argo would take a second revision",
			before.Generation, after.Generation, after.Spec.Template.Annotations)
	}

	o = g.mustRun()
	if again, _, _ := unstructured.NestedString(g.getRollout(dc, ns, "web").Object, "spec", "restartAt"); again != at {
		t.Errorf("restarted again (restartAt %s, was %s):\n%s", again, at, o.logs)
	}
}

// In pin mode the moved container gets tag@digest in the Deployment's
// template, where the Rollout's template lives (Argo takes it as a new
// revision, through the canary steps); the sidecar keeps its image, the
// Rollout gets no spec.restartAt and no template of its own, and its
// records say what it was pinned for, so that the next run follows the
// tag.
func TestARolloutWithWorkloadRefInPinModePinsTheDeployment(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	dc := g.rollouts()
	g.setenv("URUNNER_CONF_RESTART_MODE", "pin")
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.templateDeployment(ns, "web-template", g.image("team/app:latest"))
	g.rolloutWithRef(dc, ns, "web", "Deployment", "web-template")
	g.mustRun()
	moved := g.push("team/app:latest", "v2")
	o := g.mustRun()
	pinned := g.image("team/app:latest") + "@" + moved
	d := g.deployment(ns, "web-template")
	if got := containerImage(d, "app"); got != pinned {
		t.Errorf("the Deployment's app image = %s, want %s:\n%s", got, pinned, o.logs)
	}
	if got := containerImage(d, "sidecar"); got != "busybox:1.36" {
		t.Errorf("sidecar image = %s, want it untouched", got)
	}
	if len(d.Spec.Template.Annotations) > 0 {
		t.Errorf("the Deployment's template got annotations %v, want only the image (the records are the Rollout's)", d.Spec.Template.Annotations)
	}
	r := g.getRollout(dc, ns, "web")
	if at, found, _ := unstructured.NestedString(r.Object, "spec", "restartAt"); found {
		t.Errorf("spec.restartAt = %s in pin mode, want none (the new revision replaces the pods)", at)
	}
	if _, found, _ := unstructured.NestedMap(r.Object, "spec", "template"); found {
		t.Error("the Rollout got a template of its own beside its workloadRef")
	}
	if r.GetAnnotations()[kube.RolloutRestartedAtAnnotation] == "" || restartedFor(t, r.GetAnnotations())["app"] != pinned {
		t.Errorf("records on the Rollout = %v, want restarted-at and restarted-for %s", r.GetAnnotations(), pinned)
	}

	next := g.push("team/app:latest", "v3")
	o = g.mustRun()
	if got, want := containerImage(g.deployment(ns, "web-template"), "app"), g.image("team/app:latest")+"@"+next; got != want {
		t.Errorf("the next push: app image = %s, want %s (the pinned tag is followed):\n%s", got, want, o.logs)
	}
}

// A Rollout whose template cannot be read (the Deployment is missing, its
// read is forbidden, or the workloadRef names another kind) is not
// restarted: the run fails, naming the Rollout and the object, and what
// urunner remembers is kept, so that the move is restarted once the
// template is back.
func TestARolloutWhoseTemplateCannotBeReadHolds(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	dc := g.rollouts()
	first := g.push("team/app:latest", "v1")
	// Namespaced mode, in a namespace no other test's run lists: its
	// unreadable Rollouts would fail those runs.
	ns := g.namespace(false)
	g.setenv("URUNNER_CONF_NAMESPACES", ns)
	g.templateDeployment(ns, "web-template", g.image("team/app:latest"))
	g.rolloutWithRef(dc, ns, "web", "Deployment", "web-template")
	g.rolloutWithRef(dc, ns, "odd", "StatefulSet", "web-template")
	g.rolloutWithRef(dc, ns, "lost", "Deployment", "gone")
	o := g.run()
	for _, want := range []string{
		"Rollout " + ns + "/odd: spec.workloadRef names apps/v1 StatefulSet " + ns + "/web-template",
		"Rollout " + ns + "/lost: spec.workloadRef names Deployment " + ns + "/gone",
	} {
		if o.code != 1 || !strings.Contains(o.logs, want) {
			t.Errorf("exit %d, want 1 and %q:\n%s", o.code, want, o.logs)
		}
	}
	moved := g.push("team/app:latest", "v2")
	g.api.setFault(func(r *http.Request) *http.Response {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/namespaces/"+ns+"/deployments/web-template") {
			return apiStatus(r, http.StatusForbidden, "Forbidden")
		}
		return nil
	})
	o = g.run()
	g.api.setFault(nil)
	if want := "Rollout " + ns + "/web: spec.workloadRef names Deployment " + ns + "/web-template"; o.code != 1 || !strings.Contains(o.logs, want) {
		t.Errorf("forbidden: exit %d, want 1 and %q:\n%s", o.code, want, o.logs)
	}
	if at, found, _ := unstructured.NestedString(g.getRollout(dc, ns, "web").Object, "spec", "restartAt"); found {
		t.Errorf("restarted (restartAt %s) without its template read", at)
	}
	if got := g.believesOf("Rollout", ns, "web", "app"); got != first {
		t.Errorf("believed to run %s after the failed read, want %s kept", got, first)
	}

	o = g.run()
	if at, _, _ := unstructured.NestedString(g.getRollout(dc, ns, "web").Object, "spec", "restartAt"); at == "" {
		t.Errorf("not restarted once its template could be read again:\n%s", o.logs)
	}
	if got := g.believesOf("Rollout", ns, "web", "app"); got != moved {
		t.Errorf("believed to run %s, want %s", got, moved)
	}
}

// A verified pin of a Rollout with a workloadRef is judged once the Argo
// controller has seen the Deployment's new generation; a failed one is
// rolled back in the Deployment (its image back to the tag) and in the
// Rollout's records. The test plays the Argo controller's part: it
// resolves the Deployment's generation onto the Rollout, and reports the
// new template Degraded.
func TestAVerifiedRolloutWithWorkloadRefIsRolledBackInTheDeployment(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	dc := g.rollouts()
	g.setenv("URUNNER_CONF_RESTART_MODE", "pin")
	g.setenv("URUNNER_CONF_VERIFY_ROLLOUT", "true")
	g.setenv("URUNNER_CONF_ROLLBACK", "true")
	g.setenv("URUNNER_CONF_ROLLOUT_TIMEOUT", "30s")
	first := g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.templateDeployment(ns, "web-template", g.image("team/app:latest"))
	g.rolloutWithRef(dc, ns, "web", "Deployment", "web-template")
	initial := g.deployment(ns, "web-template").Generation
	g.argoResolves(dc, ns, "web", initial, "Healthy", "")
	g.mustRun()
	moved := g.push("team/app:latest", "v2")

	stop, done := make(chan struct{}), make(chan struct{})
	go func() { // the Argo controller's part
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			d, err := g.cs.AppsV1().Deployments(ns).Get(t.Context(), "web-template", metav1.GetOptions{})
			if err == nil && d.Generation > initial && containerImage(d, "app") != g.image("team/app:latest") {
				g.argoResolves(dc, ns, "web", d.Generation, "Degraded", "ProgressDeadlineExceeded: ReplicaSet web-7f9c has timed out progressing.")
			}
		}
	}()
	o := g.run()
	close(stop)
	<-done
	if o.code != 1 || !strings.Contains(o.logs, "rolled back to what it ran before") {
		t.Fatalf("exit %d, want 1 and a rollback:\n%s", o.code, o.logs)
	}
	if got, want := containerImage(g.deployment(ns, "web-template"), "app"), g.image("team/app:latest"); got != want {
		t.Errorf("the Deployment's app image after the rollback = %s, want %s", got, want)
	}
	if got := restartedFor(t, g.getRollout(dc, ns, "web").GetAnnotations()); len(got) != 0 {
		t.Errorf("restarted-for after the rollback = %v, want none (as before the restart)", got)
	}
	if q, ok := g.stored().Quarantines[moved]; !ok || !q.HoldsIn(ns) {
		t.Errorf("%s not quarantined: %+v", moved, q)
	}
	if got := g.believesOf("Rollout", ns, "web", "app"); got != first {
		t.Errorf("believed to run %s, want %s", got, first)
	}
}

// argoResolves does what the Argo controller does for a Rollout with a
// workloadRef: it writes the Deployment generation it resolved on the
// Rollout, then the phase of the template of that generation, for the
// Rollout's generation, in its status. Done already: nothing is written.
func (g *ground) argoResolves(dc dynamic.Interface, ns, name string, generation int64, phase, message string) {
	g.t.Helper()
	gen := strconv.FormatInt(generation, 10)
	ri := dc.Resource(rolloutsGVR).Namespace(ns)
	r, err := ri.Get(g.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		g.t.Error(err)
		return
	}
	if observed, _, _ := unstructured.NestedString(r.Object, "status", "workloadObservedGeneration"); observed == gen {
		return
	}
	a := r.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a["rollout.argoproj.io/workload-generation"] = gen
	r.SetAnnotations(a)
	if r, err = ri.Update(g.t.Context(), r, metav1.UpdateOptions{}); err != nil {
		return // written meanwhile: the next look tries again
	}
	_ = unstructured.SetNestedField(r.Object, map[string]any{
		"observedGeneration": strconv.FormatInt(r.GetGeneration(), 10), "workloadObservedGeneration": gen, "phase": phase, "message": message,
	}, "status")
	_, _ = ri.UpdateStatus(g.t.Context(), r, metav1.UpdateOptions{})
}
