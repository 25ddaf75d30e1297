package e2e

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
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

// cronJobEnv is the plain environment of the installed CronJob's
// container: what the chart's values turned into.
func cronJobEnv(t *testing.T, cs kubernetes.Interface, ns, name string) map[string]string {
	t.Helper()
	cj, err := cs.BatchV1().CronJobs(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	return env
}

// The chart's ServiceAccount, with RBAC on, can do a baseline and a
// restart, and nothing it should not.
func TestInstalledChartRunsWithLeastPrivilege(t *testing.T) {
	ctx := t.Context()
	cs := clientset(t)
	reg, err := testground.StartRegistry(testground.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })

	const rel, relNS = "urunner", "urunner-system"
	out, err := helm(t, "install", rel, chartDir(), "-n", relNS, "--create-namespace", "--wait=false",
		"--set", "registry.host=http://"+reg.Host)
	if err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	if !strings.Contains(out, "kubectl create job --from=cronjob/urunner urunner-manual -n "+relNS) {
		t.Errorf("NOTES do not give the manual-run command:\n%s", out)
	}

	// The run authenticates exactly as the pod would: a token of the
	// chart's ServiceAccount from the TokenRequest API.
	saCfg, err := cluster.ServiceAccountConfig(ctx, relNS, "urunner")
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := testground.WriteKubeconfig(kc, saCfg); err != nil {
		t.Fatal(err)
	}
	env := cronJobEnv(t, cs, relNS, rel)
	delete(env, "URUNNER_CONF_KUBE_AUTH")
	env["URUNNER_CONF_STATE_NAMESPACE"] = relNS // the pod gets it by fieldRef

	app := "app-" + time.Now().Format("150405")
	if _, err := cs.CoreV1().Namespaces().Create(ctx, namespace(app, true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.PushImage(ctx, "shop/web:latest", "v1"); err != nil {
		t.Fatal(err)
	}
	createDeployment(t, cs, app, "web", reg.Host+"/shop/web:latest")

	if code, logs := runAs(t, kc, env); code != 0 {
		t.Fatalf("baseline as the ServiceAccount: exit %d\n%s", code, logs)
	}
	if _, err := reg.PushImage(ctx, "shop/web:latest", "v2"); err != nil {
		t.Fatal(err)
	}
	if code, logs := runAs(t, kc, env); code != 0 || !strings.Contains(logs, "restarted") {
		t.Fatalf("restart as the ServiceAccount: exit %d\n%s", code, logs)
	}
	d, err := cs.AppsV1().Deployments(app).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Template.Annotations[kube.RestartedAtAnnotation] == "" {
		t.Error("the ServiceAccount's run did not restart web")
	}

	// What `kubectl auth can-i --as` would answer, asked with the
	// ServiceAccount's own token.
	sa := kubernetes.NewForConfigOrDie(saCfg)
	for _, tc := range []struct {
		verb, group, resource, ns, name string
		want                            bool
	}{
		{"list", "", "namespaces", "", "", true},
		{"list", "apps", "deployments", "", "", true},
		{"patch", "apps", "deployments", app, "web", true},
		{"get", "", "configmaps", relNS, "urunner-state", true},
		{"update", "", "configmaps", relNS, "urunner-state", true},
		{"get", "", "secrets", relNS, "", false},
		{"list", "", "secrets", "", "", false},
		{"get", "", "secrets", app, "", false},
		{"patch", "apps", "statefulsets", app, "", true},
		{"patch", "apps", "daemonsets", app, "", true},
		{"create", "", "events", app, "", true},
		{"update", "", "events", app, "", false},
		{"patch", "apps", "replicasets", app, "", false},
		{"patch", "", "pods", app, "", false},
		{"delete", "apps", "deployments", app, "web", false},
		{"update", "apps", "deployments", app, "web", false},
		{"create", "apps", "deployments", app, "", false},
		{"update", "", "configmaps", relNS, "other", false},
		{"get", "", "configmaps", relNS, "other", false},
		{"delete", "", "configmaps", relNS, "urunner-state", false},
		{"create", "", "configmaps", app, "", false},
		{"update", "", "configmaps", app, "urunner-state", false},
	} {
		ssar := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: tc.verb, Group: tc.group, Resource: tc.resource, Namespace: tc.ns, Name: tc.name,
			},
		}}
		got, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, ssar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != tc.want {
			t.Errorf("can-i %s %s.%s -n %q %s = %v, want %v", tc.verb, tc.resource, tc.group, tc.ns, tc.name, got.Status.Allowed, tc.want)
		}
	}

	// helm upgrade never touches the state; helm uninstall leaves it.
	before, err := cs.CoreV1().ConfigMaps(relNS).Get(ctx, "urunner-state", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := helm(t, "upgrade", rel, chartDir(), "-n", relNS, "--set", "registry.host=http://"+reg.Host, "--set", "schedule=*/10 * * * *"); err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	after, err := cs.CoreV1().ConfigMaps(relNS).Get(ctx, "urunner-state", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Error("helm upgrade changed the state ConfigMap")
	}
	if out, err := helm(t, "uninstall", rel, "-n", relNS); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	if _, err := cs.CoreV1().ConfigMaps(relNS).Get(ctx, "urunner-state", metav1.GetOptions{}); err != nil {
		t.Errorf("helm uninstall removed the state ConfigMap: %v", err)
	}
}

func createDeployment(t *testing.T, cs kubernetes.Interface, ns, name, image string) {
	t.Helper()
	sel := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Pull-secret auth adds get on secrets and serviceaccounts, and nothing
// else: no list (which would read every secret), no write.
func TestPullSecretAuthAddsOnlyGetOnSecrets(t *testing.T) {
	ctx := t.Context()
	const rel, relNS = "urunner-ps", "urunner-ps"
	if out, err := helm(t, "install", rel, chartDir(), "-n", relNS, "--create-namespace",
		"--set", "registry.host=registry.example.com", "--set", "pullSecretAuth=true"); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = helm(t, "uninstall", rel, "-n", relNS) })
	saCfg, err := cluster.ServiceAccountConfig(ctx, relNS, rel)
	if err != nil {
		t.Fatal(err)
	}
	sa := kubernetes.NewForConfigOrDie(saCfg)
	for _, tc := range []struct {
		verb, resource string
		want           bool
	}{
		{"get", "secrets", true},
		{"get", "serviceaccounts", true},
		{"list", "secrets", false},
		{"watch", "secrets", false},
		{"update", "secrets", false},
		{"create", "secrets", false},
	} {
		ssar := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: tc.verb, Resource: tc.resource, Namespace: "anywhere"},
		}}
		got, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, ssar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != tc.want {
			t.Errorf("can-i %s %s = %v, want %v", tc.verb, tc.resource, got.Status.Allowed, tc.want)
		}
	}
}
