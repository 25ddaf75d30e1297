// Package logging builds the slog logger urunner's run and its push
// receiver (`urunner webhook`) write with, from URUNNER_CONF_LOG_FORMAT and
// URUNNER_CONF_LOG_LEVEL, so that both log alike and accept the same words.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"
)

// New returns a logger writing to w: JSON when format is "json" (in any
// case), else tint's text, coloured only when w is a terminal so that
// `kubectl logs` shows no escape codes. A level ParseLevel refuses logs at
// INFO: callers check it first, naming their variable.
func New(w io.Writer, format, level string) *slog.Logger {
	lvl, err := ParseLevel(level)
	if err != nil {
		lvl = slog.LevelInfo
	}
	if strings.EqualFold(format, "json") {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl}))
	}
	f, ok := w.(*os.File)
	return slog.New(tint.NewTextHandler(w, &tint.Options{
		Level:      lvl,
		TimeFormat: time.RFC3339,
		NoColor:    !ok || !isTerminal(f),
	}))
}

// ParseLevel reads a level: DEBUG, INFO, WARNING (or WARN) or ERROR, in any
// case. Its error names what it wants, not the variable: the caller does.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(s) {
	case "DEBUG":
		return slog.LevelDebug, nil
	case "INFO":
		return slog.LevelInfo, nil
	case "WARNING", "WARN":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("want DEBUG, INFO, WARNING or ERROR, got %q", s)
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
