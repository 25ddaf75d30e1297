package exit

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"testing"
)

// The command-line steps end a command with the documented code and the
// same words for the run and the receiver.
func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantDone bool
		wantOut  string // what StrayArgument says, when it ends the command
	}{
		{"no flags goes on", nil, OK, false, ""},
		{"a known flag goes on", []string{"--dry-run"}, OK, false, ""},
		{"--help ends well", []string{"--help"}, OK, true, ""},
		{"an unknown flag is bad configuration", []string{"--nope"}, Config, true, ""},
		{"a stray argument is bad configuration", []string{"--dry-run", "extra"}, Config, true,
			`prog: unexpected argument "extra" (configuration is read from the environment, see --help)` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("prog", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Usage = func() {}
			fs.Bool("dry-run", false, "")
			var out bytes.Buffer
			code, done := Flags(fs, tc.args)
			if !done {
				code, done = StrayArgument(&out, "prog", fs)
			}
			if code != tc.wantCode || done != tc.wantDone || out.String() != tc.wantOut {
				t.Errorf("code %d, done %v, said %q; want %d, %v, %q", code, done, out.String(), tc.wantCode, tc.wantDone, tc.wantOut)
			}
		})
	}
	var out bytes.Buffer
	if code := BadConfig(&out, "urunner webhook", errors.New("URUNNER_CONF_X: no")); code != Config || out.String() != "urunner webhook: bad configuration: URUNNER_CONF_X: no\n" {
		t.Errorf("BadConfig: code %d, said %q", code, out.String())
	}
}
