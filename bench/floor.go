package main

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io"
	"net"
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

// floorRuns is how often `urunner --version` runs to measure the floor,
// floorRounds the turns of the variants of -floor.
const (
	floorRuns   = 10
	floorRounds = 15
)

// versionRSS runs `bin --version` floorRuns times and returns the peak RSS
// of each run: what the binary costs before any work (package init, the
// linked SDKs' globals).
func versionRSS(ctx context.Context, bin string, runs int) ([]float64, error) {
	var out []float64
	for range runs {
		m, err := measureExec(ctx, os.Environ(), io.Discard, bin, "--version")
		if err != nil {
			return nil, err
		}
		if m.ExitCode != 0 {
			return nil, fmt.Errorf("%s --version: exit %d", bin, m.ExitCode)
		}
		out = append(out, mib(m.MaxRSSKiB<<10))
	}
	return out, nil
}

// startRSS is a process's memory when it sends its first API request:
// package init, configuration and wiring done, no work yet.
type startRSS struct{ anon, file float64 } // MiB

func (s startRSS) total() float64 { return s.anon + s.file }

// firstRequestRSS starts bin as a run against an API server that accepts
// connections and never answers, reads /proc/PID/status once the first
// request has connected, and kills the process (by the PID it started).
// File-backed pages are the binary's own code and data the process
// touched; anonymous ones its heap and stacks.
func firstRequestRSS(ctx context.Context, bin, dir string) (startRSS, error) {
	var out startRSS
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return out, err
	}
	defer ln.Close()
	kubeconfig := filepath.Join(dir, "silent.kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: silent, cluster: {server: "http://%s"}}]
users: [{name: silent, user: {token: none}}]
contexts: [{name: silent, context: {cluster: silent, user: silent}}]
current-context: silent
`, ln.Addr())), 0o600); err != nil {
		return out, err
	}
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = urunnerEnv("KUBECONFIG="+kubeconfig, "URUNNER_CONF_KUBE_AUTH=kubeconfig",
		"URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH=registry.example.com", "URUNNER_CONF_STATE_NAMESPACE=default")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return out, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	select {
	case c, ok := <-accepted:
		if !ok {
			return out, errors.New("no connection")
		}
		defer c.Close()
	case <-time.After(30 * time.Second):
		return out, errors.New("urunner sent no API request within 30s")
	}
	// Let the request be written: the process is then waiting.
	time.Sleep(200 * time.Millisecond)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return out, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			continue
		}
		switch k {
		case "RssAnon":
			out.anon = kb / 1024
		case "RssFile":
			out.file = kb / 1024
		}
	}
	return out, nil
}

// printFloor prints the binary's size and RSS floor.
func printFloor(ctx context.Context, out io.Writer, bin string) error {
	rss, err := versionRSS(ctx, bin, floorRuns)
	if err != nil {
		return err
	}
	st, err := os.Stat(bin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "urunner-floor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	start, err := firstRequestRSS(ctx, bin, dir)
	if err != nil {
		return fmt.Errorf("RSS at the first request: %w", err)
	}
	fmt.Fprintf(out, "\n== RSS floor: `urunner --version` peak RSS %s MiB (%d runs); at its first API request %.1f MiB = %.1f anonymous (heap, stacks) + %.1f file-backed (the binary's pages); binary %.1f MiB (make build: -trimpath, -s -w)\n",
		spreadOf(rss).format("%.1f"), floorRuns, start.total(), start.anon, start.file, mib(st.Size()))
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
	type built struct {
		v    sdkVariant
		bin  string
		size int64
		took time.Duration
		rss  []float64
		anon []float64
		file []float64
	}
	var bs []*built
	var full string
	for i, v := range sdkVariants {
		src := filepath.Join(tmp, fmt.Sprintf("v%d", i))
		if err := exportTree(ctx, src); err != nil {
			return err
		}
		if err := dropProviders(src, v.drops); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		b := &built{v: v, bin: filepath.Join(src, "urunner")}
		t := time.Now()
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=floor", "-o", b.bin, ".")
		build.Dir = src
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", v.name, err, out)
		}
		b.took = time.Since(t)
		st, err := os.Stat(b.bin)
		if err != nil {
			return err
		}
		b.size = st.Size()
		bs = append(bs, b)
		if v.drops == nil {
			full = src
		}
	}
	// The variants take turns, so that what else the machine does at
	// the time weighs on all of them alike.
	for range floorRounds {
		for _, b := range bs {
			rss, err := versionRSS(ctx, b.bin, 1)
			if err != nil {
				return err
			}
			b.rss = append(b.rss, rss...)
			start, err := firstRequestRSS(ctx, b.bin, tmp)
			if err != nil {
				return err
			}
			b.anon, b.file = append(b.anon, start.anon), append(b.file, start.file)
		}
	}
	fmt.Fprintf(out, "\n| build | binary | `--version` peak RSS min / median / max | RSS at the first API request: anonymous + file-backed (medians) | build took |\n|---|---|---|---|---|\n")
	for _, b := range bs {
		s, a, f := spreadOf(b.rss), spreadOf(b.anon), spreadOf(b.file)
		fmt.Fprintf(out, "| %s | %.1f MiB | %.1f / %.1f / %.1f MiB | %.1f = %.1f + %.1f MiB | %s |\n", b.v.name, mib(b.size), s.min, s.med, s.max, a.med+f.med, a.med, f.med, round(b.took))
	}
	fmt.Fprintf(out, "(%d runs of each build, the builds taking turns)\n", floorRounds)
	if err := printWeights(ctx, out, full); err != nil {
		return err
	}
	return clientsetWeight(ctx, out, tmp)
}

// clientsetPrograms are two programs that make one LIST of Deployments:
// with client-go's Clientset, as urunner does, whose scheme registers
// every API group, and with a REST client whose scheme holds apps/v1 and
// core/v1 only.
var clientsetPrograms = map[string]string{
	"clientset": `package main

import (
	"context"
	"fmt"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		panic(err)
	}
	l, err := kubernetes.NewForConfigOrDie(cfg).AppsV1().Deployments("").List(context.Background(), metav1.ListOptions{Limit: 1})
	fmt.Println(l, err)
}
`,
	"apps-core-scheme": `package main

