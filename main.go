// Command urunner restarts Kubernetes workloads when the digest behind an
// image tag changes. One invocation is one run; a CronJob schedules it.
// `urunner webhook` is the push receiver, a long-running server that
// starts this same program's Job sooner.
//
// This package only wires the process to the two entry points: its
// arguments, standard streams, signals, exit code and memory limit. The run is package
// run; the receiver is package webhook.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urunner/urunner/memlimit"
	"github.com/urunner/urunner/run"
	"github.com/urunner/urunner/webhook"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	// The garbage collector keeps within the container's memory limit
	// rather than doubling the heap past it (see memlimit).
	if _, err := memlimit.Set(os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "urunner:", err, "(no soft memory limit set)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := command(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command runs the program named by args and returns its exit code.
func command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "webhook" {
		return webhook.Main(ctx, args[1:], stdout, stderr)
	}
	return run.Main(ctx, args, stdout, stderr, run.Hooks{Version: version})
}
