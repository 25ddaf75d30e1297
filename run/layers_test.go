package run

import (
	"os/exec"
	"strings"
	"testing"
)

// The layers stay independent: registry knows nothing of Kubernetes, state
// nothing of registries or Kubernetes, kube nothing of either, and policy,
// the decision, nothing of any client. Only the run wires them.
func TestLayersDoNotImportEachOther(t *testing.T) {
	const mod = "github.com/urunner/urunner/"
	forbidden := map[string][]string{
		"registry": {mod + "kube", mod + "state", mod + "policy", "k8s.io/"},
		"state":    {mod + "kube", mod + "registry", mod + "policy", "github.com/regclient/", "k8s.io/", "net/http"},
		"kube":     {mod + "state", mod + "registry", mod + "policy", "github.com/regclient/"},
		"notify":   {mod + "state", mod + "registry", mod + "kube", mod + "policy", "k8s.io/", "github.com/regclient/"},
		// The decision is pure: it can be read, and tested, without a
		// cluster, a registry or a network.
		"policy": {mod + "kube", mod + "registry", "k8s.io/", "github.com/regclient/", "net/http"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
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

// Package main is wiring only: the process's arguments, streams, signals
// and exit code, handed to the run or to the receiver.
func TestMainOnlyWiresTheEntryPoints(t *testing.T) {
	const mod = "github.com/urunner/urunner"
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, mod).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", mod, err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if strings.Contains(imp, ".") && imp != mod+"/run" && imp != mod+"/webhook" && imp != mod+"/memlimit" {
			t.Errorf("package main imports %s: only run, webhook and memlimit are its to call", imp)
		}
	}
}

// The urunner binary links the API groups it uses and no other: client-go's
// Clientset (k8s.io/client-go/kubernetes, its typed clients and scheme, its
// informers) registers every group at init and links all of k8s.io/api,
// 33 MiB of binary and 16 MiB of every run's resident memory
// (BENCHMARKS.md, "Memory: the floor"). kube/apiclient is the way in.
func TestTheBinaryLinksOnlyTheGroupsItUses(t *testing.T) {
	deps := func(pkgs ...string) []string {
		t.Helper()
		out, err := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", strings.Join(pkgs, " "), err)
		}
		return strings.Fields(string(out))
	}
	// The groups urunner uses, and what their types import themselves.
	allowed := map[string]bool{}
	for _, p := range deps("k8s.io/api/core/v1", "k8s.io/api/apps/v1", "k8s.io/api/batch/v1") {
		allowed[p] = true
	}
	for _, dep := range deps("github.com/urunner/urunner") {
		switch {
		case strings.HasPrefix(dep, "k8s.io/client-go/kubernetes"), strings.HasPrefix(dep, "k8s.io/client-go/informers"):
			t.Errorf("the binary links %s: use kube/apiclient", dep)
		case strings.HasPrefix(dep, "k8s.io/api/") && !allowed[dep]:
			t.Errorf("the binary links the API group %s, which urunner does not use", dep)
		}
	}
}
