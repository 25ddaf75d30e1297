package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// krewManifest is the part of krew's Plugin manifest (index.Plugin,
// krew.googlecontainertools.github.com/v1alpha2) this test reads.
type krewManifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version   string `json:"version"`
		Platforms []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

// make plugin-dist writes archives and a manifest that krew itself (the
// pinned release, hack/tools.sh krew) installs, offline, from the archive:
// the installed kubectl-urunner is the version built.
func TestKrewInstallsThePluginFromTheManifest(t *testing.T) {
	krew := filepath.Join(root, ".cache", "bin", "krew")
	if _, err := os.Stat(krew); err != nil {
		t.Fatal("krew is missing: run hack/tools.sh krew (make test does)")
	}
	dist := t.TempDir()
	platform := runtime.GOOS + "/" + runtime.GOARCH
	const version = "v0.0.0-test"
	mk := exec.Command("make", "-C", root, "--no-print-directory", "plugin-dist",
		"PLUGIN_DIST="+dist, "VERSION="+version, "PLUGIN_PLATFORMS="+platform, "PLUGIN_URL=https://example.com/releases/"+version)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make plugin-dist: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dist, "urunner.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m krewManifest
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatalf("manifest: %v\n%s", err, raw)
	}
	archive := "kubectl-urunner_" + version + "_" + runtime.GOOS + "_" + runtime.GOARCH + ".tar.gz"
	data, err := os.ReadFile(filepath.Join(dist, archive))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if len(m.Spec.Platforms) != 1 {
		t.Fatalf("manifest has %d platforms, want 1:\n%s", len(m.Spec.Platforms), raw)
	}
	p := m.Spec.Platforms[0]
	got := []string{m.APIVersion, m.Kind, m.Metadata.Name, m.Spec.Version, p.Selector.MatchLabels["os"] + "/" + p.Selector.MatchLabels["arch"], p.URI, p.SHA256, p.Bin}
	want := []string{"krew.googlecontainertools.github.com/v1alpha2", "Plugin", "urunner", version, platform,
		"https://example.com/releases/" + version + "/" + archive, hex.EncodeToString(sum[:]), "kubectl-urunner"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("manifest (-want +got):\n%s\n%s", diff, raw)
	}

	krewRoot := t.TempDir()
	install := exec.Command(krew, "install", "--manifest="+filepath.Join(dist, "urunner.yaml"), "--archive="+filepath.Join(dist, archive))
	install.Env = []string{"KREW_ROOT=" + krewRoot, "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("krew install: %v\n%s", err, out)
	}
	// kubectl finds plugins as kubectl-NAME on PATH: krew's bin directory.
	out, err := exec.Command(filepath.Join(krewRoot, "bin", "kubectl-urunner"), "version").CombinedOutput()
	if err != nil || string(out) != "kubectl-urunner "+version+"\n" {
		t.Errorf("installed kubectl-urunner version: %v, %q", err, out)
	}

	// A version krew would refuse stops the build with a message.
	mk = exec.Command("make", "-C", root, "--no-print-directory", "plugin-dist", "PLUGIN_DIST="+t.TempDir(), "VERSION=eba4bfe-dirty", "PLUGIN_PLATFORMS="+platform)
	if out, err := mk.CombinedOutput(); err == nil || !strings.Contains(string(out), `VERSION must be a semantic version such as v1.2.3 (krew requires one), got "eba4bfe-dirty"`) {
		t.Errorf("make plugin-dist VERSION=eba4bfe-dirty: %v\n%s", err, out)
	}
}
