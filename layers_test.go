package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The layers stay independent: registry knows nothing of Kubernetes, state
// nothing of registries, kube nothing of either. Only main wires them.
func TestLayersDoNotImportEachOther(t *testing.T) {
	const mod = "github.com/urunner/urunner/"
	forbidden := map[string][]string{
		"registry": {mod + "kube", mod + "state", "k8s.io/"},
		"state":    {mod + "kube", mod + "registry", "github.com/regclient/"},
		"kube":     {mod + "state", mod + "registry", "github.com/regclient/"},
		"notify":   {mod + "state", mod + "registry", mod + "kube", "k8s.io/", "github.com/regclient/"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range bad {
				if strings.HasPrefix(dep, b) {
					t.Errorf("package %s depends on %s", pkg, dep)
				}
			}
		}
	}
}
