package kube_test

// The specification of what package kube owns, against the real test
// ground: one kube-apiserver + etcd + kube-controller-manager per test
// binary, started here. There is no kubelet: controllers create
// ReplicaSets and Pods, but no Pod ever runs, so a test that needs a pod's
// status writes it as the kubelet would, and says so.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/kube/apiclient"
)

var (
	cluster *testground.Cluster
	root    string // the module root, where .cache is
)

func TestMain(m *testing.M) {
	os.Exit(start(m))
}

func start(m *testing.M) int {
	var err error
	if root, err = filepath.Abs(".."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	c, err := testground.StartCluster(ctx, testground.ClusterOptions{Log: os.Stderr})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the test ground:", err)
		return 1
	}
	cluster = c
	defer func() {
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the test ground:", err)
		}
	}()
	return m.Run()
}

// newClient is the one place the tests build a kube.Client: from cfg, the
// admin's when nil. Every test's client comes from here, so a change of
// kube.New's signature changes this function only.
func newClient(t *testing.T, cfg *rest.Config) *kube.Client {
	t.Helper()
	if cfg == nil {
		cfg = cluster.AdminConfig()
	}
	cs, err := apiclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kube.New(cs).WithDynamic(dyn)
}

// admin is a clientset with every right, for setting the scene.
func admin(t *testing.T) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cluster.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// counting returns the admin's config with a transport that counts the
// requests for which count says true.
func counting(count func(*http.Request) bool) (*rest.Config, *atomic.Int64) {
	var n atomic.Int64
	cfg := cluster.AdminConfig()
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if count(r) {
				n.Add(1)
			}
			return rt.RoundTrip(r)
		})
	}
	return cfg, &n
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// namespace creates a namespace of its own for the test, with labels.
func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns, err := admin(t).CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kube-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// template is a pod template of one container "app" running image,
// selected by app=name. Never pulled: the ground has no kubelet.
func template(name, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

func selector(name string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
}

// deployment creates a Deployment of replicas, changed by each edit first.
func deployment(t *testing.T, ns, name string, replicas int32, edits ...func(*appsv1.Deployment)) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas, Selector: selector(name), Template: template(name, "registry.example.com/team/"+name+":1")},
	}
	for _, e := range edits {
		e(d)
	}
	d, err := admin(t).AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func statefulSet(t *testing.T, ns, name string, replicas int32, edits ...func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	t.Helper()
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       appsv1.StatefulSetSpec{Replicas: &replicas, Selector: selector(name), Template: template(name, "registry.example.com/team/"+name+":1")},
	}
	for _, e := range edits {
		e(s)
	}
	s, err := admin(t).AppsV1().StatefulSets(ns).Create(t.Context(), s, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func daemonSet(t *testing.T, ns, name string, edits ...func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
	t.Helper()
	d := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       appsv1.DaemonSetSpec{Selector: selector(name), Template: template(name, "registry.example.com/team/"+name+":1")},
	}
	for _, e := range edits {
		e(d)
	}
	d, err := admin(t).AppsV1().DaemonSets(ns).Create(t.Context(), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var (
	rolloutsGVR  = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	rolloutCRD   sync.Once
	rolloutCRDEr error
)

// rollouts installs Argo Rollouts' own Rollout CRD once per test binary
// (the Argo controller does not run) and returns a dynamic client.
func rollouts(t *testing.T) dynamic.Interface {
	t.Helper()
	rolloutCRD.Do(func() {
		rolloutCRDEr = testground.InstallCRD(context.Background(), cluster.AdminConfig(), filepath.Join(root, ".cache", "crds", "argoproj.io_rollouts.yaml"))
	})
	if rolloutCRDEr != nil {
		t.Fatal(rolloutCRDEr)
	}
	dc, err := dynamic.NewForConfig(cluster.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	return dc
}

// rollout creates a canary Rollout of no replicas with meta's name,
// labels and annotations and the pod template tpl.
func rollout(t *testing.T, meta metav1.ObjectMeta, tpl corev1.PodTemplateSpec, edits ...func(spec map[string]any)) *unstructured.Unstructured {
	t.Helper()
	tplObj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&tpl)
	if err != nil {
		t.Fatal(err)
	}
	metaObj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&meta)
	if err != nil {
		t.Fatal(err)
	}
	spec := map[string]any{
		"replicas": int64(0),
		"selector": map[string]any{"matchLabels": map[string]any{"app": meta.Name}},
		"template": tplObj,
		"strategy": map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": int64(50)}}}},
	}
	for _, e := range edits {
		e(spec)
	}
	r := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": metaObj, "spec": spec,
	}}
	r, err = rollouts(t).Resource(rolloutsGVR).Namespace(meta.Namespace).Create(t.Context(), r, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// get reads a workload through the client, failing the test on error.
func get(t *testing.T, c *kube.Client, kind, ns, name string) kube.Workload {
	t.Helper()
	w, err := c.Get(t.Context(), kind, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// settled reads a workload once its controller has rolled it out and
// stopped writing to it: a restart's precondition is the resourceVersion
// read, which each status write of the controller changes.
func settled(t *testing.T, c *kube.Client, kind, ns, name string) kube.Workload {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		w := get(t, c, kind, ns, name)
		if w.Healthy {
			time.Sleep(200 * time.Millisecond)
			if again := get(t, c, kind, ns, name); again.ResourceVersion == w.ResourceVersion {
				return again
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s/%s did not settle in 30s: %+v", kind, ns, name, w)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
