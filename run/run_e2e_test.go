package run

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/state"
	"github.com/urunner/urunner/state/configmaps"
)

// End-to-end behaviour of one run, on the real API server (with its
// controller manager) and a real OCI registry.

func TestFirstRunIsABaseline(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	d := g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))

	o := g.mustRun()

	if got := g.restartedAt(ns, "web"); got != "" {
		t.Errorf("first run restarted web (restartedAt %q); it must only record", got)
	}
	if got := g.seen(g.image("team/app:latest")); got != d {
		t.Errorf("remembered digest %s, want %s", got, d)
	}
	if got := g.believes(ns, "web", "app"); got != d {
		t.Errorf("web believed to run %s, want %s", got, d)
	}
	if !strings.Contains(o.logs, "run finished") || !strings.Contains(o.logs, "baselined=1") {
		t.Errorf("no summary line with baselined=1 in logs:\n%s", o.logs)
	}
}

func TestMovedTagRestartsOnceAndRollsOut(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	old := g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.waitReplicaSets(ns, "web", 1)
	g.settled("Deployment", ns, "web") // the PATCHes are counted
	g.mustRun()

	moved := g.push("team/app:latest", "v2")
	o := g.mustRun()

	d := g.deployment(ns, "web")
	if d.Spec.Template.Annotations[kube.RestartedAtAnnotation] == "" {
		t.Fatalf("web was not restarted; pod template annotations: %v", d.Spec.Template.Annotations)
	}
	var rf map[string]string
	if err := json.Unmarshal([]byte(d.Spec.Template.Annotations[kube.RestartedForAnnotation]), &rf); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"app": g.image("team/app:latest") + "@" + moved}, rf); diff != "" {
		t.Errorf("%s (-want +got):\n%s", kube.RestartedForAnnotation, diff)
	}
	g.waitReplicaSets(ns, "web", 2)
	if got := g.api.get("PATCH deployments"); got != 1 {
		t.Errorf("PATCH deployments = %d, want 1", got)
	}
	for _, want := range []string{"restarted", "namespace=" + ns, "deployment=web", "container=app", "from=" + old, "to=" + moved} {
		if !strings.Contains(o.logs, want) {
			t.Errorf("restart log line lacks %q:\n%s", want, o.logs)
		}
	}
	if got := g.believes(ns, "web", "app"); got != moved {
		t.Errorf("web believed to run %s, want %s", got, moved)
	}

	// Run twice in a row: the second run has nothing to do.
	rv := g.deployment(ns, "web").ResourceVersion
	g.mustRun()
	if got := g.api.get("PATCH deployments"); got != 0 {
		t.Errorf("second run sent %d PATCHes, want 0", got)
	}
	if got := g.deployment(ns, "web").Generation; got != d.Generation {
		t.Errorf("second run changed the Deployment (generation %d → %d, rv %s)", d.Generation, got, rv)
	}
}

func TestWhatIsNotWatchedIsNeverLookedUp(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	d1 := g.push("team/app:latest", "v1")
	g.push("team/optout:latest", "v1")
	g.push("team/hidden:latest", "v1")
	enabled := g.namespace(true)
	disabled := g.namespace(false)
	g.deploy(enabled, "pinned", g.image("team/app@"+d1))
	g.deploy(enabled, "pinned-tag", g.image("team/app:latest@"+d1))
	g.deploy(enabled, "foreign", "registry.invalid:5000/team/app:latest")
	g.deploy(enabled, "hub", "nginx")
	g.deploy(enabled, "opted-out", g.image("team/optout:latest"), optOut)
	g.deploy(disabled, "hidden", g.image("team/hidden:latest"))

	g.reg.ResetRequests()
	g.mustRun()
	g.push("team/optout:latest", "v2")
	g.push("team/hidden:latest", "v2")
	g.mustRun()

	if got := g.reg.Requests(); len(got) != 0 {
		t.Errorf("registry requests = %v, want none", got)
	}
	for _, w := range []struct{ ns, name string }{{enabled, "opted-out"}, {disabled, "hidden"}, {enabled, "pinned"}} {
		if got := g.restartedAt(w.ns, w.name); got != "" {
			t.Errorf("%s/%s restarted; it is not watched", w.ns, w.name)
		}
	}
	if got := g.stored(); len(got.Refs) != 0 {
		t.Errorf("stored state = %v, want nothing tracked", got)
	}
}

