// Package exit is how urunner's commands (the run and `urunner webhook`)
// end: their exit codes, documented in --help and the README, and the
// command-line steps that end a command before any work (flags, a stray
// argument, bad configuration), worded alike for both.
package exit

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// The exit codes.
const (
	// OK: all went well (or --help, --version).
	OK = 0
	// Failed: a lookup, restart or state write failed (what succeeded is
	// saved), or the receiver stopped on an error.
	Failed = 1
	// Config: bad flags, arguments or configuration; nothing was contacted.
	Config = 2
)

// Flags parses args into fs. When the command must end now, done is true
// and code says how: --help asked (OK; fs.Usage has printed it) or a bad
// flag (Config; the flag package has said which).
func Flags(fs *flag.FlagSet, args []string) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return OK, false
	case errors.Is(err, flag.ErrHelp):
		return OK, true
	}
	return Config, true
}

// StrayArgument reports, as prog on w, an argument left after the flags
// (the commands take their configuration from the environment) and
// returns Config and true; false when there is none.
func StrayArgument(w io.Writer, prog string, fs *flag.FlagSet) (code int, done bool) {
	if fs.NArg() == 0 {
		return OK, false
	}
	fmt.Fprintf(w, "%s: unexpected argument %q (configuration is read from the environment, see --help)\n", prog, fs.Arg(0))
	return Config, true
}

// BadConfig reports err as prog's bad configuration on w, as a plain line
// (the logging settings themselves may be what is wrong), and returns
// Config.
func BadConfig(w io.Writer, prog string, err error) int {
	fmt.Fprintf(w, "%s: bad configuration: %v\n", prog, err)
	return Config
}
