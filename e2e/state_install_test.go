package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/state"
)

// bumpedChart copies the chart with another version, as a new release of
// the chart would be: every object's helm.sh/chart label changes, so Helm
// patches the state ConfigMap too.
func bumpedChart(t *testing.T, version string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "urunner")
	if err := os.CopyFS(dir, os.DirFS(chartDir())); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "Chart.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bumped := strings.Replace(string(b), "\nversion: ", "\nversion: "+version+"\n# was: ", 1)
	if err := os.WriteFile(file, []byte(bumped), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stateData is what urunner wrote into the state ConfigMap.
func stateData(cm *corev1.ConfigMap) map[string]any {
	out := map[string]any{}
	for k, v := range cm.Data {
		out["data/"+k] = v
	}
	for k, v := range cm.BinaryData {
		out["binaryData/"+k] = v
	}
	return out
}

// The chart creates the state ConfigMap empty and urunner, allowed only
// get and update on it, fills it. helm upgrade to a new chart version
// patches the ConfigMap (its labels) and keeps every key urunner wrote;
// helm uninstall leaves it; installing again adopts it, and the next run
// goes on from what was remembered instead of starting over.
func TestHelmKeepsWhatUrunnerRemembers(t *testing.T) {
	cs := clientset(t)
	reg := startRegistry(t, testground.RegistryOptions{})
	const rel, relNS, app = "rb-keep", "rb-keep", "rb-keep-app"
	newNamespace(t, app, false)
	t.Cleanup(func() { deleteNamespace(t, cs, relNS) })
	values := "namespaces: [" + app + "]\nworkloadKinds: [Deployment]\n"
	r := install(t, rel, relNS, values, "registry.host=http://"+reg.Host)
	if cm := r.stateConfigMap(); len(stateData(cm)) != 0 || cm.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Fatalf("the chart's state ConfigMap: data %v, annotations %v; want it empty and kept", stateData(cm), cm.Annotations)
	}

	push(t, reg, "shop/web:latest", "v1")
	createDeployment(t, cs, app, "web", reg.Host+"/shop/web:latest")
	r.mustRun("baseline")
	before := r.stateConfigMap()
	if _, ok := before.BinaryData[state.DataKey]; !ok {
		t.Fatalf("the baseline wrote no state: %v", stateData(before))
	}

	out, err := helm(t, "upgrade", rel, bumpedChart(t, "0.1.1-next"), "-n", relNS, "-f", valuesFile(t, values), "--set", "registry.host=http://"+reg.Host)
	if err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	after := r.stateConfigMap()
	if got := after.Labels["helm.sh/chart"]; got != "urunner-0.1.1-next" {
		t.Fatalf("helm upgrade did not patch the state ConfigMap (label helm.sh/chart=%q), so this proves nothing", got)
	}
	if diff := cmp.Diff(stateData(before), stateData(after)); diff != "" {
		t.Errorf("helm upgrade changed what urunner wrote (-before +after):\n%s", diff)
	}

	if out, err := helm(t, "uninstall", rel, "-n", relNS); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	left := r.stateConfigMap()
	if diff := cmp.Diff(stateData(before), stateData(left)); diff != "" {
		t.Errorf("helm uninstall changed the state (-before +after):\n%s", diff)
	}
	if _, err := cs.CoreV1().ServiceAccounts(relNS).Get(t.Context(), r.fullname, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("helm uninstall left the ServiceAccount (%v): the reinstall below would prove nothing", err)
	}

	r = install(t, rel, relNS, values, "registry.host=http://"+reg.Host)
	if diff := cmp.Diff(stateData(before), stateData(r.stateConfigMap())); diff != "" {
		t.Errorf("installing again changed the state (-before +after):\n%s", diff)
	}
	push(t, reg, "shop/web:latest", "v2")
	if logs := r.mustRun("first run after reinstalling"); !strings.Contains(logs, "restarted=1") {
		t.Errorf("the first run after reinstalling did not restart web: it lost what was remembered\n%s", logs)
	}

	// Deleted by hand: urunner may not create it, and says so; helm
	// upgrade creates it again, and the next run fills it, restarting
	// nothing.
	if err := cs.CoreV1().ConfigMaps(relNS).Delete(t.Context(), r.stateConfig, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, logs := r.run(); code != 1 || !strings.Contains(logs, "write state ConfigMap "+relNS+"/"+r.stateConfig) || !strings.Contains(logs, "forbidden") {
		t.Errorf("a run without its state ConfigMap: exit %d, want 1 and a forbidden write of %s\n%s", code, r.stateConfig, logs)
	}
	if out, err := helm(t, "upgrade", rel, chartDir(), "-n", relNS, "-f", valuesFile(t, values), "--set", "registry.host=http://"+reg.Host); err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	if cm := r.stateConfigMap(); len(stateData(cm)) != 0 {
		t.Errorf("the state ConfigMap helm upgrade created again holds %v", stateData(cm))
	}
	if logs := r.mustRun("run after helm upgrade created the state again"); !strings.Contains(logs, "restarted=0") {
		t.Errorf("the run after the state was created again restarted something\n%s", logs)
	}
	if _, ok := r.stateConfigMap().BinaryData[state.DataKey]; !ok {
		t.Error("the run after the state was created again did not write it")
	}
}

// An install of an earlier chart let urunner create the state ConfigMap,
// which Helm cannot adopt: the chart leaves that ConfigMap as it is
// instead of failing the upgrade, and urunner goes on with it through
// get and update alone.
func TestChartLeavesAStateConfigMapItDoesNotManage(t *testing.T) {
	cs := clientset(t)
	reg := startRegistry(t, testground.RegistryOptions{})
	const rel, relNS, app = "urunner", "rb-legacy", "rb-legacy-app"
	newNamespace(t, app, false)
	newNamespace(t, relNS, false)
	push(t, reg, "shop/web:latest", "v1")
	createDeployment(t, cs, app, "web", reg.Host+"/shop/web:latest")

	// What the earlier chart's run did: create urunner-state on its own.
	code, out := runAs(t, cluster.KubeconfigPath, map[string]string{
		"URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH": "http://" + reg.Host,
		"URUNNER_CONF_NAMESPACES":                  app,
		"URUNNER_CONF_STATE_NAMESPACE":             relNS,
		"URUNNER_CONF_STATE_CONFIGMAP":             "urunner-state",
	})
	if code != 0 {
		t.Fatalf("the earlier urunner's baseline: exit %d\n%s", code, out)
	}
	before, err := cs.CoreV1().ConfigMaps(relNS).Get(t.Context(), "urunner-state", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	r := install(t, rel, relNS, "namespaces: ["+app+"]\n", "registry.host=http://"+reg.Host)
	now := r.stateConfigMap()
	if now.ResourceVersion != before.ResourceVersion {
		t.Errorf("helm install changed the ConfigMap urunner created: labels %v, annotations %v", now.Labels, now.Annotations)
	}
	push(t, reg, "shop/web:latest", "v2")
	if logs := r.mustRun("run as the chart's ServiceAccount"); !strings.Contains(logs, "restarted=1") {
		t.Errorf("the run did not go on from the earlier state\n%s", logs)
	}
	if diff := cmp.Diff(before.Labels, r.stateConfigMap().Labels); diff != "" {
		t.Errorf("the run changed the ConfigMap's labels (-before +after):\n%s", diff)
	}
}

// A listed namespace that goes away (its Role with it) is an error of its
// own, in the log, the report and the exit code; the other namespace is
// watched and restarted as usual, and what urunner remembers of the
// missing one is kept.
func TestListedNamespaceGoneIsItsOwnError(t *testing.T) {
	// Namespaced mode over namespaces of its own, never labelled, and a
	// registry of its own: it runs beside the others.
	t.Parallel()
	ctx := t.Context()
	cs := clientset(t)
	reg := startRegistry(t, testground.RegistryOptions{})
	const rel, relNS, stays, goes = "rb-gone", "rb-gone", "rb-gone-stays", "rb-gone-goes"
	newNamespace(t, stays, false)
	newNamespace(t, goes, false)
	t.Cleanup(func() { deleteNamespace(t, cs, relNS) })
	r := install(t, rel, relNS, "namespaces: ["+stays+", "+goes+"]\nworkloadKinds: [Deployment]\n", "registry.host=http://"+reg.Host)
	digests := map[string]string{}
	for _, ns := range []string{stays, goes} {
		digests[ns] = push(t, reg, ns+"/app:latest", "v1")
		createDeployment(t, cs, ns, "web", reg.Host+"/"+ns+"/app:latest")
	}
	r.mustRun("baseline")

	deleteNamespace(t, cs, goes)
	waitFor(t, 60*time.Second, "namespace "+goes+" to be gone", func() bool {
		_, err := cs.CoreV1().Namespaces().Get(ctx, goes, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	for _, ns := range []string{stays, goes} {
		push(t, reg, ns+"/app:latest", "v2")
	}
	code, logs := r.run()
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(logs, "namespace="+goes) || !strings.Contains(logs, "cannot list the namespace's workloads") {
		t.Errorf("no log line names namespace %s:\n%s", goes, logs)
	}
	lr := r.lastRun()
	var failed []string
	for _, f := range lr.Failures {
		failed = append(failed, f.Namespace)
	}
	if diff := cmp.Diff([]string{goes}, failed); diff != "" {
		t.Errorf("namespaces failing in the report (-want +got):\n%s\n%+v", diff, lr.Failures)
	}
	if restartedAt(t, cs, "Deployment", stays, "web") == "" {
		t.Errorf("web in %s was not restarted", stays)
	}
	remembered := map[string]string{}
	for ref, s := range r.state().Refs {
		remembered[ref] = s.Digest
	}
	if got, want := remembered[reg.Host+"/"+goes+"/app:latest"], digests[goes]; got != want {
		t.Errorf("what urunner remembers of %s's image: %q, want the digest it saw, %q (all: %v)", goes, got, want, remembered)
	}
}
