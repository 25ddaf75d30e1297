package run

// Regressions of defects found where features meet (issue 13), each named
// for the behaviour it pins, on the real API server and registry. The
// registry-level ones (concurrent map write, a repository's 403 starving
// its host, a registry's CA for its token service, a provider's token on a
// redirect, platform variants) are in registry/resolver_test.go,
// registry/acr_test.go and registry/platform_test.go.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/state"
)

// pullSecret creates a dockerconfigjson Secret "regcred" in ns for the
// test's registry.
func (g *ground) pullSecret(ns, user, password string) {
	g.t.Helper()
	cfg := fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q}}}`, g.reg.Host, user, password)
	if _, err := g.cs.CoreV1().Secrets(ns).Create(g.t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "regcred"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)},
	}, metav1.CreateOptions{}); err != nil {
		g.t.Fatal(err)
	}
}

func withPullSecret(d *appsv1.Deployment) {
	d.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
}

// A wrong pull secret in one namespace, or none, never borrows another
// namespace's: lookups are made per (reference, credentials), and each
// workload sees only the digest its own credentials fetched.
func TestPullSecretCredentialsStayInTheirNamespace(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{Logins: map[string]string{"team-good": "right", "team-wrong": "right"}})
	g.setenv("URUNNER_CONF_PULL_SECRET_AUTH", "true")
	g.push("team/app:latest", "v1")
	wrong, good, none := g.namespace(true), g.namespace(true), g.namespace(true)
	g.pullSecret(wrong, "team-wrong", "not-the-password")
	g.pullSecret(good, "team-good", "right")
	for _, ns := range []string{wrong, good, none} {
		opts := []deployOpt{}
		if ns != none {
			opts = append(opts, withPullSecret)
		}
		g.deploy(ns, "web", g.image("team/app:latest"), opts...)
	}
	if o := g.run(); o.code != 1 {
		t.Errorf("exit %d, want 1 (two namespaces' lookups fail)", o.code)
	}
	moved := g.push("team/app:latest", "v2")
	g.reg.ResetRequests()
	g.run()
	if g.restartedAt(good, "web") == "" {
		t.Error("the namespace with the right secret was not restarted")
	}
	for _, ns := range []string{wrong, none} {
		if g.restartedAt(ns, "web") != "" {
			t.Errorf("%s restarted with digests fetched by another namespace's credentials", ns)
		}
		if got := g.believes(ns, "web", "app"); got == moved {
			t.Errorf("%s believed to run %s: another namespace's lookup served it", ns, got)
		}
	}
	if users := g.reg.Users(); len(users["team-good"]) != 1 || len(users) != 2 {
		t.Errorf("credentials used = %v, want team-good for its one repository and team-wrong refused", users)
	}
}

// Two spellings of one image (implied tag and latest) are one reference,
// one lookup, with the pull secret that both workloads name.
func TestTwoSpellingsOfOneImageShareOneAuthenticatedLookup(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{Logins: map[string]string{"team": "right"}})
	g.setenv("URUNNER_CONF_PULL_SECRET_AUTH", "true")
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.pullSecret(ns, "team", "right")
	g.deploy(ns, "implied", g.image("team/app"), withPullSecret)
	g.deploy(ns, "explicit", g.image("team/app:latest"), withPullSecret)
	g.mustRun()
	g.push("team/app:latest", "v2")
	g.reg.ResetRequests()
	g.mustRun()
	for _, name := range []string{"implied", "explicit"} {
		if g.restartedAt(ns, name) == "" {
			t.Errorf("%s was not restarted", name)
		}
	}
	if got := g.heads(); got != 2 {
		t.Errorf("%d HEADs, want 2 (one lookup, and its auth challenge)", got)
	}
}

// A workload changed between urunner's read and its patch is read again
// and decided again: the patch decided on the old object is never sent, so
// a person's `kubectl set image` made meanwhile stays (in pin mode, the old
// patch would have pinned the old tag over it).
func TestAnEditBetweenReadAndPatchIsNeverUndone(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"annotation", "pin"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			g := newGround(t, testground.RegistryOptions{})
			g.setenv("URUNNER_CONF_RESTART_MODE", mode)
			g.push("team/app:latest", "v1")
			g.push("team/app:next", "v1")
			ns := g.namespace(true)
			g.deploy(ns, "web", g.image("team/app:latest"))
			g.mustRun()
			g.push("team/app:latest", "v2")
			var once sync.Once
			g.api.setFault(func(r *http.Request) *http.Response {
				if r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/namespaces/"+ns+"/deployments/web") {
					once.Do(func() { g.setImage(ns, "web", "app", g.image("team/app:next")) })
				}
				return nil
			})
			t.Cleanup(func() { g.api.setFault(nil) })
			o := g.mustRun()
			if got := g.deployment(ns, "web").Spec.Template.Spec.Containers[0].Image; got != g.image("team/app:next") {
				t.Errorf("image = %s after the run, want the person's %s", got, g.image("team/app:next"))
			}
			if g.restartedAt(ns, "web") != "" {
				t.Errorf("restarted for the tag the person moved it off:\n%s", o.logs)
			}
			if !strings.Contains(o.logs, "changed since listed; decided again") {
				t.Errorf("no line says it decided again:\n%s", o.logs)
			}
		})
	}
}

func (g *ground) setImage(ns, name, container, image string) {
	g.t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":%q,"image":%q}]}}}}`, container, image)
	if _, err := g.cs.AppsV1().Deployments(ns).Patch(g.t.Context(), name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		g.t.Fatal(err)
	}
}

