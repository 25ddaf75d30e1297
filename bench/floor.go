package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// floorRuns is how often `urunner --version` runs to measure the floor.
const floorRuns = 5

// versionRSS runs `bin --version` floorRuns times and returns the peak RSS
// of each run: what the binary costs before any work (package init, the
// linked SDKs' globals).
func versionRSS(ctx context.Context, bin string) ([]float64, error) {
	var out []float64
	for range floorRuns {
		cmd := exec.CommandContext(ctx, bin, "--version")
		cmd.Stdout = io.Discard
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s --version: %w", bin, err)
		}
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			return nil, errors.New("no rusage on this platform")
		}
		out = append(out, mib(ru.Maxrss<<10))
	}
	return out, nil
}

// printFloor prints the binary's size and RSS floor.
func printFloor(ctx context.Context, out io.Writer, bin string) error {
	rss, err := versionRSS(ctx, bin)
	if err != nil {
		return err
	}
	st, err := os.Stat(bin)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== RSS floor: `urunner --version` peak RSS %s MiB (%d runs); binary %.1f MiB (make build: -trimpath, -s -w)\n",
		spreadOf(rss).format("%.1f"), floorRuns, mib(st.Size()))
	return nil
}

// sdkVariant is a throwaway build of urunner that leaves providers out:
// their files removed and their lines of providerTypes dropped.
type sdkVariant struct {
	name  string
	drops map[string]string // file → its providerTypes key
}

var sdkVariants = []sdkVariant{
	{"as committed", nil},
	{"without AWS (registry/ecr.go)", map[string]string{"registry/ecr.go": "aws_ecr"}},
	{"without Azure (registry/acr.go)", map[string]string{"registry/acr.go": "azure_acr"}},
	{"without GCP (registry/gcp.go)", map[string]string{"registry/gcp.go": "gcp"}},
	{"without the three", map[string]string{"registry/ecr.go": "aws_ecr", "registry/acr.go": "azure_acr", "registry/gcp.go": "gcp"}},
}

// runFloor is `make bench-floor`: for each variant, a copy of the
// committed tree (git archive HEAD) with the provider files removed, built
// as `make build` builds, its size, its RSS floor and the modules that
// weigh most in it. Nothing of the variants is kept.
func runFloor(ctx context.Context, o options, out io.Writer) (err error) {
	tmp, err := os.MkdirTemp("", "urunner-floor-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			fmt.Fprintf(out, "\nkept %s\n", tmp)
			return
		}
		err = errors.Join(err, os.RemoveAll(tmp))
	}()
	rev, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return fmt.Errorf("git rev-parse: %w", err)
	}
	fmt.Fprintf(out, "RSS floor per left-out SDK: throwaway builds of %s (git archive HEAD), %d CPUs, %s; load %s\n",
		strings.TrimSpace(string(rev)), runtime.NumCPU(), runtime.Version(), readLoad())
	fmt.Fprintln(out, "\n| build | binary | `--version` peak RSS min / median / max | build took |")
	fmt.Fprintln(out, "|---|---|---|---|")
	var full string
	for i, v := range sdkVariants {
		src := filepath.Join(tmp, fmt.Sprintf("v%d", i))
		if err := exportTree(ctx, src); err != nil {
			return err
		}
		if err := dropProviders(src, v.drops); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		bin := filepath.Join(src, "urunner")
		t := time.Now()
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=floor", "-o", bin, ".")
		build.Dir = src
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", v.name, err, b)
		}
		took := time.Since(t)
		st, err := os.Stat(bin)
		if err != nil {
			return err
		}
		rss, err := versionRSS(ctx, bin)
		if err != nil {
			return err
		}
		s := spreadOf(rss)
		fmt.Fprintf(out, "| %s | %.1f MiB | %.1f / %.1f / %.1f MiB | %s |\n", v.name, mib(st.Size()), s.min, s.med, s.max, round(took))
		if v.drops == nil {
			full = src
		}
	}
	return printWeights(ctx, out, full)
}

// exportTree writes the committed tree to dir.
func exportTree(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	archive := exec.CommandContext(ctx, "sh", "-c", `git archive --format=tar HEAD | tar -x -C "$1"`, "sh", dir)
	if b, err := archive.CombinedOutput(); err != nil {
		return fmt.Errorf("git archive: %w: %s", err, b)
	}
	return nil
}

// dropProviders removes the files and their lines of providerTypes
// (registry/provider.go) from the tree at src.
func dropProviders(src string, drops map[string]string) error {
	if len(drops) == 0 {
		return nil
	}
	provider := filepath.Join(src, "registry", "provider.go")
	b, err := os.ReadFile(provider)
	if err != nil {
		return err
	}
	for file, key := range drops {
		if err := os.Remove(filepath.Join(src, file)); err != nil {
			return err
		}
		line := regexp.MustCompile(`(?m)^\s*"` + regexp.QuoteMeta(key) + `":\s*\w+,\n`)
		if !line.Match(b) {
			return fmt.Errorf("registry/provider.go has no line for %q", key)
		}
		b = line.ReplaceAll(b, nil)
	}
	return os.WriteFile(provider, b, 0o644)
}

// printWeights builds the full variant with its symbols and sums the
// symbol sizes per module: what links the floor.
func printWeights(ctx context.Context, out io.Writer, src string) error {
	bin := filepath.Join(src, "urunner-syms")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build with symbols: %w\n%s", err, b)
	}
	nm, err := exec.CommandContext(ctx, "go", "tool", "nm", "-size", bin).Output()
	if err != nil {
		return fmt.Errorf("go tool nm: %w", err)
	}
	sizes := map[string]int64{}
	var total int64
	for _, line := range strings.Split(string(nm), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		total += n
		sizes[moduleOf(strings.Join(f[3:], " "))] += n
	}
	keys := make([]string, 0, len(sizes))
	for k := range sizes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return int(sizes[b] - sizes[a]) })
	fmt.Fprintf(out, "\nSymbol sizes by module (go tool nm -size, %.1f MiB in all), the 15 largest:\n\n| module | size | share |\n|---|---|---|\n", mib(total))
	for _, k := range keys[:min(15, len(keys))] {
		fmt.Fprintf(out, "| %s | %.1f MiB | %.0f%% |\n", k, mib(sizes[k]), 100*float64(sizes[k])/float64(total))
	}
	return nil
}

// moduleOf names the module of a symbol from its package path: the
// first three elements of a hosted path (github.com/aws/aws-sdk-go-v2),
// two for the hosts that name modules so (k8s.io/client-go), and "Go
// standard library and runtime" for a path without a host.
func moduleOf(sym string) string {
	for _, p := range []string{"type:", "go:itab.", "go:", "*"} {
		sym = strings.TrimPrefix(sym, p)
	}
	if i := strings.IndexAny(sym, "([ "); i >= 0 {
		sym = sym[:i]
	}
	slash := strings.LastIndex(sym, "/")
	pkg := sym
	if dot := strings.Index(sym[slash+1:], "."); dot >= 0 {
		pkg = sym[:slash+1+dot]
	}
	parts := strings.Split(pkg, "/")
	if !strings.Contains(parts[0], ".") {
		return "Go standard library and runtime"
	}
	n := 3
	switch parts[0] {
	case "k8s.io", "sigs.k8s.io", "google.golang.org", "cloud.google.com", "go.opentelemetry.io", "gopkg.in":
		n = 2
	}
	return strings.Join(parts[:min(n, len(parts))], "/")
}

func pprofTop(ctx context.Context, file string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", append(append([]string{"tool", "pprof"}, args...), file)...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", err
	}
	return string(out), nil
}
