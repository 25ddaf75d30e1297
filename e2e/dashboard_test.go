package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// contractMetrics are the gauges each urunner run pushes to the Pushgateway
// (the metrics contract of issue 18) and the two the Pushgateway adds to
// every group. The dashboard may query nothing else.
var contractMetrics = map[string]bool{
	"urunner_run_timestamp_seconds":                        true,
	"urunner_run_duration_seconds":                         true,
	"urunner_run_exit_code":                                true,
	"urunner_run_last_success_timestamp_seconds":           true,
	"urunner_run_images":                                   true,
	"urunner_run_registry_head_requests":                   true,
	"urunner_run_workloads":                                true,
	"urunner_run_restarts":                                 true,
	"urunner_run_held":                                     true,
	"urunner_run_failures":                                 true,
	"urunner_run_lookup_failures":                          true,
	"urunner_run_restart_failures":                         true,
	"urunner_run_restart_cap_exceeded":                     true,
	"urunner_run_rollouts_failed":                          true,
	"urunner_run_rollouts_verified":                        true,
	"urunner_image_lookup_failing_since_timestamp_seconds": true,
	"urunner_registry_requests":                            true,
	"urunner_registry_pulls":                               true,
	"urunner_registry_ratelimit_limit":                     true,
	"urunner_registry_ratelimit_remaining":                 true,
	"urunner_registry_ratelimit_window_seconds":            true,
	"urunner_registry_rate_limited":                        true,
	"urunner_registry_retry_after_seconds":                 true,
	"push_time_seconds":                                    true,
	"push_failure_time_seconds":                            true,
}

// dashboard is the part of Grafana's dashboard JSON the tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

func readDashboard(t *testing.T) ([]byte, dashboard) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir(), "dashboards", "urunner.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	return b, d
}

// allPanels flattens rows: a collapsed row holds its panels.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

var (
	promqlStrings   = regexp.MustCompile("\"(?:\\\\.|[^\"\\\\])*\"|'(?:\\\\.|[^'\\\\])*'|`[^`]*`")
	promqlMatchers  = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promqlLabelList = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlName      = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlKeywords  = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"inf": true, "nan": true, "atan2": true}
)

// queriedMetrics returns the metric names a PromQL expression selects: what
// is left once strings, label matchers, ranges, label lists, functions,
// keywords, numbers and durations are set aside. It assumes valid PromQL
// (promtool checks that) and selectors by name, not {__name__=...}.
func queriedMetrics(expr string) []string {
	s := promqlStrings.ReplaceAllString(expr, `""`)
	s = promqlMatchers.ReplaceAllString(s, " ")
	s = promqlLabelList.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promqlName.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsAny(s[loc[0]-1:loc[0]], "0123456789.$") {
			continue // the unit of a duration or exponent of a number, or a variable
		}
		if strings.HasPrefix(strings.TrimLeft(s[loc[1]:], " \t\n"), "(") || promqlKeywords[strings.ToLower(name)] {
			continue // a function, an aggregation or a keyword
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

func TestQueriedMetrics(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`time() - urunner_run_timestamp_seconds{cluster=~"$cluster"}`, []string{"urunner_run_timestamp_seconds"}},
		{`changes(urunner_run_timestamp_seconds{cluster=~"$cluster"}[1h])`, []string{"urunner_run_timestamp_seconds"}},
		{`sum by (cluster, image) (rate(foo_total{a="b}"}[5m])) > bool 1e3`, []string{"foo_total"}},
		{`a_metric offset 5m and on(job) group_left(image) other:metric`, []string{"a_metric", "other:metric"}},
		{`histogram_quantile(0.9, x_bucket) unless ignoring(le) x_bucket`, []string{"x_bucket"}},
		{`label_replace(up, "dst", "$1", "src", "(.*)")`, []string{"up"}},
	} {
		if diff := cmp.Diff(tc.want, queriedMetrics(tc.expr)); diff != "" {
			t.Errorf("queriedMetrics(%q) (-want +got):\n%s", tc.expr, diff)
		}
	}
}

// grafanaVariables are Grafana's variables in a query; promtool gets a value
// of their kind in their place.
var grafanaVariables = regexp.MustCompile(`\$\{?(\w+)\}?`)

