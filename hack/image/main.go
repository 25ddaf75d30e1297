// Command image builds urunner's release image without a container daemon
// and pushes it with regclient: an OCI index of one image per platform, each
// the static urunner binary on a scratch root holding only what a Go
// program needs (a non-root user, CA roots, time zones), with OCI labels and
// an SPDX SBOM attached as an OCI 1.1 referrer. Same inputs, same digests.
//
//	image -image REF -binary linux/amd64=PATH [-binary linux/arm64=PATH ...]
//	      -version V -revision R -source URL -licenses SPDX -epoch SECONDS [-insecure]
//	image -rootfs DIR     only write the root files (not the binary) to DIR,
//	                      for the Dockerfile, which builds the same layout
//
// `make image` runs it with the Makefile's variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// errUsage marks errors in the command line, which exit with 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// options are the command line, checked.
type options struct {
	image    string
	insecure bool
	binaries []binary
	meta     meta
	zoneinfo string
	rootfs   string
	sbom     bool
}

// binary is one platform's urunner executable.
type binary struct {
	os, arch string
	path     string
}

func (b binary) platform() string { return b.os + "/" + b.arch }

// meta is what the labels and the SBOM say about the build.
type meta struct {
	version, revision, source, licenses string
	// created is the commit time (SOURCE_DATE_EPOCH), never the build
	// time, so that a rebuild of one commit gives the same digests.
	created time.Time
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	zoneinfo, err := resolveZoneinfo(o.zoneinfo)
	if err != nil {
		return err
	}
	base, err := baseEntries(zoneinfo)
	if err != nil {
		return err
	}
	if o.rootfs != "" {
		if err := writeRootfs(o.rootfs, base); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote the image's root files to %s\n", o.rootfs)
		return nil
	}
	img, err := build(o, base)
	if err != nil {
		return err
	}
	digest, err := push(ctx, o.image, o.insecure, img)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pushed %s@%s (%s)\n", o.image, digest, strings.Join(img.platformNames(), ", "))
	return nil
}

func parse(args []string) (options, error) {
	var o options
	var binaries []string
	var epoch int64
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.StringVar(&o.image, "image", "", "where to push: registry/repository:tag (or ocidir://DIR:tag)")
	fs.BoolVar(&o.insecure, "insecure", false, "the registry speaks plain HTTP")
	fs.Func("binary", "OS/ARCH=PATH of a static urunner binary; repeat per platform", func(s string) error {
		binaries = append(binaries, s)
		return nil
	})
	fs.StringVar(&o.meta.version, "version", "", "version label, as set in the binary (-X main.version)")
	fs.StringVar(&o.meta.revision, "revision", "", "source revision label (the commit)")
	fs.StringVar(&o.meta.source, "source", "", "source repository URL label")
	fs.StringVar(&o.meta.licenses, "licenses", "", "SPDX license expression label")
	fs.Int64Var(&epoch, "epoch", -1, "creation time in Unix seconds (SOURCE_DATE_EPOCH: the commit time)")
	fs.StringVar(&o.zoneinfo, "zoneinfo", "", "the time zone database (default: $(go env GOROOT)/lib/time/zoneinfo.zip)")
	fs.StringVar(&o.rootfs, "rootfs", "", "write the root files to this directory instead of pushing")
	fs.BoolVar(&o.sbom, "sbom", true, "attach an SPDX SBOM to each platform's image")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.rootfs != "" {
		return o, nil
	}
	o.meta.created = time.Unix(epoch, 0).UTC()
	for name, v := range map[string]string{
		"-image": o.image, "-version": o.meta.version, "-revision": o.meta.revision,
		"-source": o.meta.source, "-licenses": o.meta.licenses,
	} {
		if strings.TrimSpace(v) == "" {
			return o, fmt.Errorf("%s: required", name)
		}
	}
	if epoch < 0 {
		return o, errors.New("-epoch: required (Unix seconds, e.g. git log -1 --format=%ct)")
	}
	if len(binaries) == 0 {
		return o, errors.New("-binary: required, at least one OS/ARCH=PATH")
	}
	seen := map[string]bool{}
	for _, s := range binaries {
		b, err := parseBinary(s)
		if err != nil {
			return o, err
		}
		if seen[b.platform()] {
			return o, fmt.Errorf("-binary %q: platform %s given twice", s, b.platform())
		}
		seen[b.platform()] = true
		o.binaries = append(o.binaries, b)
	}
	return o, nil
}

func parseBinary(s string) (binary, error) {
	plat, path, ok := strings.Cut(s, "=")
	goos, arch, ok2 := strings.Cut(plat, "/")
	if !ok || !ok2 || goos == "" || arch == "" || path == "" || strings.Contains(arch, "/") {
		return binary{}, fmt.Errorf("-binary %q: want OS/ARCH=PATH, e.g. linux/arm64=bin/linux-arm64/urunner", s)
	}
	return binary{os: goos, arch: arch, path: path}, nil
}

// resolveZoneinfo returns path, or the Go toolchain's own copy of the IANA
// time zone database, the one time.LoadLocation falls back to.
func resolveZoneinfo(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("find the time zone database: go env GOROOT: %w (or set -zoneinfo)", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "lib", "time", "zoneinfo.zip"), nil
}
