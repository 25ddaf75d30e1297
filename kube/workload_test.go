package kube_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/kube"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// richMeta and richTemplate carry everything a Workload keeps, and things
// it drops: a sidecar the workload asks to ignore, annotations not
// urunner's, a ring both as label and annotation (the annotation wins).
func richMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: ns, Name: name,
		Labels: map[string]string{kube.RingKey: "late", "kustomize.toolkit.fluxcd.io/name": "apps"},
		Annotations: map[string]string{
			kube.RingKey:                    "early",
			"urunner.io/cooldown":           "1h",
			kube.IgnoreContainersAnnotation: " sidecar ,",
			"team.example.com/owner":        "shop",
		},
	}
}

func richTemplate(name string) corev1.PodTemplateSpec {
	tpl := template(name, "registry.example.com/team/app:1")
	tpl.Annotations = map[string]string{
		kube.RestartedAtAnnotation:  "2026-01-02T03:04:05Z",
		kube.RestartedForAnnotation: `{"app":"registry.example.com/team/app:1@` + digestA + `"}`,
	}
	tpl.Spec.ServiceAccountName = "builder"
	tpl.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "mirror"}}
	tpl.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "registry.example.com/team/setup:2", ImagePullPolicy: corev1.PullIfNotPresent}}
	tpl.Spec.Containers = []corev1.Container{
		{Name: "sidecar", Image: "registry.example.com/team/proxy:latest"},
		{Name: "app", Image: "registry.example.com/team/app:1", ImagePullPolicy: corev1.PullAlways},
	}
	return tpl
}

// richWorkload is what urunner keeps of richMeta and richTemplate.
func richWorkload(kind, ns, name string) kube.Workload {
	return kube.Workload{
		Kind: kind, Namespace: ns, Name: name,
		Containers: []kube.Container{
			{Name: "setup", Image: "registry.example.com/team/setup:2", Init: true, Index: 0, PullPolicy: "IfNotPresent"},
			{Name: "app", Image: "registry.example.com/team/app:1", Index: 1, PullPolicy: "Always"},
		},
		RestartedFor:   map[string]string{"app": "registry.example.com/team/app:1@" + digestA},
		RestartedAt:    "2026-01-02T03:04:05Z",
		PullSecrets:    []string{"regcred", "mirror"},
		ServiceAccount: "builder",
		Annotations: map[string]string{
			kube.RingKey: "early", "urunner.io/cooldown": "1h", kube.IgnoreContainersAnnotation: " sidecar ,",
		},
		GitOps:   "Flux",
		Selector: "app=" + name,
		Ring:     "early",
	}
}

// What the API server sets, and Healthy, which the rollout tests judge.
var serverSet = cmpopts.IgnoreFields(kube.Workload{}, "UID", "ResourceVersion", "Generation", "Created", "Healthy")

