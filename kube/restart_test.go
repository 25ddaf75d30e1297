package kube_test

import (
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/urunner/urunner/kube"
)

// restartAt is a restart's time in another zone: the annotation is UTC.
var (
	restartAt     = time.Date(2026, 5, 6, 7, 8, 9, 0, time.FixedZone("CET", 3600))
	restartAtText = "2026-05-06T06:08:09Z"
)

// threeContainers is a template with an init container "setup", a
// "sidecar" and an "app", and a record for setup from an earlier restart.
func threeContainers(tpl *corev1.PodTemplateSpec) {
	tpl.Annotations = map[string]string{kube.RestartedForAnnotation: `{"setup":"registry.example.com/team/setup:1@` + digestA + `"}`}
	tpl.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "registry.example.com/team/setup:1"}}
	tpl.Spec.Containers = []corev1.Container{
		{Name: "sidecar", Image: "registry.example.com/team/proxy:1"},
		{Name: "app", Image: "registry.example.com/team/app:1"},
	}
}

// appsWorkload creates a workload of kind (apps/v1, no replicas) with
// threeContainers, changed by edit, and returns a function reading its
// metadata and pod template as they are.
func appsWorkload(t *testing.T, kind, ns, name string, edit func(*corev1.PodTemplateSpec)) func() (metav1.ObjectMeta, corev1.PodTemplateSpec) {
	t.Helper()
	tpl := func(p *corev1.PodTemplateSpec) { threeContainers(p); edit(p) }
	cs := admin(t)
	switch kind {
	case "Deployment":
		deployment(t, ns, name, 0, func(d *appsv1.Deployment) { tpl(&d.Spec.Template) })
		return func() (metav1.ObjectMeta, corev1.PodTemplateSpec) {
			d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return d.ObjectMeta, d.Spec.Template
		}
	case "StatefulSet":
		statefulSet(t, ns, name, 0, func(s *appsv1.StatefulSet) { tpl(&s.Spec.Template) })
		return func() (metav1.ObjectMeta, corev1.PodTemplateSpec) {
			s, err := cs.AppsV1().StatefulSets(ns).Get(t.Context(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return s.ObjectMeta, s.Spec.Template
		}
	}
	daemonSet(t, ns, name, func(d *appsv1.DaemonSet) { tpl(&d.Spec.Template) })
	return func() (metav1.ObjectMeta, corev1.PodTemplateSpec) {
		d, err := cs.AppsV1().DaemonSets(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d.ObjectMeta, d.Spec.Template
	}
}

func images(tpl corev1.PodTemplateSpec) map[string]string {
	out := map[string]string{}
	for _, c := range slices.Concat(tpl.Spec.InitContainers, tpl.Spec.Containers) {
		out[c.Name] = c.Image
	}
	return out
}

func records(t *testing.T, annotations map[string]string) map[string]string {
	t.Helper()
	v, ok := annotations[kube.RestartedForAnnotation]
	if !ok {
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		t.Fatalf("%s %q: %v", kube.RestartedForAnnotation, v, err)
	}
	return m
}

// managedBy says whether manager wrote fields of the object.
func managedBy(meta metav1.ObjectMeta, manager string) bool {
	return slices.ContainsFunc(meta.ManagedFields, func(e metav1.ManagedFieldsEntry) bool { return e.Manager == manager })
}

// A restart writes kubectl's restartedAt (UTC) to the pod template, which
// rolls the workload, and urunner's record merged into the one there; the
// images stay, the field manager is urunner, and the generation it returns
// is the workload's after the patch. In pin mode it sets only the named
// containers' images, init containers included.
func TestRestartWritesThePodTemplate(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	before := map[string]string{
		"setup": "registry.example.com/team/setup:1", "sidecar": "registry.example.com/team/proxy:1", "app": "registry.example.com/team/app:1",
	}
	for _, kind := range []string{"Deployment", "StatefulSet", "DaemonSet"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			for _, pin := range []bool{false, true} {
				name := map[bool]string{false: "restarted", true: "pinned"}[pin]
				read := appsWorkload(t, kind, ns, name, func(*corev1.PodTemplateSpec) {})
				w := settled(t, c, kind, ns, name)
				r := kube.Restart{At: restartAt, Records: map[string]string{"app": "registry.example.com/team/app:1@" + digestB}}
				want := maps.Clone(before)
				if pin {
					r.Pins = map[string]string{"app": "registry.example.com/team/app:1@" + digestB, "setup": "registry.example.com/team/setup:1@" + digestB}
					want["app"], want["setup"] = r.Pins["app"], r.Pins["setup"]
				}
				gen, err := c.Restart(t.Context(), w, r)
				if err != nil {
					t.Fatal(err)
				}
				meta, tpl := read()
				if got := tpl.Annotations[kube.RestartedAtAnnotation]; got != restartAtText {
					t.Errorf("%s: restartedAt = %q, want %q", name, got, restartAtText)
				}
				wantRecords := map[string]string{"setup": "registry.example.com/team/setup:1@" + digestA, "app": "registry.example.com/team/app:1@" + digestB}
				if diff := cmp.Diff(wantRecords, records(t, tpl.Annotations)); diff != "" {
					t.Errorf("%s: restarted-for (-want +got):\n%s", name, diff)
				}
				if diff := cmp.Diff(want, images(tpl)); diff != "" {
					t.Errorf("%s: images (-want +got):\n%s", name, diff)
				}
				if gen != meta.Generation || gen != w.Generation+1 {
					t.Errorf("%s: Restart returned generation %d; the workload's is %d, was %d", name, gen, meta.Generation, w.Generation)
				}
				if !managedBy(meta, "urunner") {
					t.Errorf("%s: no managedFields entry of urunner: %v", name, meta.ManagedFields)
				}
			}
		})
	}
}

// A second restart in the same second as the first, for the same digest
// (a delivery checked right after its restart, runs in quick succession),
// still rolls: the same restartedAt would change nothing, so it is
// written with the second's fraction.
func TestARestartInTheSameSecondStillRolls(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	read := appsWorkload(t, "Deployment", ns, "twice", func(*corev1.PodTemplateSpec) {})
	r := kube.Restart{At: restartAt, Records: map[string]string{"app": "registry.example.com/team/app:1@" + digestB}}
	first, err := c.Restart(t.Context(), settled(t, c, "Deployment", ns, "twice"), r)
	if err != nil {
		t.Fatal(err)
	}
	r.At = restartAt.Add(300 * time.Millisecond)
	second, err := c.Restart(t.Context(), settled(t, c, "Deployment", ns, "twice"), r)
	if err != nil {
		t.Fatal(err)
	}
	_, tpl := read()
	if second != first+1 {
		t.Errorf("the second restart left generation %d after %d: it rolled nothing", second, first)
	}
	if got, want := tpl.Annotations[kube.RestartedAtAnnotation], r.At.UTC().Format(time.RFC3339Nano); got != want {
		t.Errorf("restartedAt = %q, want %q", got, want)
	}
}

// A restart applies only to the object it was decided on: a workload
// changed since it was read (here, only a label) answers ErrConflict, and
// its template is left as it is.
func TestRestartOfAChangedWorkloadConflicts(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	read := appsWorkload(t, "Deployment", ns, "web", func(*corev1.PodTemplateSpec) {})
	w := settled(t, c, "Deployment", ns, "web")
	if _, err := admin(t).AppsV1().Deployments(ns).Patch(t.Context(), "web", types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"shop"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Restart(t.Context(), w, kube.Restart{At: restartAt, Records: map[string]string{"app": "x@" + digestB}})
	if !errors.Is(err, kube.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	if _, tpl := read(); tpl.Annotations[kube.RestartedAtAnnotation] != "" {
		t.Errorf("template annotations %v, want no restartedAt", tpl.Annotations)
	}
	if _, err := c.Restart(t.Context(), kube.Workload{Kind: "CronJob", Namespace: ns, Name: "web"}, kube.Restart{At: restartAt}); !errors.Is(err, kube.ErrUnsupportedKind) {
		t.Errorf("restart of a CronJob: err = %v, want ErrUnsupportedKind", err)
	}
}

// A rollback puts back what the restart changed, the restart annotations
// as they were (restartedAt removed where there was none) and the pinned
// images, and only that: the workload then reads as before its restart.
func TestRollbackRestoresTheTemplate(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	pins := map[string]string{"app": "registry.example.com/team/app:1@" + digestB, "setup": "registry.example.com/team/setup:1@" + digestB}
	for _, kind := range []string{"Deployment", "StatefulSet", "DaemonSet"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct{ name, restartedAt string }{
				{"never-restarted", ""},
				{"restarted-before", "2026-01-01T00:00:00Z"},
			} {
				read := appsWorkload(t, kind, ns, tc.name, func(tpl *corev1.PodTemplateSpec) {
					if tc.restartedAt != "" {
						tpl.Annotations[kube.RestartedAtAnnotation] = tc.restartedAt
					}
				})
				w := settled(t, c, kind, ns, tc.name)
				_, tplBefore := read()
				gen, err := c.Restart(t.Context(), w, kube.Restart{At: restartAt, Records: map[string]string{"app": pins["app"]}, Pins: pins})
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Rollback(t.Context(), w, gen); err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				_, tplAfter := read()
				if diff := cmp.Diff(tplBefore.Annotations, tplAfter.Annotations); diff != "" {
					t.Errorf("%s: template annotations (-before +after rollback):\n%s", tc.name, diff)
				}
				if diff := cmp.Diff(images(tplBefore), images(tplAfter)); diff != "" {
					t.Errorf("%s: images (-before +after rollback):\n%s", tc.name, diff)
				}
			}
		})
	}
}

// A rollback never reverts someone's edit: after a change of the spec
// since the restart, it answers ErrChangedSinceRestart and leaves the
// workload as they made it.
func TestRollbackLeavesSomeoneElsesEdit(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	read := appsWorkload(t, "Deployment", ns, "web", func(*corev1.PodTemplateSpec) {})
	w := settled(t, c, "Deployment", ns, "web")
	gen, err := c.Restart(t.Context(), w, kube.Restart{At: restartAt, Records: map[string]string{"app": "x@" + digestB}})
	if err != nil {
		t.Fatal(err)
	}
	edit := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example.com/team/app:2"}]}}}}`
	if _, err := admin(t).AppsV1().Deployments(ns).Patch(t.Context(), "web", types.StrategicMergePatchType, []byte(edit), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	_, tplEdited := read()
	if err := c.Rollback(t.Context(), w, gen); !errors.Is(err, kube.ErrChangedSinceRestart) {
		t.Fatalf("err = %v, want ErrChangedSinceRestart", err)
	}
	_, tpl := read()
	if diff := cmp.Diff(tplEdited, tpl); diff != "" {
		t.Errorf("template (-edited +after the refused rollback):\n%s", diff)
	}
}

// RemoveAnnotation removes the workload's own annotation only while it
// still has the value urunner saw, and rolls nothing: the pod template
// stays as it was. (A Deployment's generation moves with its annotations.)
func TestRemoveAnnotation(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	const key = "urunner.io/lift-quarantine"
	deployment(t, ns, "web", 0, func(d *appsv1.Deployment) {
		d.Annotations = map[string]string{key: "abc", "team.example.com/owner": "shop"}
	})
	settled(t, c, "Deployment", ns, "web")
	before, err := admin(t).AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveAnnotation(t.Context(), "Deployment", ns, "web", key, "another"); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, "Deployment", ns, "web").Annotations[key]; got != "abc" {
		t.Errorf("after removing another value: %s = %q, want it kept", key, got)
	}
	if err := c.RemoveAnnotation(t.Context(), "Deployment", ns, "web", key, "abc"); err != nil {
		t.Fatal(err)
	}
	d, err := admin(t).AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Annotations[key]; ok || d.Annotations["team.example.com/owner"] != "shop" {
		t.Errorf("annotations %v; want %s removed, the others kept", d.Annotations, key)
	}
	if diff := cmp.Diff(before.Spec.Template, d.Spec.Template); diff != "" {
		t.Errorf("the pod template changed (-before +after):\n%s", diff)
	}
}

// argoObject reads a Rollout as the admin sees it: its metadata, its
// template and its spec.restartAt.
func argoObject(t *testing.T, ns, name string) (metav1.ObjectMeta, corev1.PodTemplateSpec, string) {
	t.Helper()
	u, err := rollouts(t).Resource(rolloutsGVR).Namespace(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			RestartAt string                 `json:"restartAt"`
			Template  corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r); err != nil {
		t.Fatal(err)
	}
	return r.ObjectMeta, r.Spec.Template, r.Spec.RestartAt
}

// A Rollout restarts as `kubectl argo rollouts restart` does it: by
// spec.restartAt, its template untouched (no new revision); its records
// go to its own metadata, merged, beside the annotations already there or
// as its first ones. In pin mode the named containers' images change in
// the template, and spec.restartAt is left alone.
func TestRestartARollout(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	tpl := template("web", "")
	threeContainers(&tpl)
	delete(tpl.Annotations, kube.RestartedForAnnotation)
	owner := map[string]string{"team.example.com/owner": "shop", kube.RestartedForAnnotation: `{"setup":"registry.example.com/team/setup:1@` + digestA + `"}`}
	pins := map[string]string{"app": "registry.example.com/team/app:1@" + digestB, "setup": "registry.example.com/team/setup:1@" + digestB}
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		pins        map[string]string
	}{
		{"bare", nil, nil},
		{"annotated", owner, nil},
		{"bare-pinned", nil, pins},
		{"annotated-pinned", owner, pins},
	} {
		rollout(t, metav1.ObjectMeta{Namespace: ns, Name: tc.name, Annotations: tc.annotations}, tpl)
		_, tplBefore, _ := argoObject(t, ns, tc.name)
		w := get(t, c, "Rollout", ns, tc.name)
		gen, err := c.Restart(t.Context(), w, kube.Restart{At: restartAt, Records: map[string]string{"app": "registry.example.com/team/app:1@" + digestB}, Pins: tc.pins})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		meta, tplAfter, restartAt := argoObject(t, ns, tc.name)
		wantAnnotations := maps.Clone(tc.annotations)
		if wantAnnotations == nil {
			wantAnnotations = map[string]string{}
		}
		wantRecords := map[string]string{"app": "registry.example.com/team/app:1@" + digestB}
		if tc.annotations != nil {
			wantRecords["setup"] = "registry.example.com/team/setup:1@" + digestA
		}
		wantAnnotations[kube.RolloutRestartedAtAnnotation] = restartAtText
		delete(wantAnnotations, kube.RestartedForAnnotation)
		gotRecords := records(t, meta.Annotations)
		delete(meta.Annotations, kube.RestartedForAnnotation)
		if diff := cmp.Diff(wantAnnotations, meta.Annotations); diff != "" {
			t.Errorf("%s: annotations besides restarted-for (-want +got):\n%s", tc.name, diff)
		}
		if diff := cmp.Diff(wantRecords, gotRecords); diff != "" {
			t.Errorf("%s: restarted-for (-want +got):\n%s", tc.name, diff)
		}
		wantImages := images(tplBefore)
		wantRestartAt := restartAtText
		if tc.pins != nil {
			maps.Copy(wantImages, tc.pins)
			wantRestartAt = ""
		} else if diff := cmp.Diff(tplBefore, tplAfter); diff != "" {
			t.Errorf("%s: the template changed (a new revision) (-before +after):\n%s", tc.name, diff)
		}
		if diff := cmp.Diff(wantImages, images(tplAfter)); diff != "" {
			t.Errorf("%s: images (-want +got):\n%s", tc.name, diff)
		}
		if restartAt != wantRestartAt || gen != meta.Generation {
			t.Errorf("%s: spec.restartAt %q, want %q; Restart returned generation %d, the Rollout's is %d", tc.name, restartAt, wantRestartAt, gen, meta.Generation)
		}
	}
}

