package run

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/urunner/urunner/e2e/testground"
)

// cluster is the real control plane every test of this package runs
// against: one per package, started here, stopped when the tests end.
var cluster *testground.Cluster

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	c, err := testground.StartCluster(ctx, testground.ClusterOptions{Log: os.Stderr})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the test ground:", err)
		os.Exit(1)
	}
	cluster = c
	// Every run of every test reads this one kubeconfig; the rest of a
	// test's settings are its own (ground.setenv).
	if err := os.Setenv("KUBECONFIG", c.KubeconfigPath); err != nil {
		fmt.Fprintln(os.Stderr, "KUBECONFIG:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop the test ground:", err)
	}
	os.Exit(code)
}
