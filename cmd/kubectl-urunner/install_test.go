package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/state"
)

// install is urunner installed by its chart in its own namespace,
// watching an app namespace of its own, with a registry, a node and a
// kubelet for its Jobs.
type install struct {
	t         *testing.T
	cs        kubernetes.Interface
	reg       *testground.Registry
	namespace string // urunner's
	release   string
	app       string // the watched namespace
	kubelet   *kubelet
}

// newInstall installs the chart as release in namespace ns (suspended:
// only the Jobs a test starts run), watching ns-app, with extra --set values. Its RBAC is
// cluster-wide and named for the release: each test has its own.
func newInstall(t *testing.T, ns, release string, sets ...string) *install {
	t.Helper()
	cs := clientset(t)
	reg, err := testground.StartRegistry(testground.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	args := []string{"install", release, root + "/chart/urunner", "-n", ns, "--create-namespace", "--wait=false",
		"--set", "registry.host=http://" + reg.Host, "--set", "suspend=true",
		// Namespaced mode: each test's urunner watches its own app
		// namespace only, not the others' labelled ones. (Tests add their
		// own variables from extraEnv[1].)
		"--set", "extraEnv[0].name=URUNNER_CONF_NAMESPACES", "--set", "extraEnv[0].value=" + ns + "-app"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	helm(t, args...)
	in := &install{t: t, cs: cs, reg: reg, namespace: ns, release: release, app: ns + "-app"}
	appNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: in.app, Labels: map[string]string{kube.Label: kube.LabelEnable}}}
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), appNS, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	in.kubelet = startKubelet(t, cs, startNode(t, cs, ns+"-node"), ns)
	return in
}

// push pushes an image built from seed to repoTag and returns its digest.
func (in *install) push(repoTag, seed string) string {
	in.t.Helper()
	d, err := in.reg.PushImage(in.t.Context(), repoTag, seed)
	if err != nil {
		in.t.Fatal(err)
	}
	return d
}

// image is the registry's reference for repoTag.
func (in *install) image(repoTag string) string { return in.reg.Host + "/" + repoTag }

func template(name, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullAlways}}},
	}
}

func selector(name string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
}

func (in *install) deployment(name, image string, paused bool) {
	in.t.Helper()
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: in.app},
		Spec: appsv1.DeploymentSpec{Selector: selector(name), Template: template(name, image), Paused: paused}}
	if _, err := in.cs.AppsV1().Deployments(in.app).Create(in.t.Context(), d, metav1.CreateOptions{}); err != nil {
		in.t.Fatal(err)
	}
}

func (in *install) statefulSet(name, image string) {
	in.t.Helper()
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: in.app},
		Spec: appsv1.StatefulSetSpec{Selector: selector(name), Template: template(name, image)}}
	if _, err := in.cs.AppsV1().StatefulSets(in.app).Create(in.t.Context(), s, metav1.CreateOptions{}); err != nil {
		in.t.Fatal(err)
	}
}

func (in *install) daemonSet(name, image string) {
	in.t.Helper()
	d := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: in.app},
		Spec: appsv1.DaemonSetSpec{Selector: selector(name), Template: template(name, image)}}
	if _, err := in.cs.AppsV1().DaemonSets(in.app).Create(in.t.Context(), d, metav1.CreateOptions{}); err != nil {
		in.t.Fatal(err)
	}
}

// label labels a Deployment.
func (in *install) label(name, key, value string) {
	in.t.Helper()
	patch := `{"metadata":{"labels":{"` + key + `":"` + value + `"}}}`
	if _, err := in.cs.AppsV1().Deployments(in.app).Patch(in.t.Context(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		in.t.Fatal(err)
	}
}

// restartedAt is a Deployment's restart annotation, "" before any restart.
func (in *install) restartedAt(name string) string {
	in.t.Helper()
	d, err := in.cs.AppsV1().Deployments(in.app).Get(in.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		in.t.Fatal(err)
	}
	return d.Spec.Template.Annotations[kube.RestartedAtAnnotation]
}

// stateCM is the state ConfigMap as urunner left it.
func (in *install) stateCM() *corev1.ConfigMap {
	in.t.Helper()
	cm, err := in.cs.CoreV1().ConfigMaps(in.namespace).Get(in.t.Context(), "urunner-state", metav1.GetOptions{})
	if err != nil {
		in.t.Fatal(err)
	}
	return cm
}

// state is the stored state, decoded.
func (in *install) state() state.State {
	in.t.Helper()
	st, err := state.Decode(in.stateCM().BinaryData[state.DataKey])
	if err != nil {
		in.t.Fatal(err)
	}
	return st
}

// editState changes the stored state as urunner's own encoder writes it.
func (in *install) editState(edit func(*state.State)) {
	in.t.Helper()
	cm := in.stateCM()
	st, err := state.Decode(cm.BinaryData[state.DataKey])
	if err != nil {
		in.t.Fatal(err)
	}
	edit(&st)
	if cm.BinaryData[state.DataKey], err = state.Encode(st); err != nil {
		in.t.Fatal(err)
	}
	if _, err := in.cs.CoreV1().ConfigMaps(in.namespace).Update(in.t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		in.t.Fatal(err)
	}
}

// jobs are the Jobs in urunner's namespace, newest first.
func (in *install) jobs() []batchv1.Job {
	in.t.Helper()
	list, err := in.cs.BatchV1().Jobs(in.namespace).List(in.t.Context(), metav1.ListOptions{})
	if err != nil {
		in.t.Fatal(err)
	}
	items := list.Items
	slices.SortFunc(items, func(a, b batchv1.Job) int {
		if c := b.CreationTimestamp.Compare(a.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Name, a.Name)
	})
	return items
}

// run is `kubectl urunner -n NAMESPACE --release RELEASE args...` for
// this install.
func (in *install) run(args ...string) (int, string, string) {
	in.t.Helper()
	return plugin(in.t, append([]string{"-n", in.namespace, "--release", in.release}, args...)...)
}

// mustContain fails for each want missing from got.
func mustContain(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not say %q:\n%s", what, w, got)
		}
	}
}

// mustRow fails unless one line of got holds cells in this order: a row
// of a table, or a "label  value" line.
func mustRow(t *testing.T, what, got string, cells ...string) {
	t.Helper()
	quoted := make([]string, len(cells))
	for i, c := range cells {
		quoted[i] = regexp.QuoteMeta(c)
	}
	if !regexp.MustCompile(`(?m)` + strings.Join(quoted, `[^\n]*`)).MatchString(got) {
		t.Errorf("%s has no row %q:\n%s", what, strings.Join(cells, " | "), got)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
