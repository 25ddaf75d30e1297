package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/state"
)

// Two teams install the chart side by side, in one namespace: two
// namespace lists, two state ConfigMaps, two ServiceAccounts. A push
// moves both teams' images (and one image both run): each release
// restarts only its own workloads and writes only its own state, and
// neither ServiceAccount may touch the other's workloads or state. A
// third release told to share a state ConfigMap is refused at install.
func TestTwoReleasesNeverTouchEachOther(t *testing.T) {
	cs := clientset(t)
	reg := startRegistry(t, testground.RegistryOptions{})
	const relNS = "rb-teams"
	teams := map[string][]string{"team-a": {"rb-ta-shop", "rb-ta-pay"}, "team-b": {"rb-tb-web"}}
	releases := map[string]*release{}
	t.Cleanup(func() { deleteNamespace(t, cs, relNS) })
	for _, team := range []string{"team-a", "team-b"} {
		for _, ns := range teams[team] {
			newNamespace(t, ns, false)
			push(t, reg, ns+"/app:latest", "v1")
			createDeployment(t, cs, ns, "web", reg.Host+"/"+ns+"/app:latest")
		}
		// The same shared image in one namespace of each team.
		push(t, reg, "base/tool:latest", "v1")
		createDeployment(t, cs, teams[team][0], "tool", reg.Host+"/base/tool:latest")
		releases[team] = install(t, team, relNS, "namespaces: ["+strings.Join(teams[team], ", ")+"]\nworkloadKinds: [Deployment]\n",
			"registry.host=http://"+reg.Host)
	}
	a, b := releases["team-a"], releases["team-b"]
	if a.stateConfig == b.stateConfig {
		t.Fatalf("both releases use state ConfigMap %s", a.stateConfig)
	}
	a.mustRun("team-a's baseline")
	b.mustRun("team-b's baseline")

	for _, ns := range append(slices.Clone(teams["team-a"]), teams["team-b"]...) {
		push(t, reg, ns+"/app:latest", "v2")
	}
	push(t, reg, "base/tool:latest", "v2")

	restarted := func() []string {
		var out []string
		for _, ns := range append(slices.Clone(teams["team-a"]), teams["team-b"]...) {
			for _, name := range []string{"web", "tool"} {
				if name == "tool" && ns != teams["team-a"][0] && ns != teams["team-b"][0] {
					continue
				}
				if restartedAt(t, cs, "Deployment", ns, name) != "" {
					out = append(out, ns+"/"+name)
				}
			}
		}
		return out
	}
	bState := b.stateConfigMap().ResourceVersion
	a.mustRun("team-a's run after the push")
	if diff := cmp.Diff([]string{"rb-ta-shop/web", "rb-ta-shop/tool", "rb-ta-pay/web"}, restarted()); diff != "" {
		t.Errorf("restarted by team-a's run (-want +got):\n%s", diff)
	}
	if b.stateConfigMap().ResourceVersion != bState {
		t.Error("team-a's run wrote team-b's state")
	}
	b.mustRun("team-b's run after the push")
	if diff := cmp.Diff([]string{"rb-ta-shop/web", "rb-ta-shop/tool", "rb-ta-pay/web", "rb-tb-web/web", "rb-tb-web/tool"}, restarted()); diff != "" {
		t.Errorf("restarted after both runs (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		r    *release
		want []string
	}{
		{a, []string{"base/tool", "rb-ta-pay/app", "rb-ta-shop/app"}},
		{b, []string{"base/tool", "rb-tb-web/app"}},
	} {
		var got []string
		for ref := range tc.r.state().Refs {
			got = append(got, strings.TrimSuffix(strings.TrimPrefix(ref, reg.Host+"/"), ":latest"))
		}
		slices.Sort(got)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("images %s remembers (-want +got):\n%s", tc.r.name, diff)
		}
	}

	for _, tc := range []struct{ r, other *release }{{a, b}, {b, a}} {
		theirs := teams[tc.other.name][0]
		for _, ac := range []access{
			{"list", "deployments.apps", theirs, ""},
			{"patch", "deployments.apps", theirs, "web"},
			{"get", "namespaces", theirs, theirs},
			{"get", "configmaps", relNS, tc.other.stateConfig},
			{"update", "configmaps", relNS, tc.other.stateConfig},
			{"create", "configmaps", relNS, ""},
		} {
			if canI(t, tc.r.sa, ac) {
				t.Errorf("%s's ServiceAccount may %s", tc.r.name, ac)
			}
		}
	}

	out, err := helm(t, "install", "team-c", chartDir(), "-n", relNS, "--set", "registry.host=http://"+reg.Host,
		"--set", "namespaces={rb-tb-web}", "--set", "config.stateConfigMap="+a.stateConfig)
	if err == nil {
		_, _ = helm(t, "uninstall", "team-c", "-n", relNS)
		t.Fatal("a third release installed with team-a's state ConfigMap")
	}
	if !strings.Contains(out, "config.stateConfigMap: ConfigMap "+a.stateConfig+" in namespace "+relNS+" holds the state of release team-a") {
		t.Errorf("the refusal does not say whose state it is:\n%s", out)
	}
}

