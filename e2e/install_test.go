package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
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

// createWorkload makes one object of kind (Deployment, StatefulSet, DaemonSet)
// running image, with the pull secret if not empty.
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

// restartedAt is the restart annotation of a workload's pod template.
func restartedAt(t *testing.T, cs kubernetes.Interface, kind, ns, name string) string {
	t.Helper()
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

// profile is one install of the chart proven on the test ground.
type profile struct {
	name           string
	release, relNS string
	values         string
	namespaced     bool
	watched        []string // listed (namespaced mode) or labelled urunner=enable
	// empty is a listed namespace without workloads: urunner reads its
	// Namespace object to tell it from a missing one.
	empty            string
	kinds            []string
	events           bool
	runningPods      bool
	pullSecrets      bool
	pullSecretByName bool
	verifyRollout    bool
	// want is every right of the release's ServiceAccount.
	want []right
}

// groundProfiles are both modes with every feature that adds a right off,
// and on.
func groundProfiles() []profile {
	wl := func(where string, kinds ...string) []right {
		var out []right
		for _, k := range kinds {
			out = append(out, grant(where, strings.ToLower(k)+"s.apps", "list", "get", "patch")...)
		}
		return out
	}
	all := []string{"Deployment", "StatefulSet", "DaemonSet"}
	return []profile{
		{
			name: "cluster mode, features off", release: "rb-cmin", relNS: "rb-cmin",
			values:  "workloadKinds: [Deployment]\nevents: false\n",
			watched: []string{"rb-cmin-app"}, kinds: []string{"Deployment"},
			want: rightsOf(
				grant(anywhere, "namespaces", "list"),
				wl(anywhere, "Deployment"),
				grantNamed("rb-cmin", "configmaps", "rb-cmin-urunner-state", "get", "update"),
			),
		},
		{
			name: "cluster mode, features on", release: "rb-con", relNS: "rb-con",
			values: "runningPods: true\npullSecretAuth: true\npullSecretNames: [regcred]\n" +
				"config:\n  verifyRollout: true\n  rolloutTimeout: 30s\n",
			watched: []string{"rb-con-app"}, kinds: all,
			events: true, runningPods: true, pullSecrets: true, pullSecretByName: true, verifyRollout: true,
			want: rightsOf(
				grant(anywhere, "namespaces", "list"),
				wl(anywhere, all...),
				grant(anywhere, "pods", "list"),
				grant(anywhere, "events", "create"),
				grantNamed(anywhere, "secrets", "regcred", "get"),
				grant(anywhere, "serviceaccounts", "get"),
				grantNamed("rb-con", "configmaps", "rb-con-urunner-state", "get", "update"),
			),
		},
		{
			name: "namespaced mode, features off", release: "rb-nmin", relNS: "rb-nmin",
			values:     "namespaces: [rb-nmin-a, rb-nmin-b, rb-nmin-empty]\nworkloadKinds: [Deployment]\nevents: false\n",
			namespaced: true, watched: []string{"rb-nmin-a", "rb-nmin-b"}, empty: "rb-nmin-empty", kinds: []string{"Deployment"},
			want: rightsOf(
				grantNamed("rb-nmin-a", "namespaces", "rb-nmin-a", "get"),
				wl("rb-nmin-a", "Deployment"),
				grantNamed("rb-nmin-b", "namespaces", "rb-nmin-b", "get"),
				wl("rb-nmin-b", "Deployment"),
				grantNamed("rb-nmin-empty", "namespaces", "rb-nmin-empty", "get"),
				wl("rb-nmin-empty", "Deployment"),
				grantNamed("rb-nmin", "configmaps", "rb-nmin-urunner-state", "get", "update"),
			),
		},
		{
			name: "namespaced mode, features on", release: "rb-non", relNS: "rb-non",
			values: "namespaces: [rb-non-a, rb-non-b]\nrunningPods: true\npullSecretAuth: true\n" +
				"config:\n  verifyRollout: true\n  rolloutTimeout: 30s\n",
			namespaced: true, watched: []string{"rb-non-a", "rb-non-b"}, kinds: all,
			events: true, runningPods: true, pullSecrets: true, verifyRollout: true,
			want: rightsOf(
				grantNamed("rb-non-a", "namespaces", "rb-non-a", "get"),
				wl("rb-non-a", all...),
				grant("rb-non-a", "pods", "list"),
				grant("rb-non-a", "events", "create"),
				grant("rb-non-a", "secrets", "get"),
				grant("rb-non-a", "serviceaccounts", "get"),
				grantNamed("rb-non-b", "namespaces", "rb-non-b", "get"),
				wl("rb-non-b", all...),
				grant("rb-non-b", "pods", "list"),
				grant("rb-non-b", "events", "create"),
				grant("rb-non-b", "secrets", "get"),
				grant("rb-non-b", "serviceaccounts", "get"),
				grantNamed("rb-non", "configmaps", "rb-non-urunner-state", "get", "update"),
			),
		},
	}
}

// The chart installed on the real API server, in both modes, with the
// features that add rights off and on: urunner run with its
// ServiceAccount's token does everything the values enable (restarts of
// each kind, Events, reading pods, pull secrets, rollouts), and the API
// server grants that ServiceAccount exactly the profile's rights, none of
// the must-not list, and (namespaced mode) sees no request outside the
// listed namespaces and the release's own.
func TestInstalledChartRunsWithLeastPrivilege(t *testing.T) {
	for _, p := range groundProfiles() {
		t.Run(p.name, func(t *testing.T) { p.prove(t) })
	}
}

func (p profile) prove(t *testing.T) {
	ctx := t.Context()
	cs := clientset(t)
	opts := testground.RegistryOptions{}
	const user, password = "puller", "pull-s3cret-0123"
	if p.pullSecrets {
		opts.Logins = map[string]string{user: password}
	}
	reg, err := testground.StartRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })

	// other is watched by no one: what urunner must neither touch nor see.
	other := p.release + "-other"
	for _, ns := range append(slices.Clone(p.watched), other) {
		newNamespace(t, ns, !p.namespaced && ns != other)
	}
	if p.empty != "" {
		newNamespace(t, p.empty, false)
	}
	t.Cleanup(func() { deleteNamespace(t, cs, p.relNS) })
	r := install(t, p.release, p.relNS, p.values, "registry.host=http://"+reg.Host)
	if want := "kubectl create job --from=cronjob/" + r.fullname + " urunner-manual -n " + p.relNS; !strings.Contains(r.installOutput, want) {
		t.Errorf("NOTES do not give the manual-run command %q:\n%s", want, r.installOutput)
	}
	if labels := strings.Contains(r.installOutput, "urunner=enable"); labels == p.namespaced {
		t.Errorf("NOTES tell to label namespaces urunner=enable: %v, want %v:\n%s", labels, !p.namespaced, r.installOutput)
	}

	// The workloads: each kind in each watched namespace, on an image of
	// that namespace; "steady", whose pods will already run the new
	// digest; the same image in the namespace nobody watches.
	image := func(ns string) string { return reg.Host + "/" + ns + "/app:latest" }
	secret := ""
	if p.pullSecrets {
		secret = "regcred"
	}
	for _, ns := range append(slices.Clone(p.watched), other) {
		if p.pullSecrets {
			pullSecret(t, cs, ns, "regcred", reg.Host, user, password)
		}
	}
	for _, ns := range p.watched {
		if _, err := reg.PushImage(ctx, ns+"/app:latest", "v1"); err != nil {
			t.Fatal(err)
		}
		for _, k := range p.kinds {
			createWorkload(t, cs, k, ns, strings.ToLower(k), image(ns), 0, secret)
		}
		if p.runningPods {
			createWorkload(t, cs, "Deployment", ns, "steady", image(ns), 1, secret)
		}
	}
	createWorkload(t, cs, "Deployment", other, "deployment", image(p.watched[0]), 0, secret)

	r.mustRun("baseline")
	moved := map[string]string{}
	for _, ns := range p.watched {
		if moved[ns], err = reg.PushImage(ctx, ns+"/app:latest", "v2"); err != nil {
			t.Fatal(err)
		}
		if p.runningPods {
			podsRun(t, cs, ns, "steady", 1, reg.Host+"/"+ns+"/app@"+moved[ns])
		}
	}
	reg.ResetRequests()
	logs := r.mustRun("restart")

	for _, ns := range p.watched {
		for _, k := range p.kinds {
			if restartedAt(t, cs, k, ns, strings.ToLower(k)) == "" {
				t.Errorf("%s %s/%s: not restarted", k, ns, strings.ToLower(k))
			}
		}
		if p.runningPods && restartedAt(t, cs, "Deployment", ns, "steady") != "" {
			t.Errorf("%s/steady restarted, though its ready pods run the new digest (runningPods)", ns)
		}
		if got := eventsOn(t, cs, ns, "deployment", kube.ReasonDigestChanged); (got > 0) != p.events {
			t.Errorf("%s/deployment has %d %s Events, want them: %v", ns, got, kube.ReasonDigestChanged, p.events)
		}
	}
	if restartedAt(t, cs, "Deployment", other, "deployment") != "" {
		t.Errorf("the Deployment of namespace %s, which is not watched, was restarted", other)
	}
	if p.pullSecrets {
		var want []string
		for _, ns := range p.watched {
			want = append(want, ns+"/app")
		}
		if diff := cmp.Diff(map[string][]string{user: want}, reg.Users()); diff != "" {
			t.Errorf("registry logins (-want +got):\n%s", diff)
		}
		if strings.Contains(logs, password) {
			t.Error("a pull secret's password reached the log")
		}
	}
	if p.verifyRollout {
		lr := r.lastRun()
		if len(lr.Rollouts) != len(p.watched)*len(p.kinds) {
			t.Errorf("%d rollouts verified, want %d: %+v", len(lr.Rollouts), len(p.watched)*len(p.kinds), lr.Rollouts)
		}
		for _, ro := range lr.Rollouts {
			if ro.Result != "complete" {
				t.Errorf("rollout of %s %s/%s: %s, want complete", ro.Kind, ro.Namespace, ro.Name, ro.Result)
			}
		}
	}

	p.checkRights(t, r, other)
	if p.namespaced {
		p.checkRequests(t, r)
	}
}

