// Command urunner-webhook runs the push receiver alone, as
// `urunner webhook` does, for the end-to-end tests and the benchmark to
// build and run as a process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/urunner/urunner/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := webhook.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
