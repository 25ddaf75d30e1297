// Command kubectl-urunner is urunner's kubectl plugin: what the last run
// did, why a workload runs what it runs, and a run or a dry run on demand,
// read from the state ConfigMap, the CronJob and its Jobs.
//
// kubectl finds it as `kubectl urunner` when kubectl-urunner is on PATH
// (krew installs it there: hack/krew/urunner.yaml).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes of the plugin's own commands. plan and run exit with the
// code of urunner's run instead (0, 1, 2: see the README's exit codes).
const (
	exitOK    = 0
	exitError = 1 // the API server refused, something is missing, a timeout
	exitUsage = 2 // bad flags or arguments
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr, hooks{})
	stop()
	os.Exit(code)
}

// hooks are what tests replace: where pod logs come from and the clock.
// The zero value is the real thing.
type hooks struct {
	logs logSource
	now  func() time.Time
}

// usageError is a mistake on the command line: exit 2 with the usage hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// exitCodeError ends the command with a run's own exit code, after the
// run's log has said what happened.
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit code %d", e.code) }

// Main runs one command and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, h hooks) int {
	o := newOptions()
	fs := o.flags()
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(stdout, fs) }
	err := parse(fs, args)
	if err == nil {
		err = o.dispatch(ctx, fs.Args(), stdout, stderr, h)
	}
	var ue *usageError
	var ec *exitCodeError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		printUsage(stdout, fs)
		return exitOK
	case errors.As(err, &ec):
		return ec.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "kubectl urunner: %v\nSee 'kubectl urunner --help'.\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "kubectl urunner: %v\n", err)
		return exitError
	}
}

// dispatch runs the command args name.
func (o *options) dispatch(ctx context.Context, args []string, stdout, stderr io.Writer, h hooks) error {
	if len(args) == 0 {
		return errHelp
	}
	cmd, rest := args[0], args[1:]
	if err := o.check(cmd, rest); err != nil {
		return err
	}
	if cmd == "version" {
		fmt.Fprintln(stdout, "kubectl-urunner", version)
		return nil
	}
	c, err := o.connect(ctx, h, stderr)
	if err != nil {
		return err
	}
	switch cmd {
	case "status":
		return c.status(ctx, stdout)
	case "plan":
		var target planTarget
		if len(rest) == 1 {
			if target, err = parsePlanTarget(rest[0]); err != nil {
				return err
			}
		}
		return c.start(ctx, stdout, true, target)
	case "run":
		return c.start(ctx, stdout, false, planTarget{})
	case "why":
		return c.why(ctx, stdout, rest[0])
	case "lift":
		return c.lift(ctx, stdout, rest[0])
	case "forget-ring":
		return c.forgetRing(ctx, stdout, rest[0], rest[1])
	}
	return usagef("unknown command %q", cmd)
}
