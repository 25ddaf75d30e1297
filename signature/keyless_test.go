package signature

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/google/go-cmp/cmp"
	"github.com/sigstore/sigstore-go/pkg/root"
)

// Keyless signing needs Fulcio (a CA issuing short-lived certificates to
// OIDC identities) and a witness of when the signature was made (Rekor or
// a timestamp authority), none of which is reachable here. The tests stand
// in for them with what the verifier sees of them:
//   - a test CA, standing in for Fulcio, issues the signing certificate the
//     way Fulcio does (the identity in the SAN, the OIDC issuer in the
//     Fulcio extension 1.3.6.1.4.1.57264.1.8, ten minutes of validity);
//   - a timestamp authority on loopback speaking RFC 3161 over HTTP, the
//     protocol cosign's --timestamp-server-url talks (the responses made
//     with github.com/digitorus/timestamp, the library sigstore's own
//     timestamp-authority server uses), stands in for the witness;
//   - a trusted_root.json names both, as sigstore's TUF root names the real
//     ones.
//
// The real cosign CLI signs with the certificate (--certificate,
// --certificate-chain) and asks the loopback TSA for the timestamp. These
// policies opt out of the transparency log (WithoutTransparencyLog,
// URUNNER_CONF_SIGNATURE_TLOG=false) and trust a timestamp alone; bundles
// with a log entry, from cosign and a Rekor stand-in, are in tlog_test.go. Not covered: certificate transparency
// SCTs, which sigstore-go verifies offline from the certificate.

const (
	testIssuer  = "https://issuer.example"
	testSubject = "ci@example.com"
)

// fulcioOIDCIssuerV2 is Fulcio's certificate extension holding the OIDC
// issuer, a DER UTF8String: https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md
var fulcioOIDCIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	key := mustECDSA(t, elliptic.P256())
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	return testCA{cert: createCert(t, tmpl, tmpl, key.Public(), key), key: key}
}

// issueSigning issues a Fulcio-like code-signing certificate for key.
func (ca testCA) issueSigning(t *testing.T, key crypto.PublicKey, subject, issuer string) *x509.Certificate {
	t.Helper()
	ext, err := asn1.MarshalWithParams(issuer, "utf8")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial(t),
		NotBefore:       time.Now().Add(-time.Minute),
		NotAfter:        time.Now().Add(10 * time.Minute),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		EmailAddresses:  []string{subject},
		ExtraExtensions: []pkix.Extension{{Id: fulcioOIDCIssuerV2, Value: ext}},
	}
	return createCert(t, tmpl, ca.cert, key, ca.key)
}

// issueTimestamping issues a TSA certificate: the timeStamping extended
// key usage, alone and critical, as RFC 3161 requires.
func (ca testCA) issueTimestamping(t *testing.T, key crypto.PublicKey) *x509.Certificate {
	t.Helper()
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial(t),
		Subject:         pkix.Name{CommonName: "test timestamp authority"},
		NotBefore:       time.Now().Add(-time.Hour),
		NotAfter:        time.Now().Add(24 * time.Hour),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}},
	}
	return createCert(t, tmpl, ca.cert, key, ca.key)
}

func createCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writeCerts(t *testing.T, dir, name string, certs ...*x509.Certificate) string {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// testTSA is an RFC 3161 timestamp authority on loopback.
type testTSA struct {
	url  string
	ca   testCA
	cert *x509.Certificate
}

func startTSA(t *testing.T) testTSA {
	t.Helper()
	ca := newTestCA(t, "test timestamp root")
	key := mustECDSA(t, elliptic.P256())
	cert := ca.issueTimestamping(t, key.Public())
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, err := timestamp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ts := timestamp.Timestamp{
			HashAlgorithm:     req.HashAlgorithm,
			HashedMessage:     req.HashedMessage,
			Time:              time.Now(),
			Nonce:             req.Nonce,
			Policy:            asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 2},
			AddTSACertificate: req.Certificates,
		}
		resp, err := ts.CreateResponseWithOpts(cert, key, crypto.SHA256)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/timestamp-reply")
		_, _ = w.Write(resp)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return testTSA{url: "http://" + ln.Addr().String() + "/api/v1/timestamp", ca: ca, cert: cert}
}