func TestDashboardQueriesOnlyTheMetricsContract(t *testing.T) {
	_, d := readDashboard(t)
	queried := map[string]bool{}
	var rules []map[string]string
	for _, p := range allPanels(d.Panels) {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			names := queriedMetrics(tg.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q, query %s: selects no metric: %q", p.Title, tg.RefID, tg.Expr)
			}
			for _, n := range names {
				if !contractMetrics[n] {
					t.Errorf("panel %q, query %s: %s is not in the metrics contract", p.Title, tg.RefID, n)
				}
				queried[n] = true
			}
			expr := grafanaVariables.ReplaceAllStringFunc(tg.Expr, func(v string) string {
				if strings.Contains(v, "__") { // $__rate_interval, $__interval, $__range
					return "5m"
				}
				return ".*"
			})
			rules = append(rules, map[string]string{"record": fmt.Sprintf("dashboard:panel%d_%s", p.ID, tg.RefID), "expr": expr})
		}
	}
	// The brief's panels: runs, exit code, restarts, held, failures, the
	// lookup-failing images, duration, HEAD requests.
	for _, m := range []string{"urunner_run_timestamp_seconds", "urunner_run_exit_code", "urunner_run_restarts",
		"urunner_run_held", "urunner_run_failures", "urunner_image_lookup_failing_since_timestamp_seconds",
		"urunner_run_duration_seconds", "urunner_run_registry_head_requests"} {
		if !queried[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
	// Every query is PromQL that Prometheus parses.
	dir := t.TempDir()
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "queries.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := promtool(t, dir, "check", "rules", "queries.yaml"); err != nil {
		t.Errorf("promtool check rules of the dashboard's queries: %v\n%s", err, out)
	}
}

func TestDashboardIsWellFormed(t *testing.T) {
	_, d := readDashboard(t)
	if d.UID != "urunner" || d.Title != "urunner" {
		t.Errorf("uid %q, title %q: want urunner, urunner (links to it rely on the uid)", d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Name == "cluster" && !strings.Contains(string(v.Query), "label_values(urunner_run_timestamp_seconds, cluster)") {
			t.Errorf("the cluster variable lists %s, want the clusters that push urunner_run_timestamp_seconds", v.Query)
		}
	}
	if diff := cmp.Diff(map[string]string{"datasource": "datasource", "cluster": "query"}, vars); diff != "" {
		t.Errorf("variables (-want +got):\n%s", diff)
	}
	ids := map[int]string{}
	ps := allPanels(d.Panels)
	for i, p := range ps {
		if other, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is off Grafana's 24-column grid", p.Title, g)
		}
		if p.Type != "row" && (p.Datasource == nil || p.Datasource.UID != "${datasource}") {
			t.Errorf("panel %q does not query the dashboard's datasource variable", p.Title)
		}
		for _, q := range ps[:i] {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panels %q and %q overlap", q.Title, p.Title)
			}
		}
	}
}

func TestDashboardConfigMapCarriesTheSidecarLabel(t *testing.T) {
	file, _ := readDashboard(t)
	for _, tc := range []struct {
		name             string
		set              []string
		key, val, ns     string
		folderAnnotation string
	}{
		{"default label", nil, "grafana_dashboard", "1", "urunner", ""},
		{"own label and namespace", []string{"metrics.grafanaDashboard.labelKey=dashboards.example.com/team",
			"metrics.grafanaDashboard.labelValue=platform", "metrics.grafanaDashboard.namespace=monitoring",
			"metrics.grafanaDashboard.annotations.grafana_folder=urunner"}, "dashboards.example.com/team", "platform", "monitoring", "urunner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "urunner", chartDir(), "-n", "urunner", "-s", "templates/grafana-dashboard.yaml",
				"--set", "registry.host=r.example.com", "--set", "metrics.grafanaDashboard.enabled=true"}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := helm(t, args...)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			var cm corev1.ConfigMap
			if err := yaml.Unmarshal([]byte(out), &cm); err != nil {
				t.Fatal(err)
			}
			if got := cm.Labels[tc.key]; got != tc.val {
				t.Errorf("label %s = %q, want %q", tc.key, got, tc.val)
			}
			if cm.Namespace != tc.ns {
				t.Errorf("namespace %q, want %q", cm.Namespace, tc.ns)
			}
			if got := cm.Annotations["grafana_folder"]; got != tc.folderAnnotation {
				t.Errorf("annotation grafana_folder = %q, want %q", got, tc.folderAnnotation)
			}
			if diff := cmp.Diff(strings.TrimSpace(string(file)), strings.TrimSpace(cm.Data["urunner.json"])); diff != "" {
				t.Errorf("the ConfigMap's urunner.json differs from dashboards/urunner.json (-file +configmap):\n%s", diff)
			}
		})
	}
}

// Both are off by default: a default install renders neither.
func TestMonitoringObjectsOnlyWhenEnabled(t *testing.T) {
	out, err := helm(t, "template", "urunner", chartDir(), "--set", "registry.host=r.example.com",
		"--set", "config.pushgatewayURL=http://pushgateway.monitoring:9091")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	for _, s := range []string{"kind: PrometheusRule", "grafana_dashboard"} {
		if strings.Contains(out, s) {
			t.Errorf("a default render has %q", s)
		}
	}
}
