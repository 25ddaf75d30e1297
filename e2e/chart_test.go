package e2e

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/urunner/urunner/e2e/testground"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite golden files")

// helm runs the pinned helm against the test cluster, with its own
// configuration directories so that nothing of the user's leaks in.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin, args...)
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+cluster.KubeconfigPath,
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func chartDir() string { return filepath.Join(root, "chart", "urunner") }

// valuesFile writes a values file for helm -f, at a path without the
// commas of subtest names (helm splits -f on commas).
func valuesFile(t *testing.T, values string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "urunner-values-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	file := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(file, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func valueFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "chart", "*.values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files: %v", err)
	}
	return files
}

func TestChartLints(t *testing.T) {
	for _, f := range valueFiles(t) {
		if out, err := helm(t, "lint", "--strict", chartDir(), "-f", f); err != nil {
			t.Errorf("helm lint -f %s: %v\n%s", f, err, out)
		}
	}
}

// The golden renders pin what users get for the defaults and for
// representative values; -update rewrites them after a deliberate change.
func TestChartGoldenRenders(t *testing.T) {
	for _, f := range valueFiles(t) {
		name := strings.TrimSuffix(filepath.Base(f), ".values.yaml")
		t.Run(name, func(t *testing.T) {
			got, err := helm(t, "template", "urunner", chartDir(), "-n", "urunner", "-f", f)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, got)
			}
			golden := filepath.Join("testdata", "chart", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("render differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

// Every rendered object is accepted by the real API server (server-side
// apply, dry run), so a render that only looks right fails here. The
// PrometheusRule is checked against the Prometheus Operator's own CRD schema.
func TestChartObjectsAreAcceptedByTheAPIServer(t *testing.T) {
	ctx := t.Context()
	dc := dynamic.NewForConfigOrDie(cluster.AdminConfig())
	if err := testground.InstallCRD(t.Context(), cluster.AdminConfig(), filepath.Join(root, ".cache", "crds", "monitoring.coreos.com_prometheusrules.yaml")); err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cluster.AdminConfig())))
	ensureNamespace(t, "urunner")
	for _, f := range valueFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := helm(t, "template", "urunner", chartDir(), "-n", "urunner", "-f", f)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			n := 0
			for _, doc := range strings.Split(out, "\n---") {
				var obj unstructured.Unstructured
				if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
					t.Fatal(err)
				}
				if len(obj.Object) == 0 {
					continue
				}
				n++
				gvk := obj.GroupVersionKind()
				m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				if err != nil {
					t.Fatalf("%s: %v", gvk, err)
				}
				body, _ := yaml.YAMLToJSON([]byte(doc))
				ri := dc.Resource(m.Resource)
				var rc dynamic.ResourceInterface = ri
				if obj.GetNamespace() != "" {
					// Namespaced mode renders Roles in the listed
					// namespaces, which must exist.
					ensureNamespace(t, obj.GetNamespace())
					rc = ri.Namespace(obj.GetNamespace())
				}
				if _, err := rc.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
					DryRun: []string{metav1.DryRunAll}, FieldManager: "chart-test",
				}); err != nil {
					t.Errorf("%s %s rejected: %v", gvk.Kind, obj.GetName(), err)
				}
			}
			if n < 6 {
				t.Errorf("only %d objects rendered", n)
			}
		})
	}
}

func TestChartSchemaRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		set, want string
	}{
		{"registry.type=quay", "/registry/type"},
		{"suspend=yes", "/suspend"},
		{"config.logLevel=LOUD", "/config/logLevel"},
		{"config.logFormat=xml", "/config/logFormat"},
		{"config.registryConcurrency=0", "/config/registryConcurrency"},
		{"config.runTimeout=soon", "/config/runTimeout"},
		{"config.maxRestartsWindow=daily", "/config/maxRestartsWindow"},
		{"backoffLimit=-1", "/backoffLimit"},
		{"registries[0].host=x,registries[0].type=quay", "/registries/0/type"},
		{"unknownKey=1", "unknownKey"},
		{"webhook.debounce=soon", "/webhook/debounce"},
		{"webhook.secrets.genericKey=short", "/webhook/secrets/genericKey"},
		{"webhook.secrets.dockerhubToken=has/a/slash-0123456789", "/webhook/secrets/dockerhubToken"},
		{"webhook.service.type=ExternalName", "/webhook/service/type"},
		{"webhook.unknown=1", "unknown"},
		{"namespaces={Shop}", "/namespaces/0"},
		{"namespaces={shop,shop}", "/namespaces"},
		{"namespaces={kube_system}", "/namespaces/0"},
		{"pullSecretNames={Reg_Cred}", "/pullSecretNames/0"},
		{"config.listScope=everywhere", "/config/listScope"},
		{"config.stateConfigMap=State_Map", "/config/stateConfigMap"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			args := []string{"template", "urunner", chartDir(), "--set", "registry.host=r.example.com", "--set", tc.set}
			if tc.set == "suspend=yes" || tc.set == "config.runTimeout=soon" {
				args[len(args)-2] = "--set-string"
			}
			out, err := helm(t, args...)
			if err == nil {
				t.Fatalf("helm template --set %s succeeded", tc.set)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("error does not name %s:\n%s", tc.want, out)
			}
		})
	}
	if out, err := helm(t, "template", "urunner", chartDir()); err == nil || !strings.Contains(out, "set registry.host or registries") {
		t.Errorf("a chart without a registry rendered: %v\n%s", err, out)
	}
	if out, err := helm(t, "template", "urunner", chartDir(), "--set", "registry.host=r.example.com", "--set", "webhook.enabled=true"); err == nil || !strings.Contains(out, "set webhook.existingSecret or at least one of webhook.secrets") {
		t.Errorf("a receiver without any secret rendered: %v\n%s", err, out)
	}
	if out, err := helm(t, "template", "urunner", chartDir(), "--set", "registry.host=r.example.com", "--set", "pullSecretNames={regcred}"); err == nil || !strings.Contains(out, "pullSecretNames narrows pullSecretAuth") {
		t.Errorf("pullSecretNames without pullSecretAuth rendered: %v\n%s", err, out)
	}
}

func ensureNamespace(t *testing.T, ns string) {
	t.Helper()
	cs := clientset(t)
	_, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err == nil {
		return
	}
	if _, err := helm(t, "version"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), namespace(ns, false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// readmeRender is a `helm template` command in a ```sh block of the chart
// README, followed by a ```yaml block showing its output.
var readmeRender = regexp.MustCompile("(?s)```sh\n(helm template [^\n]*)\n```\n\n```yaml\n(.*?)```")

// The chart README shows, for each mode, what `helm template` renders: the
// output there is the chart's, not a copy that drifted (-update rewrites
// it).
func TestChartREADMEShowsWhatTheChartRenders(t *testing.T) {
	file := filepath.Join(chartDir(), "README.md")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	matches := readmeRender.FindAllStringSubmatchIndex(page, -1)
	if len(matches) < 2 {
		t.Fatalf("%s shows %d helm template renders, want one per mode", file, len(matches))
	}
	for _, m := range slices.Backward(matches) {
		command, shown := page[m[2]:m[3]], page[m[4]:m[5]]
		var args []string
		for _, f := range strings.Fields(command)[1:] {
			f = strings.Trim(f, "'")
			if f == "./chart/urunner" {
				f = chartDir()
			}
			args = append(args, f)
		}
		got, err := helm(t, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", command, err, got)
		}
		if *update {
			page = page[:m[4]] + got + page[m[5]:]
			continue
		}
		if diff := cmp.Diff(shown, got); diff != "" {
			t.Errorf("%s shows another render than %s gives (-shown +rendered):\n%s", file, command, diff)
		}
	}
	if *update {
		if err := os.WriteFile(file, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