// A Rollout's rollback puts back its records and, in pin mode, its
// images; a Rollout changed since it was read conflicts.
func TestRollbackARollout(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	tpl := template("web", "")
	threeContainers(&tpl)
	for _, annotations := range []map[string]string{nil, {"team.example.com/owner": "shop", kube.RestartedForAnnotation: `{"app":"registry.example.com/team/app:1@` + digestA + `"}`}} {
		name := map[bool]string{true: "bare", false: "annotated"}[annotations == nil]
		rollout(t, metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations}, tpl)
		metaBefore, tplBefore, _ := argoObject(t, ns, name)
		w := get(t, c, "Rollout", ns, name)
		gen, err := c.Restart(t.Context(), w, kube.Restart{
			At: restartAt, Records: map[string]string{"app": "registry.example.com/team/app:1@" + digestB},
			Pins: map[string]string{"app": "registry.example.com/team/app:1@" + digestB},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Rollback(t.Context(), w, gen); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		meta, tplAfter, _ := argoObject(t, ns, name)
		if len(meta.Annotations) == 0 {
			meta.Annotations = nil // the last one removed leaves {}
		}
		if diff := cmp.Diff(metaBefore.Annotations, meta.Annotations); diff != "" {
			t.Errorf("%s: annotations (-before +after rollback):\n%s", name, diff)
		}
		if diff := cmp.Diff(images(tplBefore), images(tplAfter)); diff != "" {
			t.Errorf("%s: images (-before +after rollback):\n%s", name, diff)
		}
	}

	w := get(t, c, "Rollout", ns, "bare")
	if _, err := rollouts(t).Resource(rolloutsGVR).Namespace(ns).Patch(t.Context(), "bare", types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"shop"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Restart(t.Context(), w, kube.Restart{At: restartAt}); !errors.Is(err, kube.ErrConflict) {
		t.Errorf("restart of a Rollout changed since it was read: err = %v, want ErrConflict", err)
	}
}

// A rollback is refused for a change of the spec only: a write that left
// the spec alone between its read and its patch (a controller's status,
// a label) is read again and the rollback made.
func TestRollbackOutlastsWritesThatLeaveTheSpec(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	read := appsWorkload(t, "Deployment", ns, "web", func(*corev1.PodTemplateSpec) {})
	w := settled(t, newClient(t, nil), "Deployment", ns, "web")
	_, tplBefore := read()
	// On the rollback's first PATCH, someone labels the Deployment first.
	var labelled atomic.Bool
	cfg := cluster.AdminConfig()
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/deployments/web") && rolledBack(r) && labelled.CompareAndSwap(false, true) {
				if _, err := admin(t).AppsV1().Deployments(ns).Patch(r.Context(), "web", types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"shop"}}}`), metav1.PatchOptions{}); err != nil {
					return nil, err
				}
			}
			return rt.RoundTrip(r)
		})
	}
	c := newClient(t, cfg)
	gen, err := c.Restart(t.Context(), w, kube.Restart{
		At: restartAt, Records: map[string]string{"app": "x@" + digestB}, Pins: map[string]string{"app": "registry.example.com/team/app:1@" + digestB},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Rollback(t.Context(), w, gen); err != nil {
		t.Fatalf("rollback after a label: %v", err)
	}
	if !labelled.Load() {
		t.Fatal("the rollback's PATCH was not seen")
	}
	_, tpl := read()
	if diff := cmp.Diff(images(tplBefore), images(tpl)); diff != "" {
		t.Errorf("images (-before +after rollback):\n%s", diff)
	}
}

// rolledBack says whether a PATCH request is a rollback's: it removes
// restartedAt (null), which a restart never does.
func rolledBack(r *http.Request) bool {
	if r.GetBody == nil {
		return false
	}
	body, err := r.GetBody()
	if err != nil {
		return false
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	return err == nil && strings.Contains(string(b), `"`+kube.RestartedAtAnnotation+`":null`)
}

// RemoveAnnotation reads again after a conflict (someone wrote to the
// workload between its read and its patch) and removes the annotation
// while it still has the value.
func TestRemoveAnnotationOutlastsAConflict(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	const key = "urunner.io/lift-quarantine"
	deployment(t, ns, "web", 0, func(d *appsv1.Deployment) { d.Annotations = map[string]string{key: "abc"} })
	var labelled atomic.Bool
	cfg := cluster.AdminConfig()
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodPatch && labelled.CompareAndSwap(false, true) {
				if _, err := admin(t).AppsV1().Deployments(ns).Patch(r.Context(), "web", types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"shop"}}}`), metav1.PatchOptions{}); err != nil {
					return nil, err
				}
			}
			return rt.RoundTrip(r)
		})
	}
	c := newClient(t, cfg)
	if err := c.RemoveAnnotation(t.Context(), "Deployment", ns, "web", key, "abc"); err != nil {
		t.Fatal(err)
	}
	if got, ok := get(t, c, "Deployment", ns, "web").Annotations[key]; ok || !labelled.Load() {
		t.Errorf("after a conflict: %s = %q (present %v), labelled %v; want it removed", key, got, ok, labelled.Load())
	}
}