// A rollback in pin mode restores the image too, and keeps following the
// tag: the next move pins again.
func TestARollbackInPinModeRestoresTheImageAndKeepsFollowing(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_RESTART_MODE", "pin")
	g.setenv("URUNNER_CONF_VERIFY_ROLLOUT", "true")
	g.setenv("URUNNER_CONF_ROLLBACK", "true")
	g.setenv("URUNNER_CONF_ROLLOUT_TIMEOUT", "45s")
	first := g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"), replicas(1), progressDeadline(1))
	g.mustRun()
	g.push("team/app:latest", "v2")
	if o := g.run(); o.code != 1 || !strings.Contains(o.logs, "rolled back to what it ran before") {
		t.Fatalf("exit %d, want 1 and a rollback:\n%s", o.code, o.logs)
	}
	if got := g.deployment(ns, "web").Spec.Template.Spec.Containers[0].Image; got != g.image("team/app:latest") {
		t.Errorf("image after the rollback = %s, want the tag it ran before", got)
	}
	if got := g.believes(ns, "web", "app"); got != first {
		t.Errorf("believed to run %s after the rollback, want %s", got, first)
	}
	v3 := g.push("team/app:latest", "v3")
	g.run()
	// It pinned again (and, its pods never starting here, rolled back again).
	for _, e := range g.events(ns, string(g.deployment(ns, "web").UID)) {
		if strings.Contains(e.Message, v3) {
			return
		}
	}
	t.Errorf("no restart for the next move to %s: the workload is no longer followed", v3)
}

// The restarted-for guard means "the pods run what this container's tag
// points to now": a record for another tag does not count.
func TestARestartRecordForAnotherTagDoesNotGuard(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/app:latest", "v1")
	g.push("team/app:other", "v9")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.deploy(ns, "peer", g.image("team/app:other"))
	g.mustRun()
	moved := g.push("team/app:latest", "v2")
	g.mustRun() // web restarted for :latest@v2
	// The container is switched to :other, whose tag then moves to the very
	// digest web's record names for :latest.
	g.setImage(ns, "web", "app", g.image("team/app:other"))
	gen := g.deployment(ns, "web").Generation
	if got := g.push("team/app:other", "v2"); got != moved {
		t.Fatalf("same seed, different digest: %s, %s", got, moved)
	}
	g.mustRun()
	if g.deployment(ns, "web").Generation == gen {
		t.Error("not restarted: the record for :latest was taken for :other's")
	}
}

