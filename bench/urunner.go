package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
//
// bin runs under this program's -rusage-exec helper, which reports its
// peak RSS: a child started straight from the benchmark would report at
// least the benchmark's own peak RSS, as Linux keeps the larger of the
// old and new address spaces' peaks when a vfork child (os/exec) calls
// execve (exec_mmap), and the benchmark holds the cluster's plan and
// clients. The helper's own RSS stays far below urunner's.
func runUrunner(ctx context.Context, bin string, env []string, dir, name string, args ...string) (urunnerRun, error) {
	res := urunnerRun{Stderr: filepath.Join(dir, name+".stderr")}
	errf, err := os.Create(res.Stderr)
	if err != nil {
		return res, err
	}
	defer errf.Close()
	m, err := measureExec(ctx, env, errf, append([]string{bin}, args...)...)
	if err != nil {
		return res, fmt.Errorf("run urunner: %w", err)
	}
	res.Start, res.Wall, res.ExitCode, res.MaxRSSKiB = m.Start, m.Wall, m.ExitCode, m.MaxRSSKiB
	if _, err := errf.Seek(0, io.SeekStart); err != nil {
		return res, err
	}
	l, err := parseLog(errf, 3)
	res.Summary, res.Problems, res.Warnings, res.Errors = l.summary, l.problems, l.warnings, l.errors
	return res, err
}

// rusageExecFlag makes this program the helper that runs a command and
// reports its wall time, exit code and peak RSS on file descriptor 3.
const rusageExecFlag = "-rusage-exec"

// execMeasure is what the helper reports.
type execMeasure struct {
	Start     time.Time
	Wall      time.Duration
	ExitCode  int
	MaxRSSKiB int64
}

// measureExec runs argv under the helper, its output to out.
func measureExec(ctx context.Context, env []string, out io.Writer, argv ...string) (execMeasure, error) {
	var m execMeasure
	self, err := os.Executable()
	if err != nil {
		return m, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return m, err
	}
	defer r.Close()
	cmd := exec.CommandContext(ctx, self, append([]string{rusageExecFlag}, argv...)...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.ExtraFiles = []*os.File{w}
	// Should the benchmark die, the kernel ends the helper, and the
	// helper's death its child.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return m, err
	}
	report, rerr := io.ReadAll(r)
	if err := cmd.Wait(); err != nil {
		return m, fmt.Errorf("%s %s: %w", rusageExecFlag, argv[0], err)
	}
	if rerr != nil {
		return m, rerr
	}
	if err := json.Unmarshal(report, &m); err != nil {
		return m, fmt.Errorf("%s %s reported %q: %w", rusageExecFlag, argv[0], report, err)
	}
	return m, nil
}

// rusageExec is the helper: it runs argv with this process's environment
// and output, and writes an execMeasure to file descriptor 3. It fails
// only when argv cannot be started.
func rusageExec(argv []string) int {
	report := os.NewFile(3, "report")
	if report == nil || len(argv) == 0 {
		fmt.Fprintln(os.Stderr, rusageExecFlag+": want a command and file descriptor 3")
		return 2
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m := execMeasure{Start: time.Now()}
	err := cmd.Run()
	m.Wall = time.Since(m.Start)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", rusageExecFlag, err)
		return 1
	}
	m.ExitCode = cmd.ProcessState.ExitCode()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.MaxRSSKiB = ru.Maxrss // KiB on Linux
	}
	if err := json.NewEncoder(report).Encode(m); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", rusageExecFlag, err)
		return 1
	}
	return 0
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

// budgetOf renders the registry budget of a run's summary line
// (registries.<registry>.<figure>=N), one registry after the other, so
// that it reads beside the registry's own request counts.
func budgetOf(summary map[string]string) string {
	per := map[string]map[string]string{}
	for k, v := range summary {
		rest, ok := strings.CutPrefix(k, "registries.")
		i := strings.LastIndex(rest, ".")
		if !ok || i < 0 {
			continue
		}
		if per[rest[:i]] == nil {
			per[rest[:i]] = map[string]string{}
		}
		per[rest[:i]][rest[i+1:]] = v
	}
	if len(per) == 0 {
		return "none in the summary line"
	}
	var out []string
	for _, reg := range slices.Sorted(maps.Keys(per)) {
		f := per[reg]
		s := fmt.Sprintf("%s: %s HEAD, %s GET, %s blob, %s token, %s pulls", reg,
			f["manifest_heads"], f["manifest_gets"], f["blob_gets"], f["tokens"], f["pulls"])
		if f["limit"] != "" {
			s += fmt.Sprintf(", %s of %s left", f["remaining"], f["limit"])
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}
