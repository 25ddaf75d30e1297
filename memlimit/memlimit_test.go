package memlimit

import (
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"
)

func TestContainerLimitReadsCgroupV2ThenV1(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
		err   string
	}{
		{"cgroup v2 limit", map[string]string{"sys/fs/cgroup/memory.max": "268435456\n"}, 268435456, ""},
		{"cgroup v2 without a limit", map[string]string{"sys/fs/cgroup/memory.max": "max\n"}, 0, ""},
		{"cgroup v1 limit", map[string]string{"sys/fs/cgroup/memory/memory.limit_in_bytes": "134217728\n"}, 134217728, ""},
		{"cgroup v1 without a limit", map[string]string{"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, ""},
		{"v2 wins over v1", map[string]string{"sys/fs/cgroup/memory.max": "100", "sys/fs/cgroup/memory/memory.limit_in_bytes": "200"}, 100, ""},
		{"no cgroup", map[string]string{}, 0, ""},
		{"garbage", map[string]string{"sys/fs/cgroup/memory.max": "lots"}, 0, `/sys/fs/cgroup/memory.max holds "lots"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, data := range tc.files {
				fsys[name] = &fstest.MapFile{Data: []byte(data)}
			}
			got, err := containerLimit(fsys, cgroupFiles)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("limit %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestGOMEMLIMITWins(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	got, err := Set(func(k string) string {
		if k == "GOMEMLIMIT" {
			return "100MiB"
		}
		return ""
	})
	if err != nil || got != 0 {
		t.Errorf("Set with GOMEMLIMIT: %d, %v; want it left alone", got, err)
	}
	if after := debug.SetMemoryLimit(-1); after != before {
		t.Errorf("the runtime's limit changed from %d to %d", before, after)
	}
}
