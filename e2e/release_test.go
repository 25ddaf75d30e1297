package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/state"
)

func clientset(t *testing.T) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cluster.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func namespace(name string, enabled bool) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if enabled {
		ns.Labels = map[string]string{kube.Label: kube.LabelEnable}
	}
	return ns
}

// newNamespace creates a namespace the test deletes when it ends.
func newNamespace(t *testing.T, name string, enabled bool) {
	t.Helper()
	cs := clientset(t)
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), namespace(name, enabled), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, cs, name) })
}

func deleteNamespace(t *testing.T, cs kubernetes.Interface, name string) {
	err := cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete namespace %s: %v", name, err)
	}
}

// runAs runs the urunner binary with the environment the chart's CronJob
// gives it, authenticated by the kubeconfig at kc, and returns its exit
// code and output.
func runAs(t *testing.T, kc string, env map[string]string) (int, string) {
	t.Helper()
	cmd := exec.Command(urunnerBin)
	cmd.Env = []string{"KUBECONFIG=" + kc, "URUNNER_CONF_KUBE_AUTH=kubeconfig", "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("urunner → %v\n%s", err, out.String())
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

// release is an installed chart and urunner run as its ServiceAccount.
type release struct {
	t                     *testing.T
	name, namespace       string
	fullname, stateConfig string
	// cfg and sa hold the ServiceAccount's token; kubeconfig is the same
	// token for the binary.
	cfg        *rest.Config
	sa         kubernetes.Interface
	kubeconfig string
	env        map[string]string
	// installOutput is what helm install printed (the NOTES).
	installOutput string
}

// install installs the chart with the values (YAML) and more --set
// arguments, and takes a token of its ServiceAccount from the TokenRequest
// API, exactly what the pod would hold: the runs are never made with admin
// credentials.
func install(t *testing.T, name, ns, values string, set ...string) *release {
	t.Helper()
	args := []string{"install", name, chartDir(), "-n", ns, "--create-namespace", "--wait=false", "-f", valuesFile(t, values)}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	if err != nil {
		t.Fatalf("helm install %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := helm(t, "uninstall", name, "-n", ns); err != nil && !strings.Contains(out, "not found") {
			t.Errorf("helm uninstall %s: %v\n%s", name, err, out)
		}
	})
	r := &release{t: t, name: name, namespace: ns, installOutput: out, fullname: name + "-urunner"}
	if strings.Contains(name, "urunner") {
		r.fullname = name
	}
	r.stateConfig = r.fullname + "-state"
	r.login()
	return r
}

// login takes a new token of the release's ServiceAccount and reads the
// environment the CronJob's container would get.
func (r *release) login() {
	t := r.t
	t.Helper()
	ctx := t.Context()
	cs := clientset(t)
	cj, err := cs.BatchV1().CronJobs(r.namespace).Get(ctx, r.fullname, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := cj.Spec.JobTemplate.Spec.Template.Spec
	r.env, err = testground.ContainerEnv(ctx, cs, r.namespace, r.fullname+"-manual", spec, "urunner")
	if err != nil {
		t.Fatal(err)
	}
	delete(r.env, "URUNNER_CONF_KUBE_AUTH")
	r.cfg, err = cluster.ServiceAccountConfig(ctx, r.namespace, spec.ServiceAccountName)
	if err != nil {
		t.Fatal(err)
	}
	r.sa = kubernetes.NewForConfigOrDie(r.cfg)
	r.kubeconfig = filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := testground.WriteKubeconfig(r.kubeconfig, r.cfg); err != nil {
		t.Fatal(err)
	}
}

// serviceAccount is "namespace/name" of the release's ServiceAccount.
func (r *release) serviceAccount() string { return r.namespace + "/" + r.fullname }

// username is how the API server names the ServiceAccount.
func (r *release) username() string {
	return "system:serviceaccount:" + r.namespace + ":" + r.fullname
}

// run runs urunner as the release's ServiceAccount.
func (r *release) run() (int, string) {
	r.t.Helper()
	return runAs(r.t, r.kubeconfig, r.env)
}

// mustRun runs urunner and fails the test unless it exits 0.
func (r *release) mustRun(what string) string {
	r.t.Helper()
	code, out := r.run()
	if code != 0 {
		r.t.Fatalf("%s as %s: exit %d\n%s", what, r.serviceAccount(), code, out)
	}
	return out
}

// stateConfigMap reads the state ConfigMap as an admin.
func (r *release) stateConfigMap() *corev1.ConfigMap {
	r.t.Helper()
	cm, err := clientset(r.t).CoreV1().ConfigMaps(r.namespace).Get(r.t.Context(), r.stateConfig, metav1.GetOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	return cm
}

// state decodes what the release's urunner remembers.
func (r *release) state() state.State {
	r.t.Helper()
	cm := r.stateConfigMap()
	st, err := state.Decode(cm.BinaryData[state.DataKey])
	if err != nil {
		r.t.Fatalf("state of %s: %v", r.name, err)
	}
	return st
}

// lastRun is the part of the run report (data["last-run.json"]) the
// tests read.
type lastRun struct {
	ExitCode  int `json:"exitCode"`
	Restarted int `json:"restarted"`
	Failures  []struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		Error     string `json:"error"`
	} `json:"failures"`
	Rollouts []struct {
		Namespace, Kind, Name, Result string
	} `json:"rollouts"`
}

func (r *release) lastRun() lastRun {
	r.t.Helper()
	var lr lastRun
	if err := json.Unmarshal([]byte(r.stateConfigMap().Data[state.ReportKey]), &lr); err != nil {
		r.t.Fatalf("report of %s: %v", r.name, err)
	}
	return lr
}

// requests returns what the binary (user agent urunner/…) asked the API
// server as the release's ServiceAccount, from the API server's audit log.
// A request the test makes with the same token after the runs marks the
// end: once it is in the log, so are the runs' (the log backend writes an
// event before its request is answered).
func (r *release) requests() []testground.AuditEvent {
	t := r.t
	t.Helper()
	marker := rest.CopyConfig(r.cfg)
	marker.UserAgent = "urunner-e2e-marker"
	mcs := kubernetes.NewForConfigOrDie(marker)
	if _, err := mcs.CoreV1().ConfigMaps(r.namespace).Get(t.Context(), r.stateConfig, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	var events []testground.AuditEvent
	waitFor(t, 10*time.Second, "the marker request in the audit log", func() bool {
		all, err := cluster.AuditEvents(r.username())
		if err != nil {
			t.Fatal(err)
		}
		events = events[:0]
		seen := false
		for _, e := range all {
			switch {
			case e.UserAgent == "urunner-e2e-marker":
				seen = true
			case strings.HasPrefix(e.UserAgent, "urunner/"):
				events = append(events, e)
			}
		}
		return seen
	})
	return events
}

// kindResource is the API resource of each workload kind, as RBAC names
// it (resource.group).
var kindResource = map[string]string{
	"Deployment":  "deployments.apps",
	"StatefulSet": "statefulsets.apps",
	"DaemonSet":   "daemonsets.apps",
	"Rollout":     "rollouts.argoproj.io",
}

var rolloutsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// installRolloutCRD serves Argo Rollouts' Rollout on the test ground (its
// real CRD; no Argo controller runs).
func installRolloutCRD(t *testing.T) {
	t.Helper()
	if err := testground.InstallCRD(t.Context(), cluster.AdminConfig(), filepath.Join(root, ".cache", "crds", "argoproj.io_rollouts.yaml")); err != nil {
		t.Fatal(err)
	}
}

// createWorkload makes one object of kind (Deployment, StatefulSet,
// DaemonSet, Rollout) running image, with the pull secret if not empty.
func createWorkload(t *testing.T, cs kubernetes.Interface, kind, ns, name, image string, replicas int32, pullSecret string) {
	t.Helper()
	sel := map[string]string{"app": name}
	tpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: sel},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullAlways}}},
	}
	if pullSecret != "" {
		tpl.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: pullSecret}}
	}
	meta := metav1.ObjectMeta{Name: name, Namespace: ns}
	selector := &metav1.LabelSelector{MatchLabels: sel}
	var err error
	switch kind {
	case "Deployment":
		_, err = cs.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{ObjectMeta: meta,
			Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: selector, Template: tpl}}, metav1.CreateOptions{})
	case "StatefulSet":
		_, err = cs.AppsV1().StatefulSets(ns).Create(t.Context(), &appsv1.StatefulSet{ObjectMeta: meta,
			Spec: appsv1.StatefulSetSpec{Replicas: &replicas, Selector: selector, Template: tpl, ServiceName: name}}, metav1.CreateOptions{})
	case "DaemonSet":
		_, err = cs.AppsV1().DaemonSets(ns).Create(t.Context(), &appsv1.DaemonSet{ObjectMeta: meta,
			Spec: appsv1.DaemonSetSpec{Selector: selector, Template: tpl}}, metav1.CreateOptions{})
	case "Rollout":
		var spec map[string]any
		if spec, err = runtime.DefaultUnstructuredConverter.ToUnstructured(&appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: selector, Template: tpl,
		}); err == nil {
			spec["strategy"] = map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": int64(50)}}}}
			r := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
				"metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec,
			}}
			_, err = dynamic.NewForConfigOrDie(cluster.AdminConfig()).Resource(rolloutsGVR).Namespace(ns).Create(t.Context(), r, metav1.CreateOptions{})
		}
	default:
		t.Fatalf("no kind %s", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func createDeployment(t *testing.T, cs kubernetes.Interface, ns, name, image string) {
	t.Helper()
	createWorkload(t, cs, "Deployment", ns, name, image, 1, "")
}

// restartedAt is when urunner restarted a workload: the restart
// annotation of its pod template, or a Rollout's spec.restartAt.
func restartedAt(t *testing.T, cs kubernetes.Interface, kind, ns, name string) string {
	t.Helper()
	if kind == "Rollout" {
		r, err := dynamic.NewForConfigOrDie(cluster.AdminConfig()).Resource(rolloutsGVR).Namespace(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("Rollout %s/%s: %v", ns, name, err)
		}
		at, _, _ := unstructured.NestedString(r.Object, "spec", "restartAt")
		return at
	}
	var (
		tpl corev1.PodTemplateSpec
		err error
	)
	switch kind {
	case "Deployment":
		var d *appsv1.Deployment
		if d, err = cs.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{}); err == nil {
			tpl = d.Spec.Template
		}
	case "StatefulSet":
		var s *appsv1.StatefulSet
		if s, err = cs.AppsV1().StatefulSets(ns).Get(t.Context(), name, metav1.GetOptions{}); err == nil {
			tpl = s.Spec.Template
		}
	case "DaemonSet":
		var d *appsv1.DaemonSet
		if d, err = cs.AppsV1().DaemonSets(ns).Get(t.Context(), name, metav1.GetOptions{}); err == nil {
			tpl = d.Spec.Template
		}
	}
	if err != nil {
		t.Fatalf("%s %s/%s: %v", kind, ns, name, err)
	}
	return tpl.Annotations[kube.RestartedAtAnnotation]
}