// A repository refused (403) by the registry does not starve its host: the
// other repositories' moves restart their workloads, run after run.
func TestARefusedRepositoryDoesNotStarveItsHostRunAfterRun(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{Logins: map[string]string{"robot": "right"}})
	g.setenv("URUNNER_CONF_CONTAINER_REGISTRY_TYPE", "harbor")
	g.setenv("URUNNER_SECR_HARBOR_USER", "robot")
	g.setenv("URUNNER_SECR_HARBOR_PASS", "right")
	ns := g.namespace(true)
	for _, n := range []string{"aaa", "bbb", "ccc"} {
		g.push("team/"+n+":latest", "v1")
		g.deploy(ns, n, g.image("team/"+n+":latest"))
	}
	g.reg.SetFault(onHead(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/team/aaa/") {
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		return false
	}))
	t.Cleanup(func() { g.reg.SetFault(nil) })
	g.run()
	for i := range 3 {
		g.push("team/bbb:latest", fmt.Sprint("b", i))
		g.push("team/ccc:latest", fmt.Sprint("c", i))
		genB, genC := g.deployment(ns, "bbb").Generation, g.deployment(ns, "ccc").Generation
		if o := g.run(); o.code != 1 {
			t.Errorf("run %d: exit %d, want 1 (aaa is refused)", i, o.code)
		}
		if g.deployment(ns, "bbb").Generation == genB || g.deployment(ns, "ccc").Generation == genC {
			t.Errorf("run %d: the host's other repositories were starved by the refused one", i)
		}
	}
}

// An OnDelete StatefulSet is patched but rolls nothing until its pods are
// deleted: the log, its Event and the report say so instead of "restarted".
func TestAnOnDeleteStatefulSetSaysItsRestartIsPending(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_REPORT", "json")
	g.push("team/db:latest", "v1")
	ns := g.namespace(true)
	sel := map[string]string{"app": "db"}
	if _, err := g.cs.AppsV1().StatefulSets(ns).Create(t.Context(), &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Selector:       &metav1.LabelSelector{MatchLabels: sel},
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: g.image("team/db:latest")}}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	g.mustRun()
	g.push("team/db:latest", "v2")
	o := g.mustRun()
	if !strings.Contains(o.logs, "OnDelete update strategy restarts nothing until its pods are deleted") {
		t.Errorf("no log line says the restart is pending:\n%s", o.logs)
	}
	var rep runReport
	if err := json.NewDecoder(strings.NewReader(o.logs[strings.Index(o.logs, `{"version":2`):])).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Restarts) != 1 || !strings.Contains(rep.Restarts[0].Pending, "OnDelete") {
		t.Errorf("report restarts = %+v, want the restart marked pending", rep.Restarts)
	}
	sts, err := g.cs.AppsV1().StatefulSets(ns).Get(t.Context(), "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range g.events(ns, string(sts.UID)) {
		found = found || e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "OnDelete")
	}
	if !found {
		t.Error("no Warning Event says the restart waits for the pods' deletion")
	}
}

