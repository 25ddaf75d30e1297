package signature

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	sigsig "github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// Config is what a user writes down: the files of the trusted public keys
// and, for keyless signatures, a trusted root and the identities allowed to
// sign. A digest passes when one of its signatures verifies under any key
// or any identity.
type Config struct {
	// KeyFiles are PEM public keys ("PUBLIC KEY" or "RSA PUBLIC KEY"), one
	// per file, as `cosign generate-key-pair` writes cosign.pub: ECDSA
	// P-256, P-384 or P-521, Ed25519, or RSA of 2048, 3072 or 4096 bits.
	KeyFiles []string
	// TrustedRootFile is a sigstore trusted root (trusted_root.json, as
	// `cosign trusted-root create` writes it or sigstore's TUF repository
	// serves it): the certificate authorities that issue signing
	// certificates, and the transparency logs and timestamp authorities
	// that witness when a signature was made. Required with Identities.
	TrustedRootFile string
	// Identities are the certificate identities allowed to sign keyless.
	Identities []Identity
	// WithoutTransparencyLog is the explicit opt-out of the transparency
	// log: a keyless signature then needs a signed timestamp from a
	// timestamp authority of the trusted root, and log entries are not
	// checked. By default, as `cosign verify`, a keyless signature must
	// carry an entry of a log the trusted root names.
	WithoutTransparencyLog bool
}

// Identity is a keyless signer: the OIDC issuer that vouched for it and
// the subject (an email, a workflow URI) its certificate names, each
// matched exactly or by a regular expression (Go syntax, unanchored like
// cosign's --certificate-identity-regexp: anchor it with ^ and $).
type Identity struct {
	Issuer        string
	IssuerRegexp  string
	Subject       string
	SubjectRegexp string
}

// String names the identity as a user wrote it.
func (id Identity) String() string {
	issuer, subject := id.Issuer, id.Subject
	if issuer == "" {
		issuer = "~" + id.IssuerRegexp
	}
	if subject == "" {
		subject = "~" + id.SubjectRegexp
	}
	return subject + " (issuer " + issuer + ")"
}

// Policy verifies signatures; LoadPolicy makes one.
type Policy struct {
	keys    []trustedKey
	keyless *keyless
}

// trustedKey is one public key and the ways cosign signs with it.
type trustedKey struct {
	name string // the file it came from, to say which key verified
	// verifiers hold the key's default sigstore algorithm first, then the
	// variants cosign has used with the same key (see keyVerifiers), each
	// wrapped for sigstore-go's bundle verification.
	verifiers []keyVerifier
}

type keyVerifier struct {
	sig    sigsig.Verifier
	bundle *verify.Verifier
}

type keyless struct {
	identities []verify.CertificateIdentity
	names      []string
	verifier   *verify.Verifier
	// requireTlog: a signature needs a transparency log entry.
	requireTlog bool
}

// LoadPolicy reads the key files and the trusted root of c. Errors name
// the file or identity at fault.
func LoadPolicy(c Config) (*Policy, error) {
	if len(c.KeyFiles) == 0 && len(c.Identities) == 0 {
		return nil, errors.New("signature policy: no key files and no keyless identities: nothing could verify a signature")
	}
	p := &Policy{}
	for _, file := range c.KeyFiles {
		k, err := loadKey(file)
		if err != nil {
			return nil, err
		}
		p.keys = append(p.keys, k)
	}
	if c.TrustedRootFile != "" || len(c.Identities) > 0 {
		kl, err := loadKeyless(c.TrustedRootFile, c.Identities, !c.WithoutTransparencyLog)
		if err != nil {
			return nil, err
		}
		p.keyless = kl
	}
	return p, nil
}

func loadKey(file string) (trustedKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return trustedKey{}, fmt.Errorf("signature key file %s: %w", file, err)
	}
	block, rest := pem.Decode(b)
	if block == nil {
		return trustedKey{}, fmt.Errorf("signature key file %s: no PEM block: want a PEM public key such as cosign.pub", file)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return trustedKey{}, fmt.Errorf("signature key file %s: more than one PEM block: want one public key per file", file)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pem.EncodeToMemory(block))
	if err != nil {
		return trustedKey{}, fmt.Errorf("signature key file %s: %w", file, err)
	}
	//nolint:staticcheck // The one check of key sizes and curves sigstore offers.
	if err := cryptoutils.ValidatePubKey(pub); err != nil {
		return trustedKey{}, fmt.Errorf("signature key file %s: %w", file, err)
	}
	vs, err := keyVerifiers(pub)
	if err != nil {
		return trustedKey{}, fmt.Errorf("signature key file %s: %w", file, err)
	}
	k := trustedKey{name: file}
	for _, v := range vs {
		bv, err := bundleKeyVerifier(v)
		if err != nil {
			return trustedKey{}, fmt.Errorf("signature key file %s: %w", file, err)
		}
		k.verifiers = append(k.verifiers, keyVerifier{sig: v, bundle: bv})
	}
	return k, nil
}