// With pull-secret auth, a namespace's credentials serve its own workloads
// only. Three namespaces run one private image: alpha with a pull secret
// that works, beta with its own that the registry refuses, gamma with
// none. alpha's workload restarts; beta's and gamma's lookups fail, run
// after run, and never borrow alpha's credentials or the digest they
// fetched.
func TestPullSecretCredentialsStayWithTheirNamespace(t *testing.T) {
	cs := clientset(t)
	const alicePass, bobPass = "alice-s3cret-0123", "bob-s3cret-0123"
	reg := startRegistry(t, testground.RegistryOptions{Logins: map[string]string{"alice": alicePass, "bob": bobPass}})
	const rel, relNS, alpha, beta, gamma = "rb-tenants", "rb-tenants", "rb-alpha", "rb-beta", "rb-gamma"
	t.Cleanup(func() { deleteNamespace(t, cs, relNS) })
	for _, ns := range []string{alpha, beta, gamma} {
		newNamespace(t, ns, false)
	}
	pullSecret(t, cs, alpha, "regcred", reg.Host, "alice", alicePass)
	pullSecret(t, cs, beta, "regcred", reg.Host, "bob", "not-"+bobPass)
	push(t, reg, "team/app:latest", "v1")
	image := reg.Host + "/team/app:latest"
	for _, ns := range []string{alpha, beta, gamma} {
		createWorkload(t, cs, "Deployment", ns, "app", image, 0, "regcred")
	}
	r := install(t, rel, relNS, "namespaces: ["+alpha+", "+beta+", "+gamma+"]\npullSecretAuth: true\nworkloadKinds: [Deployment]\n",
		"registry.host=http://"+reg.Host)

	if code, _ := r.run(); code != 1 {
		t.Fatalf("baseline: exit %d, want 1 (beta's and gamma's lookups fail)", code)
	}
	push(t, reg, "team/app:latest", "v2")
	reg.ResetRequests()
	for run := range 2 {
		code, logs := r.run()
		if code != 1 {
			t.Errorf("run %d: exit %d, want 1", run, code)
		}
		var got []string
		for _, ns := range []string{alpha, beta, gamma} {
			if restartedAt(t, cs, "Deployment", ns, "app") != "" {
				got = append(got, ns)
			}
		}
		if diff := cmp.Diff([]string{alpha}, got); diff != "" {
			t.Errorf("run %d: namespaces whose app restarted (-want +got):\n%s", run, diff)
		}
		// The report has a failure per failed lookup (the image and the
		// error); the Warning Events say whose workloads they were.
		if n := len(r.lastRun().Failures); n != 2 {
			t.Errorf("run %d: %d failures in the report, want 2 (beta's and gamma's lookups)", run, n)
		}
		var warned []string
		for _, ns := range []string{alpha, beta, gamma} {
			if eventsOn(t, cs, ns, "app", kube.ReasonLookupFailed) > 0 {
				warned = append(warned, ns)
			}
		}
		if diff := cmp.Diff([]string{beta, gamma}, warned); diff != "" {
			t.Errorf("run %d: namespaces whose app has a %s Event (-want +got):\n%s", run, kube.ReasonLookupFailed, diff)
		}
		report := r.stateConfigMap().Data[state.ReportKey]
		for _, secret := range []string{alicePass, bobPass} {
			if strings.Contains(logs, secret) || strings.Contains(report, secret) {
				t.Errorf("run %d: a pull secret's password reached the log or the stored report", run)
			}
		}
	}
	// Each login was tried only with its own namespace's lookup: bob's
	// (refused) was never replaced by alice's for beta, and gamma sent none.
	if diff := cmp.Diff(map[string][]string{"alice": {"team/app"}, "bob": {"team/app"}}, reg.Users()); diff != "" {
		t.Errorf("registry logins (-want +got):\n%s", diff)
	}
}
