// Package e2e tests what users install and run: the Helm chart on the real
// API server, the urunner binary as built for the image, and the least
// privilege of its ServiceAccount.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/urunner/urunner/e2e/testground"
)

var (
	cluster *testground.Cluster
	// urunnerBin is urunner built exactly as the image's build stage builds it.
	urunnerBin string
	helmBin    string
	root       string // the module root
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	root, err = filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	helmBin = filepath.Join(root, ".cache", "bin", "helm")
	if _, err := os.Stat(helmBin); err != nil {
		fmt.Fprintln(os.Stderr, "helm is missing: run hack/tools.sh helm (make test does)")
		return 1
	}
	out, err := exec.Command("make", "-C", root, "build").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "make build: %v\n%s", err, out)
		return 1
	}
	urunnerBin = filepath.Join(root, "bin", "urunner")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := testground.StartCluster(ctx, testground.ClusterOptions{Log: os.Stderr, AuditServiceAccounts: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the test ground:", err)
		return 1
	}
	cluster = c
	defer func() { _ = c.Stop() }()
	return m.Run()
}
