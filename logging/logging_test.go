package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// The level words URUNNER_CONF_LOG_LEVEL takes, for the run and the
// receiver alike.
func TestParseLevel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want slog.Level
		ok   bool
	}{
		{"DEBUG", slog.LevelDebug, true},
		{"info", slog.LevelInfo, true},
		{"Warning", slog.LevelWarn, true},
		{"WARN", slog.LevelWarn, true},
		{"error", slog.LevelError, true},
		{"", 0, false},
		{"TRACE", 0, false},
	} {
		got, err := ParseLevel(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if _, err := ParseLevel("TRACE"); err == nil || err.Error() != `want DEBUG, INFO, WARNING or ERROR, got "TRACE"` {
		t.Errorf("error %v, want the accepted words and the value", err)
	}
}

// Text is tint's, without escape codes when not written to a terminal;
// json is slog's JSON; the level filters.
func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name, format, level string
		want, notWant       string
	}{
		{"text without colour to a pipe", "text", "INFO", `INF hello k=v`, "\x1b["},
		{"json in any case", "JSON", "INFO", `"msg":"hello","k":"v"`, "\x1b["},
		{"level filters", "text", "ERROR", "", "hello"},
		{"bad level logs at info", "text", "LOUD", "INF hello", "DBG quiet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			log := New(&b, tc.format, tc.level)
			log.Debug("quiet")
			log.Info("hello", "k", "v")
			if !strings.Contains(b.String(), tc.want) || strings.Contains(b.String(), tc.notWant) {
				t.Errorf("logged %q; want it to hold %q and not %q", b.String(), tc.want, tc.notWant)
			}
		})
	}
}
