package main

import (
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRequestKey(t *testing.T) {
	for _, tc := range []struct {
		name, method, url, want string
	}{
		{"namespace LIST by label", "GET", "/api/v1/namespaces?labelSelector=urunner%3Denable&limit=500", "list namespaces"},
		{"namespace GET", "GET", "/api/v1/namespaces/default", "get namespaces"},
		{"namespace status", "PUT", "/api/v1/namespaces/shop/status", "update namespaces/status"},
		{"cluster-wide Deployment LIST", "GET", "/apis/apps/v1/deployments?limit=500", "list deployments"},
		{"namespaced Deployment LIST", "GET", "/apis/apps/v1/namespaces/shop/deployments", "list deployments"},
		{"Deployment GET", "GET", "/apis/apps/v1/namespaces/shop/deployments/web", "get deployments"},
		{"Deployment PATCH", "PATCH", "/apis/apps/v1/namespaces/shop/deployments/web", "patch deployments"},
		{"Deployment status", "PUT", "/apis/apps/v1/namespaces/shop/deployments/web/status", "update deployments/status"},
		{"state GET", "GET", "/api/v1/namespaces/default/configmaps/urunner-state", "get configmaps"},
		{"state create", "POST", "/api/v1/namespaces/default/configmaps", "create configmaps"},
		{"state update", "PUT", "/api/v1/namespaces/default/configmaps/urunner-state", "update configmaps"},
		{"watch", "GET", "/api/v1/namespaces/default/configmaps?watch=true", "watch configmaps"},
		{"delete collection", "DELETE", "/api/v1/namespaces/default/configmaps", "deletecollection configmaps"},
		{"core discovery", "GET", "/api", "get discovery"},
		{"group discovery", "GET", "/apis/apps/v1", "get discovery"},
		{"non-resource", "GET", "/version", "get nonresource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := requestKey(tc.method, u); got != tc.want {
				t.Errorf("requestKey(%s %s) = %q, want %q", tc.method, tc.url, got, tc.want)
			}
		})
	}
}

func TestParseLogFindsTheSummary(t *testing.T) {
	log := strings.Join([]string{
		"Nov 24 23:51:00.000 INF restarted namespace=shop deployment=web container=app image=r/a:latest from=sha256:1 to=sha256:2",
		"Nov 24 23:51:00.001 WRN lookup failed; workloads on this image keep their stored digest image=r/b:latest error=\"not found\"",
		"\x1b[2mNov 24 23:51:00.002\x1b[0m INF run finished namespaces=1 workloads=2 images=1 resolved=1 changed=1 restarted=1 baselined=0 failed=0 dry_run=false duration=71ms",
	}, "\n")
	l, err := parseLog(strings.NewReader(log), 5)
	if err != nil {
		t.Fatal(err)
	}
	summary, problems := l.summary, l.problems
	want := map[string]string{
		"namespaces": "1", "workloads": "2", "images": "1", "resolved": "1", "changed": "1",
		"restarted": "1", "baselined": "0", "failed": "0", "dry_run": "false", "duration": "71ms",
	}
	if d := cmp.Diff(want, summary); d != "" {
		t.Errorf("summary (-want +got):\n%s", d)
	}
	if len(problems) != 1 || l.warnings != 1 || l.errors != 0 {
		t.Errorf("problems = %q, %d warnings, %d errors; want the WRN line", problems, l.warnings, l.errors)
	}
}

func TestBudgetOfTheSummaryLine(t *testing.T) {
	l, err := parseLog(strings.NewReader("Nov 24 23:51:00.002 INF run finished images=2 registry_pulls=1 "+
		"registries.127.0.0.1:5000.manifest_heads=2 registries.127.0.0.1:5000.manifest_gets=1 registries.127.0.0.1:5000.blob_gets=1 "+
		"registries.127.0.0.1:5000.tokens=3 registries.127.0.0.1:5000.pulls=1 registries.127.0.0.1:5000.remaining=99 registries.127.0.0.1:5000.limit=100 "+
		"registries.docker.io.manifest_heads=4 registries.docker.io.manifest_gets=0 registries.docker.io.blob_gets=0 registries.docker.io.tokens=1 registries.docker.io.pulls=0"), 5)
	if err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.1:5000: 2 HEAD, 1 GET, 1 blob, 3 token, 1 pulls, 99 of 100 left; docker.io: 4 HEAD, 0 GET, 0 blob, 1 token, 0 pulls"
	if got := budgetOf(l.summary); got != want {
		t.Errorf("budgetOf = %q, want %q", got, want)
	}
}

func TestParseAttrsQuoted(t *testing.T) {
	got := parseAttrs(`error="a b c" n=3`)
	want := map[string]string{"error": "a b c", "n": "3"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseAttrs (-want +got):\n%s", d)
	}
}

func TestPlanExpectations(t *testing.T) {
	p := newPlan(1, 10, 8, 100, 10, 30, 3)
	e := p.expect(nil)
	refs := 0
	for _, n := range e.refsPerHost {
		refs += n
	}
	if refs == 0 || refs > 30 {
		t.Errorf("unique refs looked up = %d, want 1..30", refs)
	}
	if e.restarts != 0 {
		t.Errorf("restarts with nothing moved = %d, want 0", e.restarts)
	}
	moved := p.takeRefsForRestarts(20)
	if got := p.expect(moved).restarts; got < 20 {
		t.Errorf("restarts after takeRefsForRestarts(20) = %d, want at least 20", got)
	}
}

func TestSpreadOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want spread
	}{
		{"odd count: the middle value", []float64{3, 1, 2}, spread{1, 2, 3}},
		{"even count: the mean of the two middle values", []float64{4, 1, 3, 2}, spread{1, 2.5, 4}},
		{"one value", []float64{7}, spread{7, 7, 7}},
		{"none", nil, spread{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := spreadOf(tc.in); got != tc.want {
				t.Errorf("spreadOf(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestModuleOf(t *testing.T) {
	for sym, want := range map[string]string{
		"github.com/aws/aws-sdk-go-v2/service/ecr/types.(*Repository).String": "github.com/aws/aws-sdk-go-v2",
		"k8s.io/api/core/v1.(*PodSpec).Unmarshal":                             "k8s.io/api",
		"type:*k8s.io/client-go/rest.Config":                                  "k8s.io/client-go",
		"go:itab.*net/http.Transport,net/http.RoundTripper":                   "Go standard library and runtime",
		"runtime.mallocgc":                                "Go standard library and runtime",
		"golang.org/x/net/http2.(*Framer).ReadFrame":      "golang.org/x/net",
		"github.com/urunner/urunner/registry.NewResolver": "github.com/urunner/urunner",
	} {
		if got := moduleOf(sym); got != want {
			t.Errorf("moduleOf(%q) = %q, want %q", sym, got, want)
		}
	}
}

// The throwaway builds of -floor leave a provider's SDK out but keep what
// other providers share.
func TestStripSDKKeepsSharedHelpers(t *testing.T) {
	src := `package registry

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ecr"
)

const margin = 5 * time.Minute

func reusable(c Credentials) bool { return c.Expiry.IsZero() || time.Until(c.Expiry) > margin }

type ecrProvider struct{ client *ecr.Client }

func newECR(hc HostConfig) (Provider, error) { return &ecrProvider{}, nil }

func (p *ecrProvider) Credentials(ctx context.Context) (Credentials, error) {
	_, err := p.client.GetAuthorizationToken(ctx, nil)
	return Credentials{}, err
}
`
	path := filepath.Join(t.TempDir(), "ecr.go")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := stripSDK(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, keep := range []string{"func reusable(", "const margin", `"time"`} {
		if !strings.Contains(got, keep) {
			t.Errorf("stripped file lost %q:\n%s", keep, got)
		}
	}
	for _, gone := range []string{"aws-sdk", "ecrProvider", "newECR", `"context"`} {
		if strings.Contains(got, gone) {
			t.Errorf("stripped file still has %q:\n%s", gone, got)
		}
	}
}

func TestScalePlanMixesKindsAndWatchesOnlyTheEnabled(t *testing.T) {
	p := newScalePlan(1, 1000, 100, 5, 20, 300, 3)
	if got := p.expect(nil).watched; got != 100 {
		t.Errorf("watched before the others are enabled = %d, want 100", got)
	}
	want := map[string]int{kindDeployment: 100 + 540, kindStatefulSet: 180, kindDaemonSet: 180}
	if d := cmp.Diff(want, p.kindCounts()); d != "" {
		t.Errorf("kinds (-want +got):\n%s", d)
	}
	for i := range p.namespaces {
		p.namespaces[i].enabled = true
	}
	if e := p.expect(nil); e.watched != 1000 || e.refs() != 300 {
		t.Errorf("all enabled: watched %d, refs %d; want 1000 and 300", e.watched, e.refs())
	}
}

func TestMain(m *testing.M) {
	// The test binary is also the -rusage-exec helper of the tests.
	if len(os.Args) > 1 && os.Args[1] == rusageExecFlag {
		os.Exit(rusageExec(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// A child's peak RSS, as Linux reports it to its parent, is at least the
// parent's own peak when the child was started with vfork and execve, as
// os/exec does: the benchmark's RSS would be read as urunner's. Run under
// the helper, a small child reports a small peak however large the
// benchmark is.
func TestPeakRSSOfAChildIsNotTheBenchmarks(t *testing.T) {
	ballast := make([]byte, 256<<20)
	for i := range ballast {
		if i%4096 == 0 {
			ballast[i] = 1
		}
	}
	direct := exec.Command("true")
	if err := direct.Run(); err != nil {
		t.Fatal(err)
	}
	directKiB := direct.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	m, err := measureExec(t.Context(), os.Environ(), io.Discard, "true")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("peak RSS of true: %d KiB started directly, %d KiB under the helper", directKiB, m.MaxRSSKiB)
	if directKiB < 256<<10 {
		t.Logf("this kernel does not carry the parent's peak into the child (%d KiB); the helper is harmless", directKiB)
	}
	if m.MaxRSSKiB >= 128<<10 || m.ExitCode != 0 || m.Wall <= 0 {
		t.Errorf("under the helper: %+v, want a peak far below the test's 256 MiB, exit 0 and a wall time", m)
	}
	runtime.KeepAlive(ballast)
}

func TestGCTrace(t *testing.T) {
	log := strings.Join([]string{
		"gc 1 @0.012s 3%: 0.020+1.1+0.004 ms clock, 0.040+0.3/1.0/0+0.008 ms cpu, 3->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P",
		"2026-11-29T07:00:00Z INF run finished namespaces=1",
		"gc 2 @0.500s 5%: 0.030+2.0+0.005 ms clock, 0.060+0.5/2.0/0+0.010 ms cpu, 21->23->9 MB, 22 MB goal, 1 MB stacks, 0 MB globals, 2 P",
	}, "\n")
	path := filepath.Join(t.TempDir(), "stderr")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := gcTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := (gcStats{n: 2, maxStart: 21, maxLive: 9, maxGoal: 22, maxStacks: 1}); got != want {
		t.Errorf("gcTrace = %+v, want %+v", got, want)
	}
}
