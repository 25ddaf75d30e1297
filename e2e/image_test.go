package e2e

import (
	"debug/elf"
	"os/exec"
	"strings"
	"testing"
)

// The image is distroless static: the binary must need no libc, no loader.
func TestBinaryIsStatic(t *testing.T) {
	f, err := elf.Open(urunnerBin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %v program header: it is dynamically linked", urunnerBin, p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s imports %v", urunnerBin, libs)
	}
}

func TestBinaryPrintsItsBuildVersion(t *testing.T) {
	out, err := exec.Command(urunnerBin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.TrimSpace(string(out))
	if !strings.HasPrefix(got, "urunner ") || got == "urunner dev" {
		t.Errorf("--version = %q, want the version set at build time", got)
	}
}
