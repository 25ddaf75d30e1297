package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/ref"

	"github.com/urunner/urunner/e2e/testground"
)

// The image has no libc and no loader: the binary must need neither.
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

// imageVersion is what the test builds: `make image VERSION=...`.
const imageVersion = "v0.0.0-e2e"

// The release image as `make image` pushes it, pulled back from a real
// registry (olareg) with regclient, as a node's runtime would see it.
func TestMakeImagePushesTheReleaseImage(t *testing.T) {
	// Builds and pushes to a registry of its own (bin/<os>-<arch>, never
	// the bin/urunner the other tests run): it runs beside them.
	t.Parallel()
	reg, err := testground.StartRegistry(testground.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	ctx := t.Context()
	image := reg.Host + "/urunner:e2e"
	makeImage(t, image)

	rc := regclient.New(regclient.WithConfigHost(config.Host{Name: reg.Host, TLS: config.TLSDisabled}))
	rf, err := ref.New(image)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := rc.ManifestGet(ctx, rf)
	if err != nil {
		t.Fatal(err)
	}
	if idx.GetDescriptor().MediaType != mediatype.OCI1ManifestList {
		t.Fatalf("%s is a %s, want an OCI index", image, idx.GetDescriptor().MediaType)
	}
	children := platformManifests(t, idx)
	var platforms []string
	for p := range children {
		platforms = append(platforms, p)
	}
	slices.Sort(platforms)
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, platforms); diff != "" {
		t.Fatalf("platforms of the index (-want +got):\n%s", diff)
	}

	wantLabels := map[string]string{
		"org.opencontainers.image.title":    "urunner",
		"org.opencontainers.image.source":   "https://github.com/urunner/urunner",
		"org.opencontainers.image.revision": git(t, "rev-parse", "HEAD"),
		"org.opencontainers.image.version":  imageVersion,
		"org.opencontainers.image.licenses": "NOASSERTION",
		"org.opencontainers.image.created":  commitTime(t).Format(time.RFC3339),
	}
	if annotations, err := idx.(manifest.Annotator).GetAnnotations(); err != nil {
		t.Fatal(err)
	} else if diff := cmp.Diff(wantLabels, annotations); diff != "" {
		t.Errorf("index annotations (-want +got):\n%s", diff)
	}

	for _, plat := range platforms {
		desc := children[plat]
		t.Run(plat, func(t *testing.T) {
			m, err := rc.ManifestGet(ctx, rf.SetDigest(desc.Digest.String()))
			if err != nil {
				t.Fatal(err)
			}
			img := m.(manifest.Imager)
			confDesc, err := img.GetConfig()
			if err != nil {
				t.Fatal(err)
			}
			conf, err := rc.BlobGetOCIConfig(ctx, rf, confDesc)
			if err != nil {
				t.Fatal(err)
			}
			c := conf.GetConfig()
			type runtimeView struct {
				Platform   string
				User       string
				Entrypoint []string
				Cmd        []string
				Labels     map[string]string
			}
			got := runtimeView{c.OS + "/" + c.Architecture, c.Config.User, c.Config.Entrypoint, c.Config.Cmd, c.Config.Labels}
			want := runtimeView{plat, "65532:65532", []string{"/urunner"}, nil, wantLabels}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("image config (-want +got):\n%s", diff)
			}

			layers, err := img.GetLayers()
			if err != nil {
				t.Fatal(err)
			}
			fs := readLayers(t, rc, rf, layers)
			checkRootFiles(t, fs)
			bin := filepath.Join(t.TempDir(), "urunner")
			if err := os.WriteFile(bin, fs["urunner"].data, 0o755); err != nil {
				t.Fatal(err)
			}
			checkStaticELF(t, bin, plat)
			if plat == "linux/amd64" {
				out, err := exec.Command(bin, "--version").CombinedOutput()
				if err != nil {
					t.Fatalf("/urunner --version: %v\n%s", err, out)
				}
				if got, want := strings.TrimSpace(string(out)), "urunner "+imageVersion; got != want {
					t.Errorf("/urunner --version = %q, want %q", got, want)
				}
			}
			checkSBOM(t, rc, rf, desc, bin)
		})
	}

	// The labels and file times come from the commit, never the clock, so
	// a rebuild of the same commit is the same image.
	again := reg.Host + "/urunner:e2e-again"
	makeImage(t, again)
	rf2, err := ref.New(again)
	if err != nil {
		t.Fatal(err)
	}
	idx2, err := rc.ManifestHead(ctx, rf2, regclient.WithManifestRequireDigest())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := idx2.GetDescriptor().Digest, idx.GetDescriptor().Digest; got != want {
		t.Errorf("second make image pushed %s, first %s: the build is not reproducible", got, want)
	}
}