// writeTrustedRoot writes a trusted_root.json trusting ca for signing
// certificates and tsa for timestamps, with sigstore-go's own encoder.
func writeTrustedRoot(t *testing.T, dir string, ca testCA, tsa testTSA) string {
	t.Helper()
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01,
		[]root.CertificateAuthority{&root.FulcioCertificateAuthority{
			Root: ca.cert, ValidityPeriodStart: ca.cert.NotBefore, URI: "https://fulcio.test",
		}},
		nil,
		[]root.TimestampingAuthority{&root.SigstoreTimestampingAuthority{
			Root: tsa.ca.cert, Leaf: tsa.cert, ValidityPeriodStart: tsa.ca.cert.NotBefore, URI: tsa.url,
		}},
		nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// keylessSigner is a cosign key with a certificate from ca for an
// identity: what cosign holds after Fulcio answered.
type keylessSigner struct {
	signer
	cert string
}

func newKeylessSigner(t *testing.T, ca testCA, subject, issuer string) keylessSigner {
	t.Helper()
	key := mustECDSA(t, elliptic.P256())
	s := importSigner(t, key)
	cert := ca.issueSigning(t, key.Public(), subject, issuer)
	return keylessSigner{
		signer: s,
		cert:   writeCerts(t, s.dir, "cert.pem", cert),
	}
}

// signKeyless signs in the bundle format with the certificate, and a
// timestamp from tsaURL unless it is empty.
func (s keylessSigner) signKeyless(t *testing.T, image, tsaURL string, extra ...string) {
	t.Helper()
	// No --certificate-chain: with it cosign v3.1.3 writes the chain into
	// a v0.3 bundle, which the bundle spec forbids and sigstore-go refuses
	// to parse. Fulcio's chain is in the trusted root anyway.
	args := []string{"sign", "--yes", "--key", s.key, "--certificate", s.cert,
		"--allow-http-registry", "--tlog-upload=false", "--use-signing-config=false"}
	if tsaURL != "" {
		args = append(args, "--timestamp-server-url", tsaURL)
	}
	args = append(args, extra...)
	cosign(t, s.dir, append(args, image)...)
}

func TestVerifyKeyless(t *testing.T) {
	fulcio := newTestCA(t, "test fulcio")
	impostorCA := newTestCA(t, "not in the trusted root")
	tsa := startTSA(t)
	trustedRoot := writeTrustedRoot(t, t.TempDir(), fulcio, tsa)
	keyOnly := newSigner(t)

	ci := newKeylessSigner(t, fulcio, testSubject, testIssuer)
	intruder := newKeylessSigner(t, fulcio, "intruder@example.com", testIssuer)
	otherIssuer := newKeylessSigner(t, fulcio, testSubject, "https://other-issuer.example")
	impostor := newKeylessSigner(t, impostorCA, testSubject, testIssuer)

	trustCI := Config{TrustedRootFile: trustedRoot, Identities: []Identity{{Issuer: testIssuer, Subject: testSubject}}, WithoutTransparencyLog: true}
	tests := []struct {
		name   string
		conf   Config
		sign   func(t *testing.T, image string)
		status Status
		by     string
		reason string
	}{
		{
			name:   "the trusted identity, timestamped, is verified",
			conf:   trustCI,
			sign:   func(t *testing.T, image string) { ci.signKeyless(t, image, tsa.url) },
			status: Verified,
			by:     "identity " + testSubject + " (issuer " + testIssuer + ")",
		},
		{
			name: "an identity matched by regexps is verified",
			conf: Config{TrustedRootFile: trustedRoot, Identities: []Identity{
				{Issuer: testIssuer, Subject: "someone@else.example"},
				{IssuerRegexp: `^https://issuer\.example$`, SubjectRegexp: `^[a-z]+@example\.com$`},
			}, WithoutTransparencyLog: true},
			sign:   func(t *testing.T, image string) { ci.signKeyless(t, image, tsa.url) },
			status: Verified,
			by:     "identity " + testSubject + " (issuer " + testIssuer + ")",
		},
		{
			name:   "another subject is invalid",
			conf:   trustCI,
			sign:   func(t *testing.T, image string) { intruder.signKeyless(t, image, tsa.url) },
			status: Invalid,
			reason: "1 signature(s) found, none valid: signed by intruder@example.com (issuer https://issuer.example), not a trusted identity",
		},
		{
			name:   "the subject vouched for by another issuer is invalid",
			conf:   trustCI,
			sign:   func(t *testing.T, image string) { otherIssuer.signKeyless(t, image, tsa.url) },
			status: Invalid,
			reason: "1 signature(s) found, none valid: signed by ci@example.com (issuer https://other-issuer.example), not a trusted identity",
		},
		{
			name:   "a certificate from a CA outside the trusted root is invalid",
			conf:   trustCI,
			sign:   func(t *testing.T, image string) { impostor.signKeyless(t, image, tsa.url) },
			status: Invalid,
			reason: "1 signature(s) found, none valid: keyless: failed to verify leaf certificate: leaf certificate verification failed",
		},
		{
			name:   "a certificate signature without timestamp is invalid",
			conf:   trustCI,
			sign:   func(t *testing.T, image string) { ci.signKeyless(t, image, "") },
			status: Invalid,
			reason: "1 signature(s) found, none valid: keyless signature with no signed timestamp and no transparency log entry: nothing proves the certificate was valid when it signed",
		},
		{
			name: "a keyless signature in the .sig tag format is refused as unsupported",
			conf: trustCI,
			sign: func(t *testing.T, image string) {
				ci.signKeyless(t, image, tsa.url, "--new-bundle-format=false")
			},
			status: Invalid,
			reason: "1 signature(s) found, none valid: keyless signature in the .sig tag format is not supported: sign with cosign's bundle format",
		},
		{
			name:   "a keyless signature under a policy of keys only is invalid",
			conf:   Config{KeyFiles: []string{keyOnly.pub}},
			sign:   func(t *testing.T, image string) { ci.signKeyless(t, image, tsa.url) },
			status: Invalid,
			reason: "1 signature(s) found, none valid: signed keyless (certificate), and no keyless identity is trusted",
		},
		{
			name:   "a key signature under a policy of identities only is invalid",
			conf:   trustCI,
			sign:   func(t *testing.T, image string) { keyOnly.sign(t, bundleFormat, image) },
			status: Invalid,
			reason: "1 signature(s) found, none valid: signed with a key, and no key is trusted",
		},
		{
			name: "a key signature under a policy of keys and identities is verified by the key",
			conf: Config{KeyFiles: []string{keyOnly.pub}, TrustedRootFile: trustedRoot,
				Identities: []Identity{{Issuer: testIssuer, Subject: testSubject}}, WithoutTransparencyLog: true},
			sign:   func(t *testing.T, image string) { keyOnly.sign(t, bundleFormat, image) },
			status: Verified,
			by:     "key " + keyOnly.pub,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := startRegistry(t)
			img := pushImage(t, reg, "team/app", "v1")
			tt.sign(t, imageName(img))
			p, err := LoadPolicy(tt.conf)
			if err != nil {
				t.Fatalf("LoadPolicy: %v", err)
			}
			got, err := p.Verify(t.Context(), client(reg), img)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := Verdict{Status: tt.status, By: tt.by, Reason: tt.reason, Signatures: 1}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
		})
	}
}
