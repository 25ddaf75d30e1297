// Command urunner restarts Kubernetes workloads when the digest behind an
// image tag changes. One invocation is one run; a CronJob schedules it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urunner/urunner/exit"
	"github.com/urunner/urunner/logging"
	"github.com/urunner/urunner/webhook"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr, hooks{})
	stop()
	os.Exit(code)
}

// Main runs urunner with args and the process environment and returns the
// exit code: flags, configuration, wiring, one run, its report.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, h hooks) int {
	if len(args) > 0 && args[0] == "webhook" {
		// The push receiver: a long-running server that starts this same
		// program's Job sooner (see webhook/).
		return webhook.Main(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("urunner", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	dryRun := fs.Bool("dry-run", false, "report what would restart; change nothing (same as URUNNER_CONF_DRY_RUN=true)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (for benchmarks)")
	memProfile := fs.String("memprofile", "", "write a heap profile at the end of the run to this file (for benchmarks)")
	fs.Usage = func() { printUsage(stdout) }
	if code, done := exit.Flags(fs, args); done {
		return code
	}
	if *showVersion {
		fmt.Fprintln(stdout, "urunner", version)
		return exit.OK
	}
	if code, done := exit.StrayArgument(stderr, "urunner", fs); done {
		return code
	}
	load := loadConfig
	if h.loadConfig != nil {
		load = h.loadConfig // a test's own settings (see hooks)
	}
	cfg, err := load()
	if err != nil {
		return exit.BadConfig(stderr, "urunner", err)
	}
	cfg.DryRun = cfg.DryRun || *dryRun
	log := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	cfg.warnDeprecated(log)
	a, err := wire(cfg, log, stdout, h)
	if err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			return exit.BadConfig(stderr, "urunner", err)
		}
		log.Error("cannot start", "error", err)
		return exit.Failed
	}
	stopProfiles, err := startProfiles(*cpuProfile, *memProfile)
	if err != nil {
		fmt.Fprintf(stderr, "urunner: %v\n", err)
		return exit.Config
	}
	defer stopProfiles(log)
	ctx, cancel := context.WithTimeout(ctx, cfg.RunTimeout)
	defer cancel()
	o, err := a.run(ctx)
	return a.report(ctx, o, err)
}