// A state ConfigMap created ahead (by the chart, or an admin) keeps its
// labels, annotations and other keys when urunner writes it.
func TestTheStateConfigMapKeepsWhatOthersPutOnIt(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	if _, err := g.cs.CoreV1().ConfigMaps("default").Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: g.state, Namespace: "default",
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "Helm", "team": "platform"},
			Annotations: map[string]string{"helm.sh/resource-policy": "keep"},
		},
		Data: map[string]string{"README": "urunner's memory; see its README"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	g.mustRun()
	g.push("team/app:latest", "v2")
	g.mustRun()
	cm, err := g.cs.CoreV1().ConfigMaps("default").Get(t.Context(), g.state, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels["team"] != "platform" || cm.Labels["app.kubernetes.io/managed-by"] != "Helm" ||
		cm.Annotations["helm.sh/resource-policy"] != "keep" || cm.Data["README"] == "" || cm.Data[state.ReportKey] == "" {
		t.Errorf("labels %v, annotations %v, data keys %d: what others put on the ConfigMap was lost", cm.Labels, cm.Annotations, len(cm.Data))
	}
	if g.restartedAt(ns, "web") == "" {
		t.Error("a pre-created state ConfigMap kept urunner from working")
	}
}

// The restarted-for record of urunner before 0.3 (a digest alone) and a
// state document of that version migrate without restarting anything, and
// a workload created after that version's last run is first seen, not
// believed to run the old document's digest.
func TestAVersion2StateMigratesWithoutARestartStorm(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	d1 := g.push("team/app:latest", "v1")
	o1 := g.push("team/other:latest", "o1")
	ns := g.namespace(true)
	names := []string{"a", "b", "c", "held"}
	for _, n := range names {
		g.deploy(ns, n, g.image("team/app:latest"))
	}
	d2 := g.push("team/app:latest", "v2")
	// What urunner 0.2 left: a, b, c restarted for d2 (their records name
	// the digest alone), held still on d1.
	for _, n := range names[:3] {
		patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q,%q:"2026-11-20T10:00:00Z"}}}}}`,
			kube.RestartedForAnnotation, fmt.Sprintf(`{"app":%q}`, d2), kube.RestartedAtAnnotation)
		if _, err := g.cs.AppsV1().Deployments(ns).Patch(t.Context(), n, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// 0.2's last run started once they existed; then other moved to o2 and
	// late was created on it.
	lastRun := g.deployment(ns, "held").CreationTimestamp.UTC()
	o2 := g.push("team/other:latest", "o2")
	g.afterTheListing()
	g.deploy(ns, "late", g.image("team/other:latest"))
	img, other := g.image("team/app:latest"), g.image("team/other:latest")
	v2 := fmt.Sprintf(`{"version":2,"images":[%q,%q,%q],"workloads":{%q:{"app":1},%q:{"app":1},%q:{"app":1},%q:{"app":0},%q:{"app":2}}}`,
		img+"@"+d1, img+"@"+d2, other+"@"+o1, ns+"/Deployment/a", ns+"/Deployment/b", ns+"/Deployment/c", ns+"/Deployment/held", ns+"/Deployment/gone")
	if _, err := g.cs.CoreV1().ConfigMaps("default").Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: g.state, Namespace: "default"},
		BinaryData: map[string][]byte{state.DataKey: mustGzip(t, v2)},
		Data:       map[string]string{state.ReportKey: `{"version":1,"started":"` + lastRun.Format(time.RFC3339) + `"}`},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gens := map[string]int64{}
	for _, n := range append(names, "late") {
		gens[n] = g.deployment(ns, n).Generation
	}
	o := g.mustRun()
	if g.deployment(ns, "late").Generation != gens["late"] || g.believes(ns, "late", "app") != o2 {
		t.Errorf("late, created after 0.2's last run, restarted or not believed on %s (believed %s)", o2, g.believes(ns, "late", "app"))
	}
	for _, n := range names[:3] {
		if g.deployment(ns, n).Generation != gens[n] {
			t.Errorf("%s restarted by the migration", n)
		}
	}
	// held was on d1 when 0.2 last ran: it is still due, as 0.2 would have it.
	if g.deployment(ns, "held").Generation == gens["held"] {
		t.Error("held, still on the old digest, was not restarted")
	}
	if !strings.Contains(o.logs, "state migrated") {
		t.Errorf("no line says the state was migrated:\n%s", o.logs)
	}
	if st := g.stored(); st.Refs[img].Digest != d2 {
		t.Errorf("migrated state: %+v, want %s at %s", st.Refs, img, d2)
	}
}
