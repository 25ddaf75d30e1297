package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/urunner/urunner/e2e/testground"
)

// Against a real private registry (distribution with htpasswd, over TLS
// with its own CA), a run makes exactly one HEAD per reference and takes
// one authentication challenge for the host, however many workers look
// up at once: issue 14 counted 208 HEADs for 200 references when each of
// the 8 workers took its own challenge. BENCHMARKS.md measures the same
// at 200 references and 1,000 Deployments.
func TestOneHeadPerReferenceAndOneChallengePerHost(t *testing.T) {
	// Namespaced mode in a namespace of its own, never labelled, against
	// a registry of its own: no other test's run sees what it counts.
	t.Parallel()
	const (
		refs  = 50
		users = 2 // Deployments per reference
	)
	ctx := t.Context()
	reg, err := testground.StartDistribution(ctx, testground.DistributionOptions{
		AccessLog: true,
		TLS:       true,
		Logins:    map[string]string{"urunner": "pull-s3cret"},
	})
	if err != nil {
		t.Fatalf("start the distribution registry: %v", err)
	}
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Errorf("stop the registry: %v", err)
		}
	})
	cs := clientset(t)
	const ns = "heads"
	ensureNamespace(t, ns)
	// Four tags per repository, so that references and repositories differ.
	tags := []string{"latest", "main", "stable", "v1"}
	for i := range refs {
		repoTag := fmt.Sprintf("team/app-%02d:%s", i/len(tags), tags[i%len(tags)])
		if _, err := reg.PushImage(ctx, repoTag, repoTag); err != nil {
			t.Fatal(err)
		}
		for j := range users {
			createDeployment(t, cs, ns, fmt.Sprintf("d-%02d-%d", i, j), reg.Host+"/"+repoTag)
		}
	}

	dir := t.TempDir()
	caFile := filepath.Join(dir, "registry-ca.pem")
	if err := os.WriteFile(caFile, reg.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	registries := filepath.Join(dir, "registries.yaml")
	yaml := strings.Join([]string{
		"registries:",
		"  - host: " + reg.Host,
		"    caFile: " + caFile,
		"    user: urunner",
		"    password: {env: REGISTRY_PASSWORD}",
	}, "\n") + "\n"
	if err := os.WriteFile(registries, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"URUNNER_CONF_NAMESPACES":           ns,
		"URUNNER_CONF_STATE_NAMESPACE":      ns,
		"URUNNER_CONF_REGISTRIES_FILE":      registries,
		"REGISTRY_PASSWORD":                 "pull-s3cret",
		"URUNNER_CONF_REGISTRY_CONCURRENCY": "8",
	}

	seen := map[string]int{}
	for _, run := range []string{"baseline", "steady state"} {
		code, out := runAs(t, cluster.KubeconfigPath, env)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", run, code, out)
		}
		counts, err := reg.AccessCounts()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for k, v := range counts {
			if n := v - seen[k]; n != 0 {
				got[k] = n
			}
		}
		seen = counts
		want := map[string]int{"HEAD manifest 401": 1, "HEAD manifest 200": refs}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: registry requests (-want +got):\n%s", run, d)
		}
	}
}
