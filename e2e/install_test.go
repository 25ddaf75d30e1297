package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/kubernetes"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
)

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
			out = append(out, grant(where, kindResource[k], "list", "get", "patch")...)
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
		{
			name: "namespaced mode, Argo Rollouts", release: "rb-argo", relNS: "rb-argo",
			values:     "namespaces: [rb-argo-app]\nworkloadKinds: [Deployment, Rollout]\n",
			namespaced: true, watched: []string{"rb-argo-app"}, kinds: []string{"Deployment", "Rollout"}, events: true,
			want: rightsOf(
				grantNamed("rb-argo-app", "namespaces", "rb-argo-app", "get"),
				wl("rb-argo-app", "Deployment", "Rollout"),
				grant("rb-argo-app", "events", "create"),
				grantNamed("rb-argo", "configmaps", "rb-argo-urunner-state", "get", "update"),
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
	cs := clientset(t)
	opts := testground.RegistryOptions{}
	const user, password = "puller", "pull-s3cret-0123"
	if p.pullSecrets {
		opts.Logins = map[string]string{user: password}
	}
	reg := startRegistry(t, opts)
	if slices.Contains(p.kinds, "Rollout") {
		installRolloutCRD(t)
	}

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
		push(t, reg, ns+"/app:latest", "v1")
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
		moved[ns] = push(t, reg, ns+"/app:latest", "v2")
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
	for k, resource := range kindResource {
		if !slices.Contains(p.kinds, k) {
			out = append(out, access{"patch", resource, w, ""})
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