// keyVerifiers returns the verifiers of pub: sigstore's default algorithm
// for the key first (SHA-384 for P-384, pure Ed25519, ...), then the other
// ways cosign signs with the same key: pre-hashed Ed25519 (Ed25519ph,
// what cosign v3 uses for Ed25519 keys in both formats) and SHA-256 with
// any ECDSA curve (what older cosign releases used whatever the curve).
// Each is a signature by the holder of the private key over the same
// payload, so accepting all of them trusts nothing more.
func keyVerifiers(pub crypto.PublicKey) ([]sigsig.Verifier, error) {
	def, err := sigsig.LoadDefaultVerifier(pub)
	if err != nil {
		return nil, err
	}
	vs := []sigsig.Verifier{def}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			v, err := sigsig.LoadECDSAVerifier(k, crypto.SHA256)
			if err != nil {
				return nil, err
			}
			vs = append(vs, v)
		}
	case ed25519.PublicKey:
		v, err := sigsig.LoadDefaultVerifier(k, options.WithED25519ph())
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, nil
}

// bundleKeyVerifier verifies sigstore bundles signed by v's key. A key
// signature needs no timestamp: a key is trusted until the user removes
// it, unlike a short-lived certificate.
func bundleKeyVerifier(v sigsig.Verifier) (*verify.Verifier, error) {
	key := root.NewExpiringKey(v, time.Time{}, time.Time{})
	material := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
		// The bundle's key hint is the signer's claim; the signature check
		// is what decides, so every bundle is tried against this key.
		return key, nil
	})
	return verify.NewVerifier(material, verify.WithNoObserverTimestamps())
}

// ErrNoTransparencyLog is returned by LoadPolicy when a transparency log
// entry is required and the trusted root names no log to check it with.
var ErrNoTransparencyLog = errors.New("names no transparency log, so no log entry can be required")

func loadKeyless(file string, ids []Identity, requireTlog bool) (*keyless, error) {
	if file == "" {
		return nil, errors.New("signature policy: keyless identities need a trusted root file (trusted_root.json)")
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("signature trusted root %s: no keyless identities: say which issuer and subject may sign", file)
	}
	tr, err := root.NewTrustedRootFromPath(file)
	if err != nil {
		return nil, fmt.Errorf("signature trusted root %s: %w", file, err)
	}
	if len(tr.FulcioCertificateAuthorities()) == 0 {
		return nil, fmt.Errorf("signature trusted root %s: no certificate authorities: keyless certificates could not be trusted", file)
	}
	opts, err := witnessOptions(tr, requireTlog)
	if err != nil {
		return nil, fmt.Errorf("signature trusted root %s: %w", file, err)
	}
	if len(tr.CTLogs()) > 0 {
		// As cosign verify: a root that names certificate transparency logs
		// means certificates must carry their signed timestamp.
		opts = append(opts, verify.WithSignedCertificateTimestamps(1))
	}
	v, err := verify.NewVerifier(tr, opts...)
	if err != nil {
		return nil, fmt.Errorf("signature trusted root %s: %w", file, err)
	}
	kl := &keyless{verifier: v, requireTlog: requireTlog}
	for i, id := range ids {
		ci, err := certificateIdentity(id)
		if err != nil {
			return nil, fmt.Errorf("signature keyless identity %d (%s): %w", i+1, id, err)
		}
		kl.identities = append(kl.identities, ci)
		kl.names = append(kl.names, id.String())
	}
	return kl, nil
}

// witnessOptions say what must witness a keyless signature. A signing
// certificate lives minutes: a signed timestamp or a log entry's
// integrated time must show it signed within them, as cosign verify
// requires. With requireTlog the bundle must also carry an entry of a
// transparency log of tr (its inclusion proof and signed entry timestamp
// checked offline, nothing fetched), so that a signature made with a
// stolen identity is publicly visible: the log's time then counts as a
// witness too, as for the bundles `cosign sign` makes with Rekor.
// Without it, log entries are not checked and only a timestamp
// authority's timestamp counts.
func witnessOptions(tr *root.TrustedRoot, requireTlog bool) ([]verify.VerifierOption, error) {
	if requireTlog {
		if len(tr.RekorLogs()) == 0 {
			return nil, ErrNoTransparencyLog
		}
		return []verify.VerifierOption{verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1)}, nil
	}
	if len(tr.TimestampingAuthorities()) == 0 {
		return nil, errors.New("no timestamp authorities, and the transparency log is not required: nothing could prove when a short-lived certificate signed")
	}
	return []verify.VerifierOption{verify.WithSignedTimestamps(1)}, nil
}

func certificateIdentity(id Identity) (verify.CertificateIdentity, error) {
	if (id.Issuer == "") == (id.IssuerRegexp == "") {
		return verify.CertificateIdentity{}, errors.New("want exactly one of issuer and issuer regexp")
	}
	if (id.Subject == "") == (id.SubjectRegexp == "") {
		return verify.CertificateIdentity{}, errors.New("want exactly one of subject and subject regexp")
	}
	for _, re := range []string{id.IssuerRegexp, id.SubjectRegexp} {
		if _, err := regexp.Compile(re); err != nil {
			return verify.CertificateIdentity{}, fmt.Errorf("regexp %q: %w", re, err)
		}
	}
	return verify.NewShortCertificateIdentity(id.Issuer, id.IssuerRegexp, id.Subject, id.SubjectRegexp)
}