// checkRights asks the API server what the ServiceAccount may do: exactly
// the profile's rights in every namespace that matters, and nothing of
// the must-not list.
func (p profile) checkRights(t *testing.T, r *release, other string) {
	t.Helper()
	manifest, err := helm(t, "get", "manifest", r.name, "-n", r.namespace)
	if err != nil {
		t.Fatalf("helm get manifest: %v\n%s", err, manifest)
	}
	if diff := cmp.Diff(p.want, renderedRights(t, manifest)[r.serviceAccount()]); diff != "" {
		t.Errorf("rights the installed release grants (-want +got):\n%s", diff)
	}
	nobody, err := cluster.ServiceAccountConfig(t.Context(), r.namespace, "bound-to-nothing")
	if err != nil {
		t.Fatal(err)
	}
	baseline := kubernetes.NewForConfigOrDie(nobody)
	for _, ns := range append(slices.Clone(p.watched), p.empty, r.namespace, other, "kube-system", "default") {
		if ns == "" {
			continue
		}
		if diff := cmp.Diff(in(ns, p.want), effectiveRights(t, r.sa, baseline, ns)); diff != "" {
			t.Errorf("what the ServiceAccount may do in %s (-want +got):\n%s", ns, diff)
		}
	}
	for _, a := range p.mustNot(r, other) {
		if canI(t, r.sa, a) {
			t.Errorf("the ServiceAccount may %s", a)
		}
	}
}

