// Package memlimit sets the Go runtime's soft memory limit from the
// container's memory limit, so that the garbage collector works harder as
// the process nears it instead of the kernel killing it. Without it a Go
// program collects only when its heap doubles (GOGC=100), and a run whose
// live heap is half the container's limit is killed at its peak.
package memlimit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Share is the part of the container's limit the Go runtime may use: the
// rest is the binary's own pages and what the runtime does not count.
const Share = 0.9

// cgroupFiles hold the container's memory limit: cgroup v2, then v1.
var cgroupFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// Set sets the runtime's soft memory limit to Share of the container's
// memory limit, unless GOMEMLIMIT is set (the operator's choice wins) or
// no limit applies. It returns the limit set, 0 when none was.
func Set(getenv func(string) string) (int64, error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	limit, err := containerLimit(os.DirFS("/"), cgroupFiles)
	if err != nil || limit == 0 {
		return 0, err
	}
	soft := int64(float64(limit) * Share)
	debug.SetMemoryLimit(soft)
	return soft, nil
}

// containerLimit reads the first of files that exists in fsys (paths
// rooted at /): the limit in bytes, 0 when it says none ("max", or v1's
// near-2^63 "unlimited").
func containerLimit(fsys fs.FS, files []string) (int64, error) {
	for _, f := range files {
		b, err := fs.ReadFile(fsys, strings.TrimPrefix(f, "/"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("memory limit: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("memory limit: %s holds %q, not a number of bytes", f, s)
		}
		if n <= 0 || n >= 1<<62 {
			return 0, nil
		}
		return n, nil
	}
	return 0, nil
}