func TestOneHeadPerUniqueImage(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/app:latest", "v1")
	g.push("team/side:1", "v1")
	ns := g.namespace(true)
	for _, name := range []string{"a", "b", "c", "d"} {
		// Two spellings of the same reference must share one lookup.
		g.deploy(ns, name, g.image("team/app"), withContainer("side", g.image("team/side:1")), withInit("init", g.image("team/app:latest")))
	}
	g.reg.ResetRequests()
	g.mustRun()
	if got := g.heads(); got != 2 {
		t.Errorf("HEAD manifest requests = %d, want 2 (one per unique image); all: %v", got, g.reg.Requests())
	}
	if got := g.reg.Requests()["GET manifest"]; got != 0 {
		t.Errorf("GET manifest requests = %d, want 0", got)
	}
}

func TestInitContainerChangeRestarts(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/app:1", "v1")
	g.push("team/migrate:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:1"), withInit("migrate", g.image("team/migrate:latest")))
	g.mustRun()
	g.push("team/migrate:latest", "v2")
	g.mustRun()
	if g.restartedAt(ns, "web") == "" {
		t.Error("a moved init container image did not restart the workload")
	}
}

func TestTwoChangedContainersMakeOnePatch(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/app:latest", "v1")
	g.push("team/side:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"), withContainer("side", g.image("team/side:latest")))
	g.settled("Deployment", ns, "web") // the PATCHes are counted
	g.mustRun()
	a := g.push("team/app:latest", "v2")
	s := g.push("team/side:latest", "v2")
	g.mustRun()
	if got := g.api.get("PATCH deployments"); got != 1 {
		t.Errorf("PATCH deployments = %d, want 1", got)
	}
	var rf map[string]string
	if err := json.Unmarshal([]byte(g.deployment(ns, "web").Spec.Template.Annotations[kube.RestartedForAnnotation]), &rf); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"app": g.image("team/app:latest") + "@" + a, "side": g.image("team/side:latest") + "@" + s}, rf); diff != "" {
		t.Errorf("restarted-for (-want +got):\n%s", diff)
	}
}

func TestMultiPlatformIndexChangeRestarts(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	ctx := t.Context()
	idx1, _, err := g.reg.PushIndex(ctx, "team/multi:latest", map[string]string{"linux/amd64": "a1", "linux/arm64": "b1"})
	if err != nil {
		t.Fatal(err)
	}
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/multi:latest"))
	g.mustRun()
	if got := g.seen(g.image("team/multi:latest")); got != idx1 {
		t.Fatalf("remembered digest %s, want the index digest %s", got, idx1)
	}
	// Only arm64 is rebuilt: the index digest moves, so the workload rolls.
	if _, _, err := g.reg.PushIndex(ctx, "team/multi:latest", map[string]string{"linux/amd64": "a1", "linux/arm64": "b2"}); err != nil {
		t.Fatal(err)
	}
	g.mustRun()
	if g.restartedAt(ns, "web") == "" {
		t.Error("a changed platform of an index did not restart the workload")
	}
}

func TestWorkloadAddedLaterIsABaseline(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "first", g.image("team/app:latest"))
	g.mustRun()
	g.deploy(ns, "later", g.image("team/app:latest"))
	g.mustRun()
	if g.restartedAt(ns, "later") != "" || g.restartedAt(ns, "first") != "" {
		t.Error("a workload added on an unchanged image was restarted")
	}
	if got := g.believes(ns, "later", "app"); got != g.seen(g.image("team/app:latest")) {
		t.Errorf("later believed to run %s, want the tag's digest", got)
	}
}

