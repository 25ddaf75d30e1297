package signature

import (
	"crypto"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadPolicyAcceptsPublicKeys(t *testing.T) {
	rsaKey := mustRSA(t, 2048)
	pkcs1 := filepath.Join(t.TempDir(), "rsa.pub")
	if err := os.WriteFile(pkcs1, pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)}), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file string
	}{
		{"ECDSA P-256", writePublicKey(t, mustECDSA(t, elliptic.P256()).Public())},
		{"ECDSA P-384", writePublicKey(t, mustECDSA(t, elliptic.P384()).Public())},
		{"ECDSA P-521", writePublicKey(t, mustECDSA(t, elliptic.P521()).Public())},
		{"Ed25519", writePublicKey(t, mustEd25519(t).Public())},
		{"RSA 3072", writePublicKey(t, mustRSA(t, 3072).Public())},
		{"RSA in PKCS #1", pkcs1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := LoadPolicy(Config{KeyFiles: []string{tt.file}})
			if err != nil {
				t.Fatalf("LoadPolicy: %v", err)
			}
			if len(p.keys) != 1 || p.keys[0].name != tt.file {
				t.Errorf("keys = %+v, want one named %s", p.keys, tt.file)
			}
		})
	}
}

// Bad configuration is refused at load, naming the file or identity at
// fault, so that no run starts with a policy that could never verify.
func TestLoadPolicyErrorsNameTheCulprit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	good := writePublicKey(t, mustECDSA(t, elliptic.P256()).Public())
	twoKeys := func() string {
		a, _ := os.ReadFile(good)
		return write("two.pub", string(a)+string(a))
	}()
	privDER, err := x509.MarshalPKCS8PrivateKey(mustECDSA(t, elliptic.P256()))
	if err != nil {
		t.Fatal(err)
	}
	private := write("cosign.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})))
	root := write("trusted_root.json", "{not json")

	tests := []struct {
		name string
		conf Config
		want []string // substrings of the error
	}{
		{"nothing to verify with", Config{}, []string{"no key files and no keyless identities"}},
		{"missing key file", Config{KeyFiles: []string{good, filepath.Join(dir, "nope.pub")}},
			[]string{"signature key file " + filepath.Join(dir, "nope.pub"), "no such file"}},
		{"not PEM", Config{KeyFiles: []string{write("text.pub", "ssh-ed25519 AAAA")}},
			[]string{"signature key file " + filepath.Join(dir, "text.pub"), "no PEM block"}},
		{"a private key", Config{KeyFiles: []string{private}},
			[]string{"signature key file " + private, "PRIVATE KEY"}},
		{"two keys in one file", Config{KeyFiles: []string{twoKeys}},
			[]string{"signature key file " + twoKeys, "more than one PEM block"}},
		{"RSA too short", Config{KeyFiles: []string{writePublicKeyAs(t, dir, "short.pub", mustRSA(t, 1024).Public())}},
			[]string{"signature key file " + filepath.Join(dir, "short.pub"), "1024"}},
		{"ECDSA P-224", Config{KeyFiles: []string{writePublicKeyAs(t, dir, "p224.pub", mustECDSA(t, elliptic.P224()).Public())}},
			[]string{"signature key file " + filepath.Join(dir, "p224.pub"), "curve"}},
		{"identities without trusted root", Config{Identities: []Identity{{Issuer: "https://accounts.example", Subject: "ci@example.com"}}},
			[]string{"keyless identities need a trusted root file"}},
		{"trusted root without identities", Config{KeyFiles: []string{good}, TrustedRootFile: root},
			[]string{"signature trusted root " + root, "no keyless identities"}},
		{"trusted root not JSON", Config{TrustedRootFile: root, Identities: []Identity{{Issuer: "https://accounts.example", Subject: "ci@example.com"}}},
			[]string{"signature trusted root " + root}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := LoadPolicy(tt.conf)
			if err == nil {
				t.Fatalf("LoadPolicy = %+v, nil; want an error", p)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCertificateIdentityWantsOneOfEach(t *testing.T) {
	tests := []struct {
		name string
		id   Identity
		want string // substring of the error, "" for none
	}{
		{"issuer and subject", Identity{Issuer: "https://token.actions.githubusercontent.com", Subject: "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main"}, ""},
		{"regexps", Identity{IssuerRegexp: `^https://accounts\.example$`, SubjectRegexp: `@example\.com$`}, ""},
		{"no issuer", Identity{Subject: "ci@example.com"}, "want exactly one of issuer and issuer regexp"},
		{"issuer twice", Identity{Issuer: "a", IssuerRegexp: "a", Subject: "ci@example.com"}, "want exactly one of issuer and issuer regexp"},
		{"no subject", Identity{Issuer: "https://accounts.example"}, "want exactly one of subject and subject regexp"},
		{"bad regexp", Identity{Issuer: "https://accounts.example", SubjectRegexp: "(["}, `regexp "(["`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := certificateIdentity(tt.id)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("certificateIdentity: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("certificateIdentity error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func writePublicKeyAs(t *testing.T, dir, name string, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// The verifier stays a library of the decision, not of the cluster: the
// lead wires it in, and it must not pull Kubernetes or urunner's other
// layers with it.
func TestSignatureImportsNoClusterNorOtherLayer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "k8s.io/klog/") {
			// A logging library (certificate-transparency-go's, through
			// sigstore-go), not Kubernetes; client-go has it in the binary
			// already.
			continue
		}
		for _, bad := range []string{"k8s.io/", "github.com/urunner/urunner/kube", "github.com/urunner/urunner/state", "github.com/urunner/urunner/registry"} {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("package signature depends on %s", dep)
			}
		}
	}
}
