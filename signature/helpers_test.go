package signature

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	v1 "github.com/regclient/regclient/types/oci/v1"
	"github.com/regclient/regclient/types/ref"

	"github.com/urunner/urunner/e2e/testground"
)

// cosignBin is the real cosign CLI, built by hack/tools.sh cosign.
func cosignBin(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", ".cache", "bin", "cosign"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("cosign is missing: run hack/tools.sh cosign (make test does): %v", err)
	}
	return bin
}

// cosign runs the cosign CLI offline: its home, where it would cache TUF
// metadata and read registry logins, is a fresh directory, and a password
// for its encrypted keys is set.
func cosign(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), cosignBin(t), args...)
	cmd.Dir = dir
	cmd.Env = []string{
		"HOME=" + dir,
		"PATH=" + os.Getenv("PATH"),
		"COSIGN_PASSWORD=test-password",
		"TUF_ROOT=" + filepath.Join(dir, ".sigstore"),
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// signer is a cosign key pair on disk.
type signer struct {
	dir, key, pub string
}

// newSigner makes a key pair with cosign generate-key-pair (ECDSA P-256).
func newSigner(t *testing.T) signer {
	t.Helper()
	dir := t.TempDir()
	cosign(t, dir, "generate-key-pair", "--output-key-prefix", "cosign")
	return signer{dir: dir, key: filepath.Join(dir, "cosign.key"), pub: filepath.Join(dir, "cosign.pub")}
}

// importSigner makes a key pair of the given type with Go's crypto and
// hands the private key to cosign import-key-pair, which writes it in
// cosign's own format (and cosign's view of the public key).
func importSigner(t *testing.T, priv crypto.Signer) signer {
	t.Helper()
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(in, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cosign(t, dir, "import-key-pair", "--key", in, "--output-key-prefix", "cosign")
	return signer{dir: dir, key: filepath.Join(dir, "cosign.key"), pub: filepath.Join(dir, "cosign.pub")}
}

// format is where cosign stores a signature.
type format string

const (
	// bundleFormat: cosign v3's default, a sigstore bundle as OCI 1.1
	// referrer.
	bundleFormat format = "bundle"
	// sigTagFormat: the sha256-<hex>.sig tag of cosign v2, kept by v3
	// under --new-bundle-format=false.
	sigTagFormat format = "sig tag"
)

// sign signs image (host/repo@digest) with s, offline: no transparency
// log, no TUF signing config.
func (s signer) sign(t *testing.T, f format, image string) {
	t.Helper()
	args := []string{"sign", "--yes", "--key", s.key, "--allow-http-registry",
		"--tlog-upload=false", "--use-signing-config=false"}
	if f == sigTagFormat {
		args = append(args, "--new-bundle-format=false")
	}
	cosign(t, s.dir, append(args, image)...)
}

func startRegistry(t *testing.T) *testground.Registry {
	t.Helper()
	r, err := testground.StartRegistry(testground.RegistryOptions{})
	if err != nil {
		t.Fatalf("StartRegistry: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// pushImage pushes an image to repo on reg and returns its reference by
// digest.
func pushImage(t *testing.T, reg *testground.Registry, repo, seed string) ref.Ref {
	t.Helper()
	d, err := reg.PushImage(t.Context(), repo+":latest", seed)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ref.New(reg.Host + "/" + repo + "@" + d)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// client is a regclient client as urunner configures one for a plain-HTTP
// registry.
func client(reg *testground.Registry) *regclient.RegClient {
	return regclient.New(
		regclient.WithConfigHost(config.Host{Name: reg.Host, TLS: config.TLSDisabled}),
		regclient.WithRetryLimit(2),
	)
}

func loadPolicy(t testing.TB, keyFiles ...string) *Policy {
	t.Helper()
	p, err := LoadPolicy(Config{KeyFiles: keyFiles})
	if err != nil {
		t.Fatalf("LoadPolicy: %v", err)
	}
	return p
}

// writePublicKey writes pub as a PEM "PUBLIC KEY" file.
func writePublicKey(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "key.pub")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func mustECDSA(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRSA(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEd25519(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pushImageTag pushes an image tagged repoTag and returns its reference by
// digest.
func pushImageTag(t *testing.T, reg *testground.Registry, repoTag, seed string) ref.Ref {
	t.Helper()
	d, err := reg.PushImage(t.Context(), repoTag, seed)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ref.New(reg.Host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	return r.SetDigest(d)
}

// sigTagOf is the .sig tag of img's digest, as cosign names it.
func sigTagOf(img ref.Ref) string {
	return strings.Replace(img.Digest, ":", "-", 1) + ".sig"
}

func getManifest(t *testing.T, rc *regclient.RegClient, r ref.Ref) manifest.Manifest {
	t.Helper()
	m, err := rc.ManifestGet(t.Context(), r)
	if err != nil {
		t.Fatalf("get manifest %s: %v", r.CommonName(), err)
	}
	return m
}

func putManifest(t *testing.T, rc *regclient.RegClient, r ref.Ref, orig any) {
	t.Helper()
	m, err := manifest.New(manifest.WithOrig(orig))
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.ManifestPut(t.Context(), r, m); err != nil {
		t.Fatalf("put manifest %s: %v", r.CommonName(), err)
	}
}

func referrers(t *testing.T, rc *regclient.RegClient, img ref.Ref) []descriptor.Descriptor {
	t.Helper()
	rl, err := rc.ReferrerList(t.Context(), img)
	if err != nil {
		t.Fatal(err)
	}
	return rl.Descriptors
}

// onlyReferrer returns the one referrer manifest of img, cosign's bundle
// signature, and its reference.
func onlyReferrer(t *testing.T, rc *regclient.RegClient, img ref.Ref) (v1.Manifest, ref.Ref) {
	t.Helper()
	ds := referrers(t, rc, img)
	if len(ds) != 1 {
		t.Fatalf("%s has %d referrers, want 1", img.CommonName(), len(ds))
	}
	r := img.SetDigest(ds[0].Digest.String())
	m, ok := getManifest(t, rc, r).GetOrig().(v1.Manifest)
	if !ok {
		t.Fatalf("referrer %s is not an OCI manifest", r.CommonName())
	}
	return m, r
}

// putReferrer pushes m by its digest in img's repository.
func putReferrer(t *testing.T, rc *regclient.RegClient, img ref.Ref, m v1.Manifest) {
	t.Helper()
	mm, err := manifest.New(manifest.WithOrig(m))
	if err != nil {
		t.Fatal(err)
	}
	r := img.SetDigest(mm.GetDescriptor().Digest.String())
	if err := rc.ManifestPut(t.Context(), r, mm); err != nil {
		t.Fatalf("put referrer %s: %v", r.CommonName(), err)
	}
}

func imageName(r ref.Ref) string {
	return fmt.Sprintf("%s/%s@%s", r.Registry, r.Repository, r.Digest)
}
