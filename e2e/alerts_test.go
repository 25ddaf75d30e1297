package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The chart's PrometheusRule is tested as users get it: rendered by the
// pinned helm, its spec checked and unit-tested by the pinned promtool
// (hack/tools.sh builds both), against the series a Pushgateway serves.

func promtoolBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(root, ".cache", "bin", "promtool")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("promtool is missing: run hack/tools.sh promtool (make test does): %v", err)
	}
	return bin
}

// promtool runs the pinned promtool in dir, where rule unit test files find
// their rule files.
func promtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(promtoolBin(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// renderRules renders the chart's PrometheusRule with the given helm
// arguments and writes its spec, a Prometheus rules file, as dir/rules.yaml:
// the file the unit test files load.
func renderRules(t *testing.T, dir string, args ...string) {
	t.Helper()
	out, err := helm(t, append([]string{"template", "urunner", chartDir(), "-n", "urunner",
		"-s", "templates/prometheusrule.yaml"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, out)
	}
	var rule struct {
		Kind string `json:"kind"`
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(out), &rule); err != nil {
		t.Fatalf("parse the rendered PrometheusRule: %v\n%s", err, out)
	}
	if rule.Kind != "PrometheusRule" || len(rule.Spec.Groups) == 0 {
		t.Fatalf("rendered no PrometheusRule with rule groups:\n%s", out)
	}
	b, err := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := promtool(t, dir, "check", "rules", "rules.yaml"); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// copyTestdata copies a file of testdata/alerts into dir.
func copyTestdata(t *testing.T, dir, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "alerts", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func alertValues(name string) string { return filepath.Join("testdata", "alerts", name) }

func TestAlertRulesPassTheirUnitTests(t *testing.T) {
	t.Parallel() // promtool and helm only, each row in its own directory
	for _, tc := range []struct{ values, tests string }{
		{"defaults.values.yaml", "defaults.test.yaml"},
		{"custom.values.yaml", "custom.test.yaml"},
	} {
		t.Run(tc.tests, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			renderRules(t, dir, "-f", alertValues(tc.values))
			copyTestdata(t, dir, tc.tests)
			if out, err := promtool(t, dir, "test", "rules", tc.tests); err != nil {
				t.Errorf("promtool test rules %s: %v\n%s", tc.tests, err, out)
			}
		})
	}
}

// A rule changed in the chart without its unit tests following must fail
// them. Each row changes one threshold, severity, switch or selector; the
// rules stay valid (renderRules checks them), so the failure is the tests'.
func TestAlertUnitTestsCatchAChangedRule(t *testing.T) {
	// promtool's unit tests take seconds of one core per row, and the
	// rows share nothing: they run beside each other and the cluster
	// tests.
	t.Parallel()
	const a = "metrics.prometheusRule.alerts."
	for _, tc := range []struct{ values, tests, set string }{
		{"defaults.values.yaml", "defaults.test.yaml", a + "noSuccessfulRun.for=29m"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "noSuccessfulRun.for=31m"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "runsFailing.for=14m"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "runsFailing.for=16m"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "imageLookupFailing.for=59m"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "imageLookupFailing.for=61m"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "rolloutsFailed.keepFiringFor=59m"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "rolloutsFailed.keepFiringFor=61m"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "noSuccessfulRun.severity=critical"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "runsFailing.severity=critical"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "imageLookupFailing.severity=critical"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "restartCapExceeded.severity=critical"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "rolloutsFailed.severity=warning"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "metricsMissing.severity=critical"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "noSuccessfulRun.enabled=false"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "runsFailing.enabled=false"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "imageLookupFailing.enabled=false"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "restartCapExceeded.enabled=false"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "rolloutsFailed.enabled=false"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "metricsMissing.enabled=false"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "registryBudget.enabled=false"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "registryBudget.severity=critical"},
		{"defaults.values.yaml", "defaults.test.yaml", a + "registryBudget.over=2h"},
		{"defaults.values.yaml", "defaults.test.yaml", `metrics.prometheusRule.selector=job="urunner-other"`},
		{"defaults.values.yaml", "defaults.test.yaml", "notifications.clusterName=prod-eu"},
		{"custom.values.yaml", "custom.test.yaml", "notifications.clusterName="},
		{"custom.values.yaml", "custom.test.yaml", "metrics.prometheusRule.alertLabels.team=apps"},
		{"custom.values.yaml", "custom.test.yaml", a + "restartCapExceeded.enabled=true"},
		{"custom.values.yaml", "custom.test.yaml", a + "imageLookupFailing.for=2h"},
	} {
		t.Run(tc.tests+"/"+tc.set, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			renderRules(t, dir, "-f", alertValues(tc.values), "--set", tc.set)
			copyTestdata(t, dir, tc.tests)
			out, err := promtool(t, dir, "test", "rules", tc.tests)
			if err == nil {
				t.Fatalf("promtool test rules %s passed with --set %s:\n%s", tc.tests, tc.set, out)
			}
			if !strings.Contains(out, "FAILED") {
				t.Errorf("promtool failed, but not a unit test:\n%s", out)
			}
		})
	}
}

func TestPrometheusRuleRejectsBadValues(t *testing.T) {
	t.Parallel() // helm template only
	const a = "metrics.prometheusRule.alerts."
	on := []string{"--set", "registry.host=r.example.com", "--set", "metrics.prometheusRule.enabled=true"}
	gw := append([]string{"--set", "config.pushgatewayURL=http://pushgateway.monitoring:9091"}, on...)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"rules without a Pushgateway", on, "metrics.prometheusRule.enabled needs config.pushgatewayURL"},
		{"threshold that is no duration", append([]string{"--set-string", a + "runsFailing.for=soon"}, gw...), "/metrics/prometheusRule/alerts/runsFailing/for"},
		{"units out of order", append([]string{"--set", a + "noSuccessfulRun.for=30m1h"}, gw...), "/metrics/prometheusRule/alerts/noSuccessfulRun/for"},
		{"zero threshold", append([]string{"--set", a + "imageLookupFailing.for=0s"}, gw...), a + "imageLookupFailing.for: want a duration above 0"},
		{"zero look-back", append([]string{"--set", a + "rolloutsFailed.keepFiringFor=0m"}, gw...), a + "rolloutsFailed.keepFiringFor: want a duration above 0"},
		{"unknown alert", append([]string{"--set", a + "podsCrashing.enabled=true"}, gw...), "podsCrashing"},
		{"empty severity", append([]string{"--set", a + "runsFailing.severity="}, gw...), "/metrics/prometheusRule/alerts/runsFailing/severity"},
		{"alert label that Prometheus refuses", append([]string{"--set", "metrics.prometheusRule.alertLabels.on-call=x"}, gw...), "'on-call' does not match pattern"},
		{"dashboard label value Kubernetes refuses", []string{"--set", "registry.host=r.example.com", "--set", "metrics.grafanaDashboard.labelValue=a b"}, "/metrics/grafanaDashboard/labelValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "urunner", chartDir()}, tc.args...)...)
			if err == nil {
				t.Fatalf("helm template %v succeeded", tc.args)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("error does not name %s:\n%s", tc.want, out)
			}
		})
	}
}
