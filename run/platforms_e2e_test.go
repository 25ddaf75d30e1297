package run

import (
	"strings"
	"testing"

	"github.com/urunner/urunner/e2e/testground"
)

// Upstream adding or rebuilding a platform nobody runs must not roll the
// fleet: with URUNNER_CONF_PLATFORMS, a moved index restarts only when a
// watched platform's manifest moved, for one GET of the index. Platforms
// match as containerd matches them: linux/arm64/v8 is the index's
// linux/arm64.
func TestPlatformAwareRestarts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ watched, other string }{
		{"linux/amd64", "linux/arm64"},
		{"linux/arm64/v8", "linux/amd64"},
	} {
		t.Run(tc.watched, func(t *testing.T) {
			t.Parallel()
			platformAwareRestarts(t, tc.watched, tc.other)
		})
	}
}

func platformAwareRestarts(t *testing.T, watched, other string) {
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_PLATFORMS", watched)
	ctx := t.Context()
	indexed := strings.TrimSuffix(watched, "/v8")
	push := func(mine, theirs string) string {
		t.Helper()
		d, _, err := g.reg.PushIndex(ctx, "team/multi:latest", map[string]string{indexed: mine, other: theirs})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	push("a1", "b1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/multi:latest"))
	g.reg.ResetRequests()
	g.mustRun()
	if got := g.reg.Requests()["GET manifest"]; got != 1 {
		t.Errorf("baseline: %d index GETs, want 1", got)
	}

	g.reg.ResetRequests()
	g.mustRun()
	if got := g.reg.Requests()["GET manifest"]; got != 0 {
		t.Errorf("steady state: %d index GETs, want 0", got)
	}

	onlyArm := push("a1", "b2")
	g.reg.ResetRequests()
	g.mustRun()
	if g.restartedAt(ns, "web") != "" {
		t.Fatal("restarted for a platform no node runs")
	}
	if got := g.reg.Requests(); got["GET manifest"] != 1 || got["GET blob"] != 0 {
		t.Errorf("requests %v: want one index GET, no blob", got)
	}
	if got := g.believes(ns, "web", "app"); got != onlyArm {
		t.Errorf("web believed to run %s, want the new index digest recorded", got)
	}

	push("a2", "b2")
	g.mustRun()
	if g.restartedAt(ns, "web") == "" {
		t.Error("not restarted when the watched platform moved")
	}
}