// mustNot is what the ServiceAccount must never be allowed, whatever the
// values: other ConfigMaps, Secrets beyond the pull secrets it reads,
// writes to workloads beyond a patch, pods, RBAC, tokens; and in
// namespaced mode anything outside the listed namespaces, kube-system
// first.
func (p profile) mustNot(r *release, other string) []access {
	w := p.watched[0]
	out := []access{
		{"create", "configmaps", r.namespace, ""},
		{"list", "configmaps", r.namespace, ""},
		{"get", "configmaps", r.namespace, "another"},
		{"update", "configmaps", r.namespace, "another"},
		{"delete", "configmaps", r.namespace, r.stateConfig},
		{"patch", "configmaps", r.namespace, r.stateConfig},
		{"update", "configmaps", w, r.stateConfig},
		{"list", "secrets", "", ""},
		{"list", "secrets", w, ""},
		{"watch", "secrets", w, ""},
		{"update", "secrets", w, "regcred"},
		{"get", "secrets", r.namespace, r.fullname},
		{"create", "deployments.apps", w, ""},
		{"update", "deployments.apps", w, "deployment"},
		{"delete", "deployments.apps", w, "deployment"},
		{"patch", "replicasets.apps", w, ""},
		{"patch", "pods", w, ""},
		{"delete", "pods", w, ""},
		{"create", "pods/exec", w, ""},
		{"update", "events", w, ""},
		{"create", "rolebindings.rbac.authorization.k8s.io", w, ""},
		{"escalate", "roles.rbac.authorization.k8s.io", w, ""},
		{"bind", "clusterroles.rbac.authorization.k8s.io", "", ""},
		{"impersonate", "serviceaccounts", r.namespace, ""},
		{"create", "serviceaccounts/token", r.namespace, r.fullname},
		{"create", "jobs.batch", r.namespace, ""},
		{"get", "nodes", "", ""},
		{"delete", "namespaces", w, w},
	}
	if !p.events {
		out = append(out, access{"create", "events", w, ""})
	}
	if !p.runningPods {
		out = append(out, access{"list", "pods", w, ""})
	}
	if !p.pullSecrets {
		out = append(out, access{"get", "secrets", w, "regcred"}, access{"get", "serviceaccounts", w, "default"})
	}
	if p.pullSecretByName {
		out = append(out, access{"get", "secrets", w, "db-password"})
	}
	for _, k := range []string{"Deployment", "StatefulSet", "DaemonSet"} {
		if !slices.Contains(p.kinds, k) {
			out = append(out, access{"patch", strings.ToLower(k) + "s.apps", w, ""})
		}
	}
	if p.namespaced {
		out = append(out,
			access{"list", "namespaces", "", ""},
			access{"get", "namespaces", "kube-system", "kube-system"},
			access{"get", "namespaces", other, other},
			access{"list", "deployments.apps", "", ""},
			access{"list", "deployments.apps", other, ""},
			access{"patch", "deployments.apps", other, "deployment"},
			access{"get", "secrets", other, "regcred"},
			access{"list", "deployments.apps", "kube-system", ""},
			access{"patch", "daemonsets.apps", "kube-system", ""},
			access{"get", "secrets", "kube-system", ""},
			access{"get", "configmaps", "kube-system", ""},
			access{"list", "pods", "kube-system", ""},
			access{"create", "events", "kube-system", ""},
			access{"get", "serviceaccounts", "kube-system", ""},
		)
	}
	return out
}

