package run

// Gates that fail closed where they meet the listing and the act stage
// (issue 22, items 3, 4 and 5): rings decide on this listing and hold
// while a ring they follow is not seen whole; a workload decided again
// after a conflict keeps its namespace's settings.

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
)

// healthy reports whether a Deployment's rollout is complete, as a run's
// listing judges it.
func (g *ground) healthy(ns, name string) bool {
	g.t.Helper()
	dc, err := dynamic.NewForConfig(cluster.AdminConfig())
	if err != nil {
		g.t.Fatal(err)
	}
	kw, err := kube.New(g.lean).WithDynamic(dc).Get(g.t.Context(), "Deployment", ns, name)
	if err != nil {
		g.t.Fatal(err)
	}
	return kw.Healthy
}

// waitHealth waits until a Deployment's health, as a listing sees it, is want.
func (g *ground) waitHealth(ns, name string, want bool) {
	g.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for g.healthy(ns, name) != want {
		if time.Now().After(deadline) {
			g.t.Fatalf("deployment %s/%s healthy = %v after 60s, want %v", ns, name, !want, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (g *ground) patchDeployment(ns, name, patch string) {
	g.t.Helper()
	if _, err := g.cs.AppsV1().Deployments(ns).Patch(g.t.Context(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		g.t.Fatal(err)
	}
}

func (g *ground) patchNamespace(ns, patch string) {
	g.t.Helper()
	if _, err := g.cs.CoreV1().Namespaces().Patch(g.t.Context(), ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		g.t.Fatal(err)
	}
}

// With no soak ("0: one run is enough"), ring 1 restarts in the same run
// whose listing sees ring 0 healthy on the digest, not one run later.
func TestRing1FollowsInTheRunThatSeesRing0Healthy(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/app:latest", "v1")
	canaryNS, ns := g.namespace(true), g.namespace(true)
	g.deploy(canaryNS, "canary", g.image("team/app:latest"), ringed(0), replicas(0))
	g.deploy(ns, "main", g.image("team/app:latest"), ringed(1), replicas(0))
	g.waitHealth(canaryNS, "canary", true)
	g.mustRun()
	g.push("team/app:latest", "v2")
	o := g.mustRun()
	if g.restartedAt(canaryNS, "canary") == "" || g.restartedAt(ns, "main") != "" {
		t.Fatalf("run 1: only ring 0 should restart:\n%s", o.logs)
	}
	if !strings.Contains(o.logs, "ring 1: waits for ring 0 to run") {
		t.Errorf("no line says ring 1 waits for ring 0:\n%s", o.logs)
	}
	g.waitHealth(canaryNS, "canary", true)
	o = g.mustRun()
	if g.restartedAt(ns, "main") == "" {
		t.Fatalf("run 2 saw ring 0 healthy on the digest and still held ring 1:\n%s", o.logs)
	}
}

// A run whose listing shows ring 0 unhealthy holds ring 1, even when the
// state says ring 0 ran the digest healthily.
func TestAListingThatShowsRing0UnhealthyHoldsRing1(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/app:latest", "v1")
	canaryNS, ns := g.namespace(true), g.namespace(true)
	g.deploy(canaryNS, "canary", g.image("team/app:latest"), ringed(0), replicas(0))
	g.deploy(ns, "main", g.image("team/app:latest"), ringed(1), replicas(0), pausedDeployment)
	g.mustRun()
	g.push("team/app:latest", "v2")
	g.mustRun()
	g.waitHealth(canaryNS, "canary", true)
	g.mustRun() // main is paused: held, while the state records ring 0 healthy
	if _, ok := g.stored().Refs[g.reg.Host+"/team/app:latest"].Rings[0]; !ok {
		t.Fatalf("the state does not record ring 0 healthy: %+v", g.stored().Refs[g.reg.Host+"/team/app:latest"])
	}
	// Ring 0 grows a replica no node runs: its rollout is not complete.
	g.patchDeployment(canaryNS, "canary", `{"spec":{"replicas":1}}`)
	g.waitHealth(canaryNS, "canary", false)
	g.patchDeployment(ns, "main", `{"spec":{"paused":false}}`)
	o := g.mustRun()
	if g.restartedAt(ns, "main") != "" {
		t.Fatalf("ring 1 restarted while this listing shows ring 0 unhealthy:\n%s", o.logs)
	}
	if want := "(deployment/canary -n " + canaryNS + ": rollout not complete)"; !strings.Contains(o.logs, want) {
		t.Errorf("no line says %q:\n%s", want, o.logs)
	}
}

// A ring urunner has seen follow a reference holds the rings after it
// while it is missing from a listing, whatever the cause, and says why.
func TestAKnownRingMissingFromTheListingHoldsTheRingsAfterIt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		namespaced bool
		vanish     func(g *ground, canaryNS string)
		want       string
	}{
		{"ring 0's namespace labelled urunner=disable", false, func(g *ground, canaryNS string) {
			g.patchNamespace(canaryNS, `{"metadata":{"labels":{"urunner":"disable"}}}`)
		}, "is missing from this listing"},
		{"ring 0's namespace loses urunner=enable", false, func(g *ground, canaryNS string) {
			g.patchNamespace(canaryNS, `{"metadata":{"labels":{"urunner":null}}}`)
		}, "is missing from this listing"},
		{"ring 0's workloads deleted", false, func(g *ground, canaryNS string) {
			if err := g.cs.AppsV1().Deployments(canaryNS).Delete(g.t.Context(), "canary", metav1.DeleteOptions{}); err != nil {
				g.t.Fatal(err)
			}
		}, "is missing from this listing"},
		{"ring 0's namespace cannot be listed (namespaced mode, its Role removed)", true, func(g *ground, canaryNS string) {
			g.api.setFault(func(r *http.Request) *http.Response {
				if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/namespaces/"+canaryNS+"/") && r.URL.Query().Get("limit") != "" {
					return apiStatus(r, http.StatusForbidden, "Forbidden")
				}
				return nil
			})
			g.t.Cleanup(func() { g.api.setFault(nil) })
		}, "is not fully listed: namespace " + "%s failed to list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGround(t, testground.RegistryOptions{})
			ref := g.image("team/app:latest")
			g.push("team/app:latest", "v1")
			canaryNS, ns := g.namespace(!tc.namespaced), g.namespace(!tc.namespaced)
			if tc.namespaced {
				g.setenv("URUNNER_CONF_NAMESPACES", canaryNS+","+ns)
			}
			g.deploy(canaryNS, "canary", ref, ringed(0), replicas(0))
			g.deploy(ns, "main", ref, ringed(1), replicas(0))
			g.mustRun()
			tc.vanish(g, canaryNS)
			g.push("team/app:latest", "v2")
			o := g.run()
			if g.restartedAt(ns, "main") != "" {
				t.Fatalf("ring 1 restarted while ring 0 is not seen:\n%s", o.logs)
			}
			want := fmt.Sprintf("ring 1: waits — ring 0 of %s (namespace %s) ", ref, canaryNS) + strings.ReplaceAll(tc.want, "%s", canaryNS)
			if !strings.Contains(o.logs, want) {
				t.Errorf("no line says %q:\n%s", want, o.logs)
			}
			if got := g.stored().Refs[ref].RingMembers[0]; len(got) != 1 || got[0] != canaryNS {
				t.Errorf("ring 0 remembered in %v, want [%s]", got, canaryNS)
			}
		})
	}
}

// After a 409 the workload is decided again in the run's scope: its
// namespace's approval and soak count as they did at the listing.
func TestAConflictDecidesAgainWithTheNamespacesSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		env        map[string]string
		annotation func(moved string) string
	}{
		{"an approval on the namespace", map[string]string{"URUNNER_CONF_APPROVAL": "approve"},
			func(moved string) string { return fmt.Sprintf("%s=%s", policy.ApproveAnnotation, moved) }},
		{"a soak of 0s on the namespace, 1h in the settings", map[string]string{"URUNNER_CONF_SOAK": "1h"},
			func(string) string { return policy.SoakAnnotation + "=0s" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGround(t, testground.RegistryOptions{})
			for k, v := range tc.env {
				g.setenv(k, v)
			}
			g.push("team/app:latest", "v1")
			ns := g.namespace(true)
			g.deploy(ns, "web", g.image("team/app:latest"))
			g.settled("Deployment", ns, "web") // the PATCHes are counted
			g.mustRun()
			moved := g.push("team/app:latest", "v2")
			k, v, _ := strings.Cut(tc.annotation(moved), "=")
			g.patchNamespace(ns, fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, k, v))
			// Someone edits web between urunner's listing and its patch.
			var once sync.Once
			g.api.setFault(func(r *http.Request) *http.Response {
				if r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/namespaces/"+ns+"/deployments/web") {
					once.Do(func() { g.patchDeployment(ns, "web", `{"metadata":{"labels":{"edited":"meanwhile"}}}`) })
				}
				return nil
			})
			t.Cleanup(func() { g.api.setFault(nil) })
			o := g.mustRun()
			if got := g.api.get("PATCH deployments"); got != 2 {
				t.Errorf("%d PATCHes of deployments, want 2 (a conflict, then the restart)", got)
			}
			if g.restartedAt(ns, "web") == "" {
				t.Errorf("not restarted once decided again after the conflict:\n%s", o.logs)
			}
			if g.deployment(ns, "web").Labels["edited"] != "meanwhile" {
				t.Error("the edit made meanwhile was undone")
			}
		})
	}
}
