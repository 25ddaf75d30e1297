package run

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/urunner/urunner/exit"
	"github.com/urunner/urunner/logging"
)

// Main runs urunner with args and the process environment and returns the
// exit code: flags, configuration, wiring, one run, its report.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, h Hooks) int {
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
		fmt.Fprintln(stdout, "urunner", h.version())
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
	opts, err := parseOptions(&cfg, h.lookup())
	if err != nil {
		return exit.BadConfig(stderr, "urunner", err)
	}
	a, err := wire(cfg, opts, log, stdout, h)
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