// Each kind becomes the same small Workload, read alone (Get) or listed:
// its containers (init containers first, with their position, pull
// policy, less those ignored), its records, pull secrets, ServiceAccount,
// urunner's own annotations, GitOps owner, selector and ring; and what is
// its kind's own (a paused Deployment, OnDelete StatefulSets and
// DaemonSets).
func TestEachKindBecomesAWorkload(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	paused := richWorkload("Deployment", ns, "paused")
	paused.Paused = true
	onDeleteSet := richWorkload("StatefulSet", ns, "ondelete")
	onDeleteSet.OnDelete = true
	onDeleteDaemons := richWorkload("DaemonSet", ns, "ondelete")
	onDeleteDaemons.OnDelete = true
	want := []kube.Workload{
		richWorkload("Deployment", ns, "web"), paused,
		richWorkload("StatefulSet", ns, "db"), onDeleteSet,
		richWorkload("DaemonSet", ns, "agent"), onDeleteDaemons,
	}
	rich := func(m *metav1.ObjectMeta, tpl *corev1.PodTemplateSpec) {
		r := richMeta(m.Namespace, m.Name)
		m.Labels, m.Annotations = r.Labels, r.Annotations
		labels := tpl.Labels
		*tpl = richTemplate(m.Name)
		tpl.Labels = labels
	}
	deployment(t, ns, "web", 0, func(d *appsv1.Deployment) { rich(&d.ObjectMeta, &d.Spec.Template) })
	deployment(t, ns, "paused", 0, func(d *appsv1.Deployment) { rich(&d.ObjectMeta, &d.Spec.Template); d.Spec.Paused = true })
	statefulSet(t, ns, "db", 0, func(s *appsv1.StatefulSet) { rich(&s.ObjectMeta, &s.Spec.Template) })
	statefulSet(t, ns, "ondelete", 0, func(s *appsv1.StatefulSet) {
		rich(&s.ObjectMeta, &s.Spec.Template)
		s.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType
	})
	daemonSet(t, ns, "agent", func(d *appsv1.DaemonSet) { rich(&d.ObjectMeta, &d.Spec.Template) })
	daemonSet(t, ns, "ondelete", func(d *appsv1.DaemonSet) {
		rich(&d.ObjectMeta, &d.Spec.Template)
		d.Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType
	})

	var listed []kube.Workload
	if _, err := c.List(t.Context(), kube.Scope{Namespaces: []string{ns}, PerNamespace: true}, []string{"Deployment", "StatefulSet", "DaemonSet"}, func(w kube.Workload) {
		listed = append(listed, w)
	}); err != nil {
		t.Fatal(err)
	}
	byKey := cmpopts.SortSlices(func(a, b kube.Workload) bool { return a.Kind+"/"+a.Name < b.Kind+"/"+b.Name })
	if diff := cmp.Diff(want, listed, serverSet, byKey, cmpopts.IgnoreUnexported(kube.Workload{})); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}
	for _, w := range want {
		got := get(t, c, w.Kind, w.Namespace, w.Name)
		if diff := cmp.Diff(w, got, serverSet, cmpopts.IgnoreUnexported(kube.Workload{})); diff != "" {
			t.Errorf("Get %s %s (-want +got):\n%s", w.Kind, w.Name, diff)
		}
		if got.UID == "" || got.ResourceVersion == "" || got.Generation != 1 || got.Created.IsZero() {
			t.Errorf("Get %s %s: UID %q, resourceVersion %q, generation %d, created %v; want the API server's", w.Kind, w.Name, got.UID, got.ResourceVersion, got.Generation, got.Created)
		}
	}
}

// A hand-edited record is read as no record (it cannot stop the run), a
// workload whose every container is ignored has none, and one without
// urunner's marks has no annotations, GitOps owner, ring or records.
func TestAWorkloadKeepsOnlyWhatItCanRead(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	deployment(t, ns, "edited", 0, func(d *appsv1.Deployment) {
		d.Spec.Template.Annotations = map[string]string{kube.RestartedForAnnotation: "app=" + digestA}
	})
	deployment(t, ns, "ignored", 0, func(d *appsv1.Deployment) {
		d.Annotations = map[string]string{kube.IgnoreContainersAnnotation: "app"}
	})
	deployment(t, ns, "plain", 0, func(d *appsv1.Deployment) {
		// Argo CD's default label tracking cannot be told from Helm's.
		d.Labels = map[string]string{"app.kubernetes.io/instance": "shop"}
	})
	plain := kube.Workload{
		Kind: "Deployment", Namespace: ns, Name: "plain", Selector: "app=plain",
		// The API server's default for a tag other than latest.
		Containers: []kube.Container{{Name: "app", Image: "registry.example.com/team/plain:1", PullPolicy: "IfNotPresent"}},
	}
	edited := plain
	edited.Name, edited.Selector = "edited", "app=edited"
	edited.Containers = []kube.Container{{Name: "app", Image: "registry.example.com/team/edited:1", PullPolicy: "IfNotPresent"}}
	ignored := kube.Workload{
		Kind: "Deployment", Namespace: ns, Name: "ignored", Selector: "app=ignored",
		Annotations: map[string]string{kube.IgnoreContainersAnnotation: "app"},
	}
	for _, want := range []kube.Workload{plain, edited, ignored} {
		got := get(t, c, "Deployment", ns, want.Name)
		if diff := cmp.Diff(want, got, serverSet, cmpopts.IgnoreUnexported(kube.Workload{})); diff != "" {
			t.Errorf("%s (-want +got):\n%s", want.Name, diff)
		}
	}
}