func TestPausedDeploymentWaitsForResume(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	old := g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"), pausedDeployment)
	g.mustRun()
	g.push("team/app:latest", "v2")
	o := g.mustRun()
	if g.restartedAt(ns, "web") != "" {
		t.Fatal("a paused Deployment was patched")
	}
	if !strings.Contains(o.logs, "paused") {
		t.Errorf("no log line says the restart waits for resume:\n%s", o.logs)
	}
	if got := g.believes(ns, "web", "app"); got != old {
		t.Errorf("paused Deployment believed to run %s; it must keep %s", got, old)
	}
	// Resume: the next run applies the change.
	if _, err := g.cs.AppsV1().Deployments(ns).Patch(t.Context(), "web", "application/merge-patch+json", []byte(`{"spec":{"paused":false}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	g.mustRun()
	if g.restartedAt(ns, "web") == "" {
		t.Error("the resumed Deployment was not restarted")
	}
}

// A failed lookup must never restart and never touch a remembered digest:
// the reference keeps its digest and is marked failing since the run.
func TestFailedLookupsKeepEveryDigest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   testground.RegistryOptions
		setup  func(g *ground)
		break_ func(g *ground)
	}{
		{
			name: "registry down",
			break_: func(g *ground) {
				_ = g.reg.Close()
			},
		},
		{
			name: "registry answers 503",
			break_: func(g *ground) {
				g.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
					w.WriteHeader(http.StatusServiceUnavailable)
					return true
				})
			},
		},
		{
			name: "HEAD without Docker-Content-Digest",
			break_: func(g *ground) {
				g.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
					w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
					w.WriteHeader(http.StatusOK)
					return true
				})
			},
		},
		{
			name: "wrong password",
			opts: testground.RegistryOptions{Logins: map[string]string{"robot": "right"}},
			setup: func(g *ground) {
				g.setenv("URUNNER_CONF_CONTAINER_REGISTRY_TYPE", "harbor")
				g.setenv("URUNNER_SECR_HARBOR_USER", "robot")
				g.setenv("URUNNER_SECR_HARBOR_PASS", "right")
			},
			break_: func(g *ground) {
				g.setenv("URUNNER_SECR_HARBOR_PASS", "wrong-s3cret")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGround(t, tc.opts)
			if tc.setup != nil {
				tc.setup(g)
			}
			g.push("team/app:latest", "v1")
			g.push("team/side:latest", "v1")
			ns := g.namespace(true)
			g.deploy(ns, "web", g.image("team/app:latest"))
			g.deploy(ns, "side", g.image("team/side:latest"))
			g.mustRun()
			before := g.stored()
			g.push("team/app:latest", "v2")

			tc.break_(g)
			o := g.run()

			if o.code != 1 {
				t.Errorf("exit code = %d, want 1 (a lookup failed)", o.code)
			}
			if g.restartedAt(ns, "web") != "" {
				t.Error("restarted although the lookup failed")
			}
			after := g.stored()
			for ref, r := range before.Refs {
				if got := after.Refs[ref]; got.Digest != r.Digest || got.Seen != r.Seen || got.Checked != r.Checked {
					t.Errorf("%s: remembered %+v after the failed lookup, want %+v", ref, got, r)
				}
				if after.Refs[ref].Failing.IsZero() || after.Refs[ref].Error == "" {
					t.Errorf("%s: not marked failing: %+v", ref, after.Refs[ref])
				}
			}
			if got := g.believes(ns, "web", "app"); got != before.Refs[g.image("team/app:latest")].Digest {
				t.Errorf("web believed to run %s after a failed lookup", got)
			}
			if !strings.Contains(o.logs, "lookup failed") {
				t.Errorf("no warning for the failed lookup:\n%s", o.logs)
			}
			if strings.Contains(o.logs, "wrong-s3cret") || strings.Contains(o.logs, "Authorization") {
				t.Errorf("a credential reached the log:\n%s", o.logs)
			}
		})
	}
}

func TestWrongPasswordFailsOncePerHost(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{Logins: map[string]string{"robot": "right"}})
	g.setenv("URUNNER_CONF_CONTAINER_REGISTRY_TYPE", "harbor")
	g.setenv("URUNNER_SECR_HARBOR_USER", "robot")
	g.setenv("URUNNER_SECR_HARBOR_PASS", "wrong")
	g.setenv("URUNNER_CONF_REGISTRY_CONCURRENCY", "1")
	ns := g.namespace(true)
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		g.push("team/"+n+":latest", "v1")
		g.deploy(ns, n, g.image("team/"+n+":latest"))
	}
	g.reg.ResetRequests()
	o := g.run()
	if o.code != 1 {
		t.Errorf("exit code = %d, want 1", o.code)
	}
	// Two images tried alone, each a challenge and one authenticated
	// attempt (one refused repository could be only that repository's), the
	// other three skipped: no retry storm against a registry that bans.
	if got := g.heads(); got > 4 {
		t.Errorf("HEAD requests with a refused password = %d, want at most 4", got)
	}
	if n := strings.Count(o.logs, "refused the credentials"); n != 1 {
		t.Errorf("%d error lines for the refused credentials, want 1:\n%s", n, o.logs)
	}
}

func TestDeletedTagKeepsOtherEntries(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.push("team/app:latest", "v1")
	keep := g.push("team/keep:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"))
	g.deploy(ns, "keep", g.image("team/keep:latest"))
	g.mustRun()
	app := g.seen(g.image("team/app:latest"))
	if err := g.reg.DeleteTag(t.Context(), "team/app:latest"); err != nil {
		t.Fatal(err)
	}
	o := g.run()
	if o.code != 1 {
		t.Errorf("exit code = %d, want 1", o.code)
	}
	if g.restartedAt(ns, "web") != "" {
		t.Error("restarted on a deleted tag")
	}
	if got := g.seen(g.image("team/app:latest")); got != app {
		t.Errorf("deleted tag's digest = %s, want %s kept", got, app)
	}
	if got := g.seen(g.image("team/keep:latest")); got != keep {
		t.Errorf("other entry = %s, want %s", got, keep)
	}
}

func TestUnparsableStateIsNeverOverwritten(t *testing.T) {
	t.Parallel()
	for name, cm := range map[string]*corev1.ConfigMap{
		"garbage":         {BinaryData: map[string][]byte{state.DataKey: []byte("not gzip")}},
		"unknown version": {BinaryData: map[string][]byte{state.DataKey: mustGzip(t, `{"version":99}`)}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := newGround(t, testground.RegistryOptions{})
			g.push("team/app:latest", "v1")
			ns := g.namespace(true)
			g.deploy(ns, "web", g.image("team/app:latest"))
			cm.Name, cm.Namespace = g.state, "default"
			created, err := g.cs.CoreV1().ConfigMaps("default").Create(t.Context(), cm, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			g.push("team/app:latest", "v2")
			o := g.run()
			if o.code != 1 {
				t.Errorf("exit code = %d, want 1", o.code)
			}
			after, err := g.cs.CoreV1().ConfigMaps("default").Get(t.Context(), g.state, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if after.ResourceVersion != created.ResourceVersion {
				t.Error("the unreadable state ConfigMap was written")
			}
			if g.restartedAt(ns, "web") != "" {
				t.Error("restarted with an unreadable state")
			}
			if !strings.Contains(o.logs, "default/"+g.state) {
				t.Errorf("the error does not name the ConfigMap:\n%s", o.logs)
			}
		})
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"flag", "env"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			g := newGround(t, testground.RegistryOptions{})
			g.push("team/app:latest", "v1")
			ns := g.namespace(true)
			g.deploy(ns, "web", g.image("team/app:latest"))

			dry := func() result {
				if how == "flag" {
					return g.mustRun("--dry-run")
				}
				g.setenv("URUNNER_CONF_DRY_RUN", "true")
				defer g.setenv("URUNNER_CONF_DRY_RUN", "false")
				return g.mustRun()
			}
			dry()
			if g.stateBytes() != nil {
				t.Fatal("a dry run created the state ConfigMap")
			}
			g.mustRun()
			before := g.stateBytes()
			g.push("team/app:latest", "v2")

			o := dry()
			if !strings.Contains(o.logs, "would restart") {
				t.Errorf("dry run does not say what would restart:\n%s", o.logs)
			}
			if g.restartedAt(ns, "web") != "" {
				t.Error("dry run restarted a workload")
			}
			if !bytes.Equal(before, g.stateBytes()) {
				t.Error("dry run wrote the state")
			}
			if n := g.api.get("PATCH deployments") + g.api.get("PUT configmaps") + g.api.get("POST configmaps"); n != 0 {
				t.Errorf("dry run sent %d writes", n)
			}
		})
	}
}

// Two writers of the state at once, on the real API server: both runs'
// references survive, each merged on its own.
func TestConcurrentStateWritersLoseNothing(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	store := state.NewStore(configmaps.New(g.lean), "default", g.state)
	ctx := t.Context()
	snapA, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snapB, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := "sha256:" + strings.Repeat("d", 64)
	now := time.Now().UTC().Truncate(time.Second)
	a := state.State{Refs: map[string]state.Ref{"r/a:1": {Digest: d, Checked: now}}}
	b := state.State{Refs: map[string]state.Ref{"r/b:1": {Digest: d, Checked: now}}}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = store.Save(ctx, snapA, a, nil, now) })
	wg.Go(func() { errs[1] = store.Save(ctx, snapB, b, nil, now) })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := remembered(g.stored()); got != 2 {
		t.Errorf("stored references = %d, want both writers' 2: %v", got, g.stored())
	}
}

func TestStateLargerThanTheConfigMapLimitIsRefused(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	ctx := t.Context()
	store := state.NewStore(configmaps.New(g.lean), "default", g.state)
	snap, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := state.State{Refs: map[string]state.Ref{"r/a:1": {Digest: "sha256:" + strings.Repeat("a", 64)}}}
	if err := store.Save(ctx, snap, first, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	before := g.stateBytes()
	store.MaxBytes = len(before) + 20
	big := state.State{Refs: map[string]state.Ref{}}
	for i := range 200 {
		big.Refs[fmt.Sprintf("r/a%d:1", i)] = state.Ref{Digest: "sha256:" + strings.Repeat("b", 64)}
	}
	err = store.Save(ctx, snap, big, nil, time.Now())
	if err == nil || !strings.Contains(err.Error(), "size limit") || !strings.Contains(err.Error(), "default/"+g.state) {
		t.Fatalf("Save = %v, want a size-limit error naming the ConfigMap", err)
	}
	if !bytes.Equal(before, g.stateBytes()) {
		t.Error("a refused save changed the stored state")
	}
}

func mustGzip(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
