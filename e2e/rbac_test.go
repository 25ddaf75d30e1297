package e2e

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The rights the chart grants, for each mode and feature, are exactly
// these lists: a rule added to the chart without its line here fails, as
// does a rule the chart lost. Each line is there because the binary makes
// that request (README "Security").
func TestChartGrantsExactlyTheRightsEachModeNeeds(t *testing.T) {
	const ns = "urunner"
	state := func(name string) []right { return grantNamed(ns, "configmaps", name, "get", "update") }
	workloads := func(where string, kinds ...string) []right {
		var out []right
		for _, k := range kinds {
			out = append(out, grant(where, k+".apps", "list", "get", "patch")...)
		}
		return out
	}
	for _, tc := range []struct {
		name, release, values string
		want                  map[string][]right
	}{
		{
			name: "defaults: cluster mode, events on", release: "urunner",
			values: ``,
			want: map[string][]right{"urunner/urunner": rightsOf(
				grant(anywhere, "namespaces", "list"),
				workloads(anywhere, "deployments", "statefulsets", "daemonsets"),
				grant(anywhere, "events", "create"),
				state("urunner-state"),
			)},
		},
		{
			name: "cluster mode, every feature off", release: "urunner",
			values: "workloadKinds: [Deployment]\nevents: false\n",
			want: map[string][]right{"urunner/urunner": rightsOf(
				grant(anywhere, "namespaces", "list"),
				workloads(anywhere, "deployments"),
				state("urunner-state"),
			)},
		},
		{
			name: "cluster mode, running pods and pull secrets by any name", release: "urunner",
			values: "runningPods: true\npullSecretAuth: true\n",
			want: map[string][]right{"urunner/urunner": rightsOf(
				grant(anywhere, "namespaces", "list"),
				workloads(anywhere, "deployments", "statefulsets", "daemonsets"),
				grant(anywhere, "pods", "list"),
				grant(anywhere, "events", "create"),
				grant(anywhere, "secrets", "get"),
				grant(anywhere, "serviceaccounts", "get"),
				state("urunner-state"),
			)},
		},
		{
			name: "cluster mode, pull secrets by name", release: "urunner",
			values: "pullSecretAuth: true\npullSecretNames: [regcred, ghcr-pull]\nevents: false\n",
			want: map[string][]right{"urunner/urunner": rightsOf(
				grant(anywhere, "namespaces", "list"),
				workloads(anywhere, "deployments", "statefulsets", "daemonsets"),
				grantNamed(anywhere, "secrets", "regcred", "get"),
				grantNamed(anywhere, "secrets", "ghcr-pull", "get"),
				grant(anywhere, "serviceaccounts", "get"),
				state("urunner-state"),
			)},
		},
		{
			name: "cluster mode, Argo Rollouts beside Deployments", release: "urunner",
			values: "workloadKinds: [Deployment, Rollout]\n",
			want: map[string][]right{"urunner/urunner": rightsOf(
				grant(anywhere, "namespaces", "list"),
				workloads(anywhere, "deployments"),
				grant(anywhere, "rollouts.argoproj.io", "list", "get", "patch"),
				grant(anywhere, "events", "create"),
				state("urunner-state"),
			)},
		},
		{
			name: "namespaced mode, Argo Rollouts alone", release: "urunner",
			values: "namespaces: [shop]\nworkloadKinds: [Rollout]\nevents: false\n",
			want: map[string][]right{"urunner/urunner": rightsOf(
				grantNamed("shop", "namespaces", "shop", "get"),
				grant("shop", "rollouts.argoproj.io", "list", "get", "patch"),
				// The Deployments Rollouts take their templates from.
				grant("shop", "deployments.apps", "get", "patch"),
				state("urunner-state"),
			)},
		},
		{
			name: "namespaced mode, every feature off", release: "team-a",
			values: "namespaces: [shop, payments]\nworkloadKinds: [Deployment]\nevents: false\n",
			want: map[string][]right{"urunner/team-a-urunner": rightsOf(
				grantNamed("shop", "namespaces", "shop", "get"),
				workloads("shop", "deployments"),
				grantNamed("payments", "namespaces", "payments", "get"),
				workloads("payments", "deployments"),
				state("team-a-urunner-state"),
			)},
		},
		{
			name: "namespaced mode, every feature on", release: "team-a",
			values: "namespaces: [shop]\nrunningPods: true\npullSecretAuth: true\npullSecretNames: [regcred]\n",
			want: map[string][]right{"urunner/team-a-urunner": rightsOf(
				grantNamed("shop", "namespaces", "shop", "get"),
				workloads("shop", "deployments", "statefulsets", "daemonsets"),
				grant("shop", "pods", "list"),
				grant("shop", "events", "create"),
				grantNamed("shop", "secrets", "regcred", "get"),
				grant("shop", "serviceaccounts", "get"),
				state("team-a-urunner-state"),
			)},
		},
		{
			name: "namespaced mode, watching the release namespace too", release: "urunner",
			values: "namespaces: [urunner]\nworkloadKinds: [StatefulSet]\nconfig:\n  stateConfigMap: memory\n",
			want: map[string][]right{"urunner/urunner": rightsOf(
				grantNamed("urunner", "namespaces", "urunner", "get"),
				workloads("urunner", "statefulsets"),
				grant("urunner", "events", "create"),
				state("memory"),
			)},
		},
		{
			name: "the push receiver keeps its own rights", release: "urunner",
			values: "namespaces: [shop]\nwebhook:\n  enabled: true\n  secrets:\n    genericKey: generic-key-0123456789\n",
			want: map[string][]right{
				"urunner/urunner": rightsOf(
					grantNamed("shop", "namespaces", "shop", "get"),
					workloads("shop", "deployments", "statefulsets", "daemonsets"),
					grant("shop", "events", "create"),
					state("urunner-state"),
				),
				"urunner/urunner-webhook": rightsOf(
					grantNamed(ns, "cronjobs.batch", "urunner", "get"),
					grantNamed(ns, "cronjobs/status.batch", "urunner", "update"),
					grant(ns, "jobs.batch", "create", "list", "watch"),
				),
			},
		},
		{
			name: "rbac.create=false grants nothing", release: "urunner",
			values: "namespaces: [shop]\nrbac:\n  create: false\n",
			want:   map[string][]right{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, "template", tc.release, chartDir(), "-n", ns, "-f", valuesFile(t, tc.values), "--set", "registry.host=registry.example.com")
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			if diff := cmp.Diff(tc.want, renderedRights(t, out)); diff != "" {
				t.Errorf("rights granted (-want +got):\n%s", diff)
			}
		})
	}
}
