package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// What the pushed image holds is tested in e2e/image_test.go, against a
// registry; these are the builder's own rules.

func TestBadCommandLinesNameTheFlag(t *testing.T) {
	good := []string{"-image", "r.example/u:t", "-binary", "linux/amd64=bin/u", "-version", "v1",
		"-revision", "abc", "-source", "https://x", "-licenses", "MIT", "-epoch", "0"}
	without := func(flag string) []string {
		i := slices.Index(good, flag)
		return slices.Delete(slices.Clone(good), i, i+2)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no image", without("-image"), "-image: required"},
		{"no version", without("-version"), "-version: required"},
		{"no epoch", without("-epoch"), "-epoch: required"},
		{"no binary", without("-binary"), "-binary: required"},
		{"binary without a path", append(without("-binary"), "-binary", "linux/amd64"), `-binary "linux/amd64": want OS/ARCH=PATH`},
		{"binary with a variant", append(without("-binary"), "-binary", "linux/arm/v7=x"), `-binary "linux/arm/v7=x": want OS/ARCH=PATH`},
		{"one platform twice", append(slices.Clone(good), "-binary", "linux/amd64=other"), "platform linux/amd64 given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parse(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
	if _, err := parse(good); err != nil {
		t.Errorf("parse(%q) = %v", good, err)
	}
}

func TestRunRefusesABinaryOfAnotherPlatform(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	other := "linux/arm64"
	if runtime.GOOS+"/"+runtime.GOARCH == other {
		other = "linux/amd64"
	}
	b, err := parseBinary(other + "=" + self)
	if err != nil {
		t.Fatal(err)
	}
	err = checkBinary(b)
	if want := "built for " + runtime.GOOS + "/" + runtime.GOARCH; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("checkBinary(%s labelled %s) = %v, want an error containing %q", self, other, err, want)
	}
}

func TestBaseLayerIsReproducibleAndOwnedRight(t *testing.T) {
	base := baseEntriesForTest(t)
	epoch := time.Unix(1700000000, 0).UTC()
	a, err := tarLayer(base, epoch)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tarLayer(baseEntriesForTest(t), epoch)
	if err != nil {
		t.Fatal(err)
	}
	if a.desc.Digest != b.desc.Digest || a.diffID != b.diffID {
		t.Errorf("two builds of the base layer differ: %s and %s", a.desc.Digest, b.desc.Digest)
	}

	owners := map[string]int{}
	for _, h := range tarHeaders(t, a.data) {
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s: time %v, want the epoch %v", h.Name, h.ModTime, epoch)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner names %q/%q, want numeric owners only", h.Name, h.Uname, h.Gname)
		}
		if h.Uid != 0 {
			owners[h.Name] = h.Uid
		}
	}
	if diff := cmp.Diff(map[string]int{"home/nonroot/": nonrootID}, owners); diff != "" {
		t.Errorf("entries not owned by root (-want +got):\n%s", diff)
	}
}

// The Dockerfile copies what -rootfs writes: the same files, contents and
// modes as the base layer.
func TestRootfsHoldsTheBaseLayer(t *testing.T) {
	base := baseEntriesForTest(t)
	root := t.TempDir()
	if err := writeRootfs(root, base); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		got = append(got, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range base {
		want = append(want, e.path)
		fi, err := os.Stat(filepath.Join(root, e.path))
		if err != nil {
			t.Fatal(err)
		}
		mode := int64(fi.Mode().Perm())
		if fi.Mode()&os.ModeSticky != 0 {
			mode |= 0o1000
		}
		if mode != e.mode {
			t.Errorf("%s: mode %o, want %o", e.path, mode, e.mode)
		}
		if !e.dir {
			data, err := os.ReadFile(filepath.Join(root, e.path))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, e.data) {
				t.Errorf("%s: content differs from the layer's", e.path)
			}
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files of -rootfs (-want +got):\n%s", diff)
	}
}

// Docker users get the same user, entrypoint, labels and root files as
// `make image` gives.
func TestDockerfileMatchesTheImage(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(df), "\\\n", " ")
	for _, want := range []string{
		"\nFROM scratch\n",
		"\nRUN go run ./hack/image -rootfs /rootfs\n",
		"\nCOPY --from=build /rootfs/ /\n",
		"\nCOPY --from=build --chown=65532:65532 /rootfs/home/nonroot/ /home/nonroot/\n",
		"\nCOPY --from=build /src/bin/urunner /" + binaryPath + "\n",
		"\nUSER " + imageUser + "\n",
		"\nENTRYPOINT [\"/" + binaryPath + "\"]\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the Dockerfile lacks the line %q", strings.TrimSpace(want))
		}
	}
	var keys []string
	for _, m := range regexp.MustCompile(`(org\.opencontainers\.image\.[a-z]+)=`).FindAllStringSubmatch(text, -1) {
		keys = append(keys, m[1])
	}
	slices.Sort(keys)
	if diff := cmp.Diff(labelKeys(), keys); diff != "" {
		t.Errorf("labels of the Dockerfile (-want +got):\n%s", diff)
	}
}

// The SBOM of a Go binary is valid SPDX as far as identifiers go: each
// unique and well formed, each relationship between known elements.
func TestSBOMIdentifiersAreValid(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := sbom(meta{version: "v1", revision: "abc", source: "https://x", licenses: "MIT"},
		binary{os: runtime.GOOS, arch: runtime.GOARCH, path: self})
	if err != nil {
		t.Fatal(err)
	}
	valid := regexp.MustCompile(`^SPDXRef-[A-Za-z0-9.-]+$`)
	ids := map[string]bool{doc.SPDXID: true}
	for _, p := range doc.Packages {
		if !valid.MatchString(p.SPDXID) {
			t.Errorf("package %s: SPDXID %q is not valid", p.Name, p.SPDXID)
		}
		if ids[p.SPDXID] {
			t.Errorf("package %s: SPDXID %q used twice", p.Name, p.SPDXID)
		}
		ids[p.SPDXID] = true
	}
	for _, r := range doc.Relationships {
		if !ids[r.Element] || !ids[r.Related] {
			t.Errorf("relationship %+v names an unknown element", r)
		}
	}
	if len(doc.Packages) < 4 {
		t.Errorf("SBOM of the test binary lists %d packages, want its modules too", len(doc.Packages))
	}
}

func TestGoPURLEscapesPlus(t *testing.T) {
	if got, want := goPURL("github.com/a/b", "v2.0.0+incompatible"), "pkg:golang/github.com/a/b@v2.0.0%2Bincompatible"; got != want {
		t.Errorf("goPURL = %q, want %q", got, want)
	}
}

func baseEntriesForTest(t *testing.T) []entry {
	t.Helper()
	zi, err := resolveZoneinfo("")
	if err != nil {
		t.Fatal(err)
	}
	es, err := baseEntries(zi)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func tarHeaders(t *testing.T, gz []byte) []*tar.Header {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var hs []*tar.Header
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hs
		}
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
}