// Argo CD is told by its explicit marks: a tracking-id annotation or its
// instance label.
func TestArgoCDIsToldByItsOwnMarks(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	deployment(t, ns, "tracked", 0, func(d *appsv1.Deployment) {
		d.Annotations = map[string]string{"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:" + ns + "/tracked"}
	})
	deployment(t, ns, "labelled", 0, func(d *appsv1.Deployment) {
		d.Labels = map[string]string{"argocd.argoproj.io/instance": "shop"}
	})
	deployment(t, ns, "helm", 0, func(d *appsv1.Deployment) {
		d.Labels = map[string]string{"helm.toolkit.fluxcd.io/name": "shop"}
	})
	for name, want := range map[string]string{"tracked": "Argo CD", "labelled": "Argo CD", "helm": "Flux"} {
		if got := get(t, c, "Deployment", ns, name).GitOps; got != want {
			t.Errorf("%s: GitOps = %q, want %q", name, got, want)
		}
	}
}

// An Argo Rollout keeps its records on its own metadata, not in its
// template: restarted-for, and the later of urunner.io/restarted-at and
// spec.restartAt as RestartedAt.
func TestARolloutBecomesAWorkload(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	meta := richMeta(ns, "web")
	meta.Annotations[kube.RestartedForAnnotation] = `{"app":"registry.example.com/team/app:1@` + digestB + `"}`
	meta.Annotations[kube.RolloutRestartedAtAnnotation] = "2026-03-01T00:00:00Z"
	rollout(t, meta, richTemplate("web"), func(spec map[string]any) {
		spec["paused"] = true
		spec["restartAt"] = "2026-02-01T00:00:00Z"
	})
	later := richMeta(ns, "later")
	rollout(t, later, richTemplate("later"), func(spec map[string]any) { spec["restartAt"] = "2026-04-01T00:00:00Z" })

	want := richWorkload("Rollout", ns, "web")
	want.Paused = true
	want.RestartedFor = map[string]string{"app": "registry.example.com/team/app:1@" + digestB}
	want.RestartedAt = "2026-03-01T00:00:00Z"
	want.Annotations[kube.RestartedForAnnotation] = meta.Annotations[kube.RestartedForAnnotation]
	want.Annotations[kube.RolloutRestartedAtAnnotation] = "2026-03-01T00:00:00Z"
	if diff := cmp.Diff(want, get(t, c, "Rollout", ns, "web"), serverSet, cmpopts.IgnoreUnexported(kube.Workload{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := get(t, c, "Rollout", ns, "later"); got.RestartedAt != "2026-04-01T00:00:00Z" || got.RestartedFor != nil {
		t.Errorf("RestartedAt %q, RestartedFor %v; want spec.restartAt, the later, and no record", got.RestartedAt, got.RestartedFor)
	}
}

// The kinds table answers for every kind, and refuses others by name.
func TestKinds(t *testing.T) {
	if diff := cmp.Diff([]string{"Deployment", "StatefulSet", "DaemonSet", "Rollout"}, kube.Kinds()); diff != "" {
		t.Errorf("Kinds (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ kind, apiVersion, group, resource string }{
		{"Deployment", "apps/v1", "apps", "deployments"},
		{"StatefulSet", "apps/v1", "apps", "statefulsets"},
		{"DaemonSet", "apps/v1", "apps", "daemonsets"},
		{"Rollout", "argoproj.io/v1alpha1", "argoproj.io", "rollouts"},
	} {
		if got := [3]string{kube.APIVersion(tc.kind), kube.Group(tc.kind), kube.Resource(tc.kind)}; got != [3]string{tc.apiVersion, tc.group, tc.resource} {
			t.Errorf("%s: apiVersion, group, resource = %q, want %q", tc.kind, got, [3]string{tc.apiVersion, tc.group, tc.resource})
		}
	}
	_, err := newClient(t, nil).Get(t.Context(), "CronJob", "default", "x")
	if !errors.Is(err, kube.ErrUnsupportedKind) {
		t.Errorf("Get of a CronJob: err = %v, want ErrUnsupportedKind", err)
	}
}