// pullSecret creates a kubernetes.io/dockerconfigjson Secret for host.
func pullSecret(t *testing.T, cs kubernetes.Interface, ns, name, host, user, password string) {
	t.Helper()
	auth := map[string]any{"auths": map[string]any{"http://" + host: map[string]string{"username": user, "password": password}}}
	b, _ := json.Marshal(auth)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: b},
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// podsRun stands in for the kubelet, which the test ground does not run:
// it waits for the Deployment's pods the controllers create and reports,
// through the status subresource, that they run and are ready, from
// imageID.
func podsRun(t *testing.T, cs kubernetes.Interface, ns, app string, n int, imageID string) {
	t.Helper()
	var pods []corev1.Pod
	waitFor(t, 60*time.Second, "the pods of "+ns+"/"+app, func() bool {
		l, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			t.Fatal(err)
		}
		pods = l.Items
		return len(pods) == n
	})
	for _, p := range pods {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			pod, err := cs.CoreV1().Pods(ns).Get(t.Context(), p.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			now := metav1.Now()
			pod.Status = corev1.PodStatus{
				Phase: corev1.PodRunning, StartTime: &now,
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}},
			}
			for _, c := range pod.Spec.Containers {
				pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
					Name: c.Name, Image: c.Image, ImageID: imageID, Ready: true,
					State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
				})
			}
			_, err = cs.CoreV1().Pods(ns).UpdateStatus(t.Context(), pod, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatalf("report pod %s/%s running: %v", ns, p.Name, err)
		}
	}
}

// eventsOn counts the Events of reason on a workload.
func eventsOn(t *testing.T, cs kubernetes.Interface, ns, name, reason string) int {
	t.Helper()
	l, err := cs.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{FieldSelector: fields.Set{
		"involvedObject.name": name, "reason": reason,
	}.String()})
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Items)
}

// startRegistry starts a registry the test closes.
func startRegistry(t *testing.T, opts testground.RegistryOptions) *testground.Registry {
	t.Helper()
	reg, err := testground.StartRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	return reg
}

func push(t *testing.T, reg *testground.Registry, repoTag, seed string) string {
	t.Helper()
	d, err := reg.PushImage(t.Context(), repoTag, seed)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
