package main

import (
	"testing"

	"github.com/urunner/urunner/e2e/testground"
)

// Upstream adding or rebuilding a platform nobody runs must not roll the
// fleet: with URUNNER_CONF_PLATFORMS, a moved index restarts only when a
// watched platform's manifest moved, for one GET of the index.
func TestPlatformAwareRestarts(t *testing.T) {
	g := newGround(t, testground.RegistryOptions{})
	t.Setenv("URUNNER_CONF_PLATFORMS", "linux/amd64")
	ctx := t.Context()
	push := func(amd, arm string) string {
		t.Helper()
		d, _, err := g.reg.PushIndex(ctx, "team/multi:latest", map[string]string{"linux/amd64": amd, "linux/arm64": arm})
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
