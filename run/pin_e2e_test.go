package run

import (
	"strings"
	"testing"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
)

// Pinning mode sets the image to tag@digest, no other container touched,
// with the restart annotations (restartedAt for cooldowns, restarted-for
// for the tag it follows); the next change re-pins.
func TestPinningModeWritesTagAtDigest(t *testing.T) {
	t.Parallel()
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_RESTART_MODE", "pin")
	g.push("team/app:latest", "v1")
	g.push("team/side:1", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:latest"), withContainer("side", g.image("team/side:1")))
	g.mustRun()
	if img := g.deployment(ns, "web").Spec.Template.Spec.Containers[0].Image; strings.Contains(img, "@") {
		t.Fatalf("the baseline pinned %s; only a change pins", img)
	}
	for _, seed := range []string{"v2", "v3"} {
		d := g.push("team/app:latest", seed)
		g.mustRun()
		dep := g.deployment(ns, "web")
		cs := dep.Spec.Template.Spec.Containers
		if cs[0].Image != g.image("team/app:latest")+"@"+d {
			t.Errorf("after %s: app image %s, want tag@%s", seed, cs[0].Image, d)
		}
		if cs[1].Image != g.image("team/side:1") {
			t.Errorf("side image changed to %s", cs[1].Image)
		}
		if dep.Spec.Template.Annotations[kube.RestartedAtAnnotation] == "" {
			t.Error("pinning did not record when it restarted (restartedAt)")
		}
	}
	// Pinned and unchanged: nothing to do.
	g.mustRun()
	if n := g.api.get("PATCH deployments"); n != 0 {
		t.Errorf("%d PATCHes with nothing changed", n)
	}
}