// makeImage runs the README's command against a plain-HTTP registry.
func makeImage(t *testing.T, image string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "make", "-C", root, "image",
		"IMAGE="+image, "IMAGE_INSECURE=1", "VERSION="+imageVersion)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("make image IMAGE=%s (%s):\n%s", image, time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("make image: %v", err)
	}
}

func git(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", root}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func commitTime(t *testing.T) time.Time {
	t.Helper()
	sec, err := strconv.ParseInt(git(t, "log", "-1", "--format=%ct"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(sec, 0).UTC()
}

// platformManifests returns the index's children by "os/arch".
func platformManifests(t *testing.T, idx manifest.Manifest) map[string]descriptor.Descriptor {
	t.Helper()
	list, err := idx.(manifest.Indexer).GetManifestList()
	if err != nil {
		t.Fatal(err)
	}
	children := map[string]descriptor.Descriptor{}
	for _, d := range list {
		if d.Platform == nil {
			t.Fatalf("index entry %s has no platform", d.Digest)
		}
		children[d.Platform.String()] = d
	}
	return children
}

// layerFile is a tar entry of an image layer, content included.
type layerFile struct {
	hdr  *tar.Header
	data []byte
}

// readLayers applies the layers in order into one file tree, keyed by
// path without the leading "/" or a trailing one.
func readLayers(t *testing.T, rc *regclient.RegClient, rf ref.Ref, layers []descriptor.Descriptor) map[string]layerFile {
	t.Helper()
	fs := map[string]layerFile{}
	for _, l := range layers {
		if l.MediaType != mediatype.OCI1LayerGzip {
			t.Fatalf("layer %s is a %s, want %s", l.Digest, l.MediaType, mediatype.OCI1LayerGzip)
		}
		b, err := rc.BlobGet(t.Context(), rf, l)
		if err != nil {
			t.Fatal(err)
		}
		gz, err := gzip.NewReader(b)
		if err != nil {
			t.Fatalf("layer %s: %v", l.Digest, err)
		}
		tr := tar.NewReader(gz)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("layer %s: %s: %v", l.Digest, hdr.Name, err)
			}
			name := strings.Trim(filepath.ToSlash(filepath.Clean("/"+hdr.Name)), "/")
			fs[name] = layerFile{hdr, data}
		}
		_ = b.Close()
	}
	return fs
}

// checkRootFiles asserts what the image holds besides the binary: no
// shell nor any other program, a nonroot user, CA roots, time zones.
func checkRootFiles(t *testing.T, fs map[string]layerFile) {
	t.Helper()
	var executables []string
	for name, f := range fs {
		switch f.hdr.Typeflag {
		case tar.TypeReg:
			if f.hdr.Mode&0o111 != 0 {
				executables = append(executables, name)
			}
		case tar.TypeDir:
		default:
			// A symlink could make /bin/sh out of anything.
			t.Errorf("%s is a tar entry of type %q: want only files and directories", name, f.hdr.Typeflag)
		}
	}
	slices.Sort(executables)
	if diff := cmp.Diff([]string{"urunner"}, executables); diff != "" {
		t.Errorf("executables in the image (-want +got):\n%s", diff)
	}
	if _, ok := fs["bin/sh"]; ok {
		t.Error("the image has /bin/sh")
	}
	if f := fs["urunner"]; f.hdr == nil || f.hdr.Uid != 0 {
		t.Error("/urunner is missing or not owned by root (the user must not be able to replace it)")
	}

	if !strings.Contains(string(fs["etc/passwd"].data), "\nnonroot:x:65532:65532:nonroot:/home/nonroot:") {
		t.Errorf("/etc/passwd names no nonroot user 65532:\n%s", fs["etc/passwd"].data)
	}
	if !strings.Contains(string(fs["etc/group"].data), "\nnonroot:x:65532:") {
		t.Errorf("/etc/group names no nonroot group 65532:\n%s", fs["etc/group"].data)
	}
	if h := fs["home/nonroot"].hdr; h == nil || h.Typeflag != tar.TypeDir || h.Uid != 65532 || h.Gid != 65532 {
		t.Errorf("/home/nonroot: %+v, want a directory owned by 65532:65532", h)
	}
	if h := fs["tmp"].hdr; h == nil || h.Mode != 0o1777 {
		t.Errorf("/tmp: %+v, want a directory with mode 1777", h)
	}

	// Go's crypto/x509 reads this file first on Linux (root_linux.go), so
	// it is what urunner trusts for registries: Mozilla's roots, among
	// them those of the registries users run on (Let's Encrypt for most
	// self-hosted ones, DigiCert for Docker Hub, Amazon for ECR).
	roots := parseCerts(t, fs["etc/ssl/certs/ca-certificates.crt"].data)
	if len(roots) < 100 {
		t.Errorf("/etc/ssl/certs/ca-certificates.crt holds %d certificates, want the Mozilla roots (over 100)", len(roots))
	}
	for _, cn := range []string{"ISRG Root X1", "DigiCert Global Root G2", "Amazon Root CA 1"} {
		if !slices.ContainsFunc(roots, func(c *x509.Certificate) bool { return c.Subject.CommonName == cn && c.IsCA }) {
			t.Errorf("/etc/ssl/certs/ca-certificates.crt lacks the root %q", cn)
		}
	}

	// Maintenance windows name zones (URUNNER_CONF_WINDOW); Go reads
	// them from /usr/share/zoneinfo first.
	rome := fs["usr/share/zoneinfo/Europe/Rome"].data
	if _, err := time.LoadLocationFromTZData("Europe/Rome", rome); err != nil {
		t.Errorf("/usr/share/zoneinfo/Europe/Rome: %v", err)
	}
}

func parseCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("CA bundle: %v", err)
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(data)) > 0 {
		t.Errorf("CA bundle: %d bytes left that are not PEM certificates", len(data))
	}
	return certs
}

// checkStaticELF asserts the binary is for plat's CPU and needs no loader,
// which a scratch root does not have.
func checkStaticELF(t *testing.T, bin, plat string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}[plat]
	if f.Machine != want {
		t.Errorf("/urunner is an ELF for %v, want %v", f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("/urunner has a %v program header: it is dynamically linked", p.Type)
		}
	}
}

// checkSBOM asserts that exactly one SPDX document refers to the platform's
// image (OCI referrers API) and lists the modules linked into the binary
// that the image holds, as its build info records them.
func checkSBOM(t *testing.T, rc *regclient.RegClient, rf ref.Ref, subject descriptor.Descriptor, bin string) {
	t.Helper()
	ctx := t.Context()
	rl, err := rc.ReferrerList(ctx, rf.SetDigest(subject.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	var sboms []descriptor.Descriptor
	for _, d := range rl.Descriptors {
		if d.ArtifactType == "application/spdx+json" {
			sboms = append(sboms, d)
		}
	}
	if len(sboms) != 1 {
		t.Fatalf("referrers of %s: %d SPDX SBOMs (of %d referrers), want 1", subject.Digest, len(sboms), len(rl.Descriptors))
	}
	m, err := rc.ManifestGet(ctx, rf.SetDigest(sboms[0].Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := m.(manifest.Subjecter).GetSubject(); err != nil || s == nil || s.Digest != subject.Digest {
		t.Errorf("SBOM subject = %v (%v), want %s", s, err, subject.Digest)
	}
	layers, err := m.(manifest.Imager).GetLayers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("SBOM layers = %v (%v), want one document", layers, err)
	}
	b, err := rc.BlobGet(ctx, rf, layers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var doc struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name         string `json:"name"`
			VersionInfo  string `json:"versionInfo"`
			ExternalRefs []struct {
				ReferenceType    string `json:"referenceType"`
				ReferenceLocator string `json:"referenceLocator"`
			} `json:"externalRefs"`
		} `json:"packages"`
	}
	if err := json.NewDecoder(b).Decode(&doc); err != nil {
		t.Fatalf("SBOM: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" {
		t.Errorf("SBOM spdxVersion = %q, want SPDX-2.3", doc.SPDXVersion)
	}
	got := map[string]string{}
	for _, p := range doc.Packages {
		for _, r := range p.ExternalRefs {
			if r.ReferenceType == "purl" && strings.HasPrefix(r.ReferenceLocator, "pkg:golang/") {
				got[p.Name] = p.VersionInfo
			}
		}
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{info.Main.Path: imageVersion, "stdlib": info.GoVersion}
	for _, d := range info.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		want[d.Path] = d.Version
	}
	// The CA roots' module is a package of the image, not of the binary.
	const caModule = "golang.org/x/crypto/x509roots/fallback"
	if got[caModule] == "" {
		t.Errorf("SBOM lists no version of %s, the source of the CA roots", caModule)
	}
	delete(got, caModule)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Go packages of the SBOM, against the build info of /urunner (-want +got):\n%s", diff)
	}
}
