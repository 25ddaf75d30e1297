// Command testground runs urunner's test ground from the shell.
//
//	testground up -dir DIR      start etcd, kube-apiserver, kube-controller-manager and an
//	                            OCI registry; write DIR/env; run until SIGTERM or SIGINT
//	testground demo -urunner BIN
//	                            the README's demo: a whole urunner story on a fresh ground
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urunner/urunner/e2e/testground"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testground up -dir DIR | testground demo -urunner BIN")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var err error
	switch os.Args[1] {
	case "up":
		err = up(ctx, os.Args[2:])
	case "demo":
		err = demo(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (want up or demo)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testground:", err)
		os.Exit(1)
	}
}

// up runs the ground until signalled. It writes DIR/env, a file to source,
// last: its presence means the ground is ready.
func up(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	dir := fs.String("dir", ".cache/testenv", "working directory (certificates, etcd data, logs, kubeconfig)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	envFile := filepath.Join(abs, "env")
	_ = os.Remove(envFile)

	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	c, err := testground.StartCluster(startCtx, testground.ClusterOptions{Dir: filepath.Join(abs, "cluster"), Log: os.Stderr})
	if err != nil {
		return err
	}
	defer func() { _ = c.Stop() }()
	reg, err := testground.StartRegistry(testground.RegistryOptions{})
	if err != nil {
		return err
	}
	defer func() { _ = reg.Close() }()
	fmt.Fprintf(os.Stderr, "testground: registry olareg addr=http://%s (in this process, pid %d)\n", reg.Host, os.Getpid())

	env := fmt.Sprintf("export KUBECONFIG=%s\nexport URUNNER_CONF_KUBE_AUTH=kubeconfig\nexport URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH=http://%s\nexport TESTGROUND_REGISTRY=%s\n",
		c.KubeconfigPath, reg.Host, reg.Host)
	if err := os.WriteFile(envFile, []byte(env), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "testground: ready; source %s\n", envFile)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "testground: stopping")
	if err := os.Remove(envFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
