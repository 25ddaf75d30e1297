package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// urunnerRun is what one run of the urunner binary showed from the
// outside: how long the process lived, how it exited, its peak RSS and its
// summary line.
type urunnerRun struct {
	Start     time.Time
	Wall      time.Duration
	ExitCode  int
	MaxRSSKiB int64
	Summary   map[string]string // the "run finished" line's attributes
	// Problems are the first few WRN and ERR lines, Warnings and Errors
	// their numbers.
	Problems         []string
	Warnings, Errors int
	Stderr           string // path of the captured stderr
}

// restarted returns the summary's restarted=N, -1 when absent.
func (r urunnerRun) restarted() int {
	n, err := strconv.Atoi(r.Summary["restarted"])
	if err != nil {
		return -1
	}
	return n
}

// runUrunner runs bin with env and extra flags, its stderr going to
// dir/name.stderr. A non-zero exit is reported in the result, not as an
// error: the figures of a failed run are still worth showing.
func runUrunner(ctx context.Context, bin string, env []string, dir, name string, args ...string) (urunnerRun, error) {
	res := urunnerRun{Stderr: filepath.Join(dir, name+".stderr")}
	errf, err := os.Create(res.Stderr)
	if err != nil {
		return res, err
	}
	defer errf.Close()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdout = errf
	cmd.Stderr = errf
	// Should the benchmark die, the kernel ends urunner too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	res.Start = time.Now()
	err = cmd.Run()
	res.Wall = time.Since(res.Start)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return res, fmt.Errorf("run urunner: %w", err)
	}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.MaxRSSKiB = ru.Maxrss // KiB on Linux
		}
	}
	if _, err := errf.Seek(0, io.SeekStart); err != nil {
		return res, err
	}
	l, err := parseLog(errf, 3)
	res.Summary, res.Problems, res.Warnings, res.Errors = l.summary, l.problems, l.warnings, l.errors
	return res, err
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// logSummary is what parseLog found.
type logSummary struct {
	summary          map[string]string
	problems         []string
	warnings, errors int
}

// parseLog reads urunner's tint text log: the attributes of the last "run
// finished" line, the WRN and ERR lines counted and the first maxProblems
// of them kept.
func parseLog(r io.Reader, maxProblems int) (logSummary, error) {
	var l logSummary
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		line := ansi.ReplaceAllString(s.Text(), "")
		warn, bad := strings.Contains(line, " WRN "), strings.Contains(line, " ERR ") || strings.HasPrefix(line, "urunner:")
		if warn {
			l.warnings++
		}
		if bad {
			l.errors++
		}
		if (warn || bad) && len(l.problems) < maxProblems {
			l.problems = append(l.problems, line)
		}
		if _, attrs, ok := strings.Cut(line, " run finished "); ok {
			l.summary = parseAttrs(attrs)
		}
	}
	return l, s.Err()
}

// parseAttrs splits tint's key=value attributes; values with spaces are
// quoted.
func parseAttrs(s string) map[string]string {
	out := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			if q, err := strconv.QuotedPrefix(rest); err == nil {
				val, _ = strconv.Unquote(q)
				rest = rest[len(q):]
			}
		} else {
			val, rest, _ = strings.Cut(rest, " ")
		}
		out[key] = val
		s = rest
	}
	return out
}

// urunnerEnv is the process environment without anything that would
// configure urunner or the Kubernetes client, plus vars.
func urunnerEnv(vars ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "URUNNER_") || k == "KUBECONFIG" || k == "DOCKER_API_ACCEPT_HEADER" || strings.HasPrefix(k, "KUBERNETES_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, vars...)
}