import (
	"context"
	"fmt"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		panic(err)
	}
	sch := runtime.NewScheme()
	_ = appsv1.AddToScheme(sch)
	_ = corev1.AddToScheme(sch)
	metav1.AddToGroupVersion(sch, appsv1.SchemeGroupVersion)
	cfg.GroupVersion, cfg.APIPath = &appsv1.SchemeGroupVersion, "/apis"
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(sch).WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		panic(err)
	}
	var l appsv1.DeploymentList
	err = rc.Get().Resource("deployments").VersionedParams(&metav1.ListOptions{Limit: 1}, runtime.NewParameterCodec(sch)).Do(context.Background()).Into(&l)
	fmt.Println(len(l.Items), err)
}
`,
}

// clientsetWeight builds clientsetPrograms in a module of their own (this
// module's go.mod and go.sum, renamed) and measures what client-go's
// Clientset costs a binary by itself.
func clientsetWeight(ctx context.Context, out io.Writer, tmp string) error {
	dir := filepath.Join(tmp, "clientset")
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		return err
	}
	gosum, err := os.ReadFile("go.sum")
	if err != nil {
		return err
	}
	gomod = regexp.MustCompile(`(?m)^module .*$`).ReplaceAll(gomod, []byte("module example.com/clientset"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), gomod, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), gosum, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nWhat client-go's Clientset costs by itself: a program that LISTs Deployments once, with the Clientset (as urunner) and with a REST client whose scheme holds apps/v1 and core/v1 only (built like make build; %d runs each):\n\n", floorRounds)
	fmt.Fprintln(out, "| program | binary | RSS at the first API request: anonymous + file-backed (medians) |\n|---|---|---|")
	for _, name := range []string{"clientset", "apps-core-scheme"} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name, "main.go"), []byte(clientsetPrograms[name]), 0o644); err != nil {
			return err
		}
		bin := filepath.Join(dir, name+".bin")
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./"+name)
		build.Dir = dir
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
		if b, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", name, err, b)
		}
		st, err := os.Stat(bin)
		if err != nil {
			return err
		}
		var anon, file []float64
		for range floorRounds {
			r, err := firstRequestRSS(ctx, bin, dir)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			anon, file = append(anon, r.anon), append(file, r.file)
		}
		a, f := spreadOf(anon).med, spreadOf(file).med
		fmt.Fprintf(out, "| %s | %.1f MiB | %.1f = %.1f + %.1f MiB |\n", name, mib(st.Size()), a+f, a, f)
	}
	return nil
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

// dropProviders removes the providers' SDK code from the tree at src:
// their lines of providerTypes (registry/provider.go), and from each file
// every declaration that uses a cloud SDK, or uses what was removed. The
// helpers other providers share stay (ecr.go's credentialsReusable serves
// gcp.go).
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
		if err := stripSDK(filepath.Join(src, file)); err != nil {
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

// sdkImport reports whether an import path is a cloud provider's SDK.
func sdkImport(path string) bool {
	for _, p := range []string{"github.com/aws/", "github.com/Azure/", "github.com/AzureAD/", "golang.org/x/oauth2", "cloud.google.com/", "google.golang.org/api"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// stripSDK rewrites a Go file without the declarations that use a cloud
// SDK, directly or through another removed declaration, and without the
// imports left unused.
func stripSDK(path string) error {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		return err
	}
	importName := func(imp *ast.ImportSpec) string {
		p, _ := strconv.Unquote(imp.Path.Value)
		if imp.Name != nil {
			return imp.Name.Name
		}
		parts := strings.Split(p, "/")
		name := parts[len(parts)-1]
		if regexp.MustCompile(`^v[0-9]+$`).MatchString(name) && len(parts) > 1 {
			name = parts[len(parts)-2]
		}
		return name
	}
	sdk := map[string]bool{}
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); sdkImport(p) {
			sdk[importName(imp)] = true
		}
	}
	removed := map[string]bool{}
	uses := func(n ast.Node) bool {
		found := false
		ast.Inspect(n, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.SelectorExpr:
				if id, ok := x.X.(*ast.Ident); ok && sdk[id.Name] {
					found = true
				}
			case *ast.Ident:
				if removed[x.Name] {
					found = true
				}
			}
			return !found
		})
		return found
	}
	// names are what removing d removes: its declared names, and for a
	// method its receiver's type, which no longer implements what it did.
	names := func(d ast.Decl) []string {
		var out []string
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil {
				out = append(out, d.Name.Name)
				break
			}
			for _, field := range d.Recv.List {
				ast.Inspect(field.Type, func(n ast.Node) bool {
					if id, ok := n.(*ast.Ident); ok {
						out = append(out, id.Name)
					}
					return true
				})
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					out = append(out, s.Name.Name)
				case *ast.ValueSpec:
					for _, n := range s.Names {
						out = append(out, n.Name)
					}
				}
			}
		}
		return out
	}
	for changed := true; changed; {
		changed = false
		var kept []ast.Decl
		for _, d := range f.Decls {
			if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.IMPORT {
				kept = append(kept, d)
				continue
			}
			declared := false
			if _, ok := d.(*ast.GenDecl); ok {
				for _, n := range names(d) {
					declared = declared || removed[n]
				}
			}
			if declared || uses(d) {
				for _, n := range names(d) {
					removed[n] = true
				}
				changed = true
				continue
			}
			kept = append(kept, d)
		}
		f.Decls = kept
	}
	// Drop the imports nothing uses any more.
	used := map[string]bool{}
	for _, d := range f.Decls {
		if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.IMPORT {
			continue
		}
		ast.Inspect(d, func(n ast.Node) bool {
			if se, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := se.X.(*ast.Ident); ok {
					used[id.Name] = true
				}
			}
			return true
		})
	}
	for _, d := range f.Decls {
		if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.IMPORT {
			var specs []ast.Spec
			for _, s := range gd.Specs {
				if imp := s.(*ast.ImportSpec); used[importName(imp)] {
					specs = append(specs, s)
				}
			}
			gd.Specs = specs
		}
	}
	f.Comments = nil
	var buf strings.Builder
	if err := format.Node(&buf, fset, f); err != nil {
		return fmt.Errorf("print %s: %w", path, err)
	}
	return os.WriteFile(path, []byte(buf.String()), 0o644)
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
		if err != nil || (f[2] != "T" && f[2] != "t" && f[2] != "R" && f[2] != "r") {
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
	fmt.Fprintf(out, "\nCode and read-only data by module (go tool nm -size, symbols of type T and R, %.1f MiB in all; the rest of the binary is pclntab, type data and DWARF-free metadata), the 15 largest:\n\n| module | size | share |\n|---|---|---|\n", mib(total))
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