// checkRequests reads the API server's audit log: in namespaced mode
// every request the binary made was for an object in a listed namespace
// or its state in the release namespace; none was cluster-scoped.
func (p profile) checkRequests(t *testing.T, r *release) {
	t.Helper()
	where := map[string]bool{r.namespace: true, p.empty: p.empty != ""}
	for _, ns := range p.watched {
		where[ns] = true
	}
	reqs := r.requests()
	if len(reqs) == 0 {
		t.Fatal("the audit log holds no request of urunner's")
	}
	var lines []string
	readEmpty := false
	for _, e := range reqs {
		lines = append(lines, e.String())
		if e.ObjectRef == nil || !where[e.ObjectRef.Namespace] {
			t.Errorf("urunner asked outside the listed namespaces and its own: %s", e)
		}
		if p.empty != "" && e.Verb == "get" && e.ObjectRef != nil && e.ObjectRef.Resource == "namespaces" &&
			e.ObjectRef.Name == p.empty && e.ResponseStatus.Code == 200 {
			readEmpty = true
		}
	}
	if p.empty != "" && !readEmpty {
		t.Errorf("urunner did not read (or was refused) the Namespace %s, listed and empty", p.empty)
	}
	t.Logf("urunner's requests as %s:\n%s", r.username(), strings.Join(lines, "\n"))
}
