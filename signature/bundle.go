package signature

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/verify"
)

const (
	// bundleTypePrefix starts the artifact type of a referrer holding a
	// sigstore bundle ("application/vnd.dev.sigstore.bundle.v0.3+json"
	// for cosign v3).
	bundleTypePrefix = "application/vnd.dev.sigstore.bundle"
	// predicateAnnotation is set by cosign on a bundle referrer to the
	// predicate type of the statement inside, which tells signatures from
	// attestations without fetching them.
	predicateAnnotation = "dev.sigstore.bundle.predicateType"
	// signPredicate is the predicate type of `cosign sign` in the bundle
	// format: the statement says "this digest is signed", nothing more.
	signPredicate     = "https://sigstore.dev/cosign/sign/v1"
	inTotoPayloadType = "application/vnd.in-toto+json"
)

// verifyBundles checks the sigstore bundles among the referrers of r.
func (p *Policy) verifyBundles(ctx context.Context, rc *regclient.RegClient, r ref.Ref, d digest.Digest) ([]finding, error) {
	rl, err := rc.ReferrerList(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("list referrers: %w", err)
	}
	var fs []finding
	for _, desc := range rl.Descriptors {
		if !strings.HasPrefix(desc.ArtifactType, bundleTypePrefix) {
			continue
		}
		if pt, ok := desc.Annotations[predicateAnnotation]; ok && pt != signPredicate {
			continue
		}
		if len(fs) == maxSignatures {
			break
		}
		b, err := getBundle(ctx, rc, r.SetDigest(desc.Digest.String()))
		if errors.Is(err, errContent) {
			fs = append(fs, finding{problem: short(err)})
			continue
		}
		if err != nil {
			return nil, err
		}
		f := p.verifyBundle(b, d)
		if errors.Is(f.err, errNotSignature) {
			continue
		}
		fs = append(fs, f.finding)
		if f.by != "" {
			break
		}
	}
	return fs, nil
}

// getBundle reads the sigstore bundle held by the referrer manifest r.
func getBundle(ctx context.Context, rc *regclient.RegClient, r ref.Ref) (*bundle.Bundle, error) {
	m, err := rc.ManifestGet(ctx, r)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, fmt.Errorf("%w: bundle manifest %s listed as referrer is missing", errContent, shortDigest(r.Digest))
	}
	if err != nil {
		return nil, fmt.Errorf("get bundle manifest %s: %w", r.Digest, err)
	}
	img, ok := m.(manifest.Imager)
	if !ok {
		return nil, fmt.Errorf("%w: bundle referrer %s is not an image manifest", errContent, shortDigest(r.Digest))
	}
	layers, err := img.GetLayers()
	if err != nil || len(layers) != 1 || !strings.HasPrefix(layers[0].MediaType, bundleTypePrefix) {
		return nil, fmt.Errorf("%w: bundle referrer %s: want one sigstore bundle layer", errContent, shortDigest(r.Digest))
	}
	raw, err := readBlob(ctx, rc, r, layers[0])
	if err != nil {
		return nil, err
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("%w: bad sigstore bundle: %w", errContent, err)
	}
	return &b, nil
}

// bundleFinding is a finding, or errNotSignature for a bundle to skip.
type bundleFinding struct {
	finding
	err error
}

// verifyBundle checks one bundle: that its statement names d, then its
// signature against the keys or, for a certificate, the keyless
// identities. sigstore-go checks the statement again; checking it here
// first only gives a plainer reason.
func (p *Policy) verifyBundle(b *bundle.Bundle, d digest.Digest) bundleFinding {
	if env := b.GetDsseEnvelope(); env != nil {
		if problem, err := checkStatement(env.GetPayloadType(), env.GetPayload(), d); err != nil || problem != "" {
			return bundleFinding{finding: finding{problem: problem}, err: err}
		}
	}
	want, err := hex.DecodeString(d.Encoded())
	if err != nil {
		return bundleFinding{finding: finding{problem: "bad digest"}}
	}
	artifact := verify.WithArtifactDigest(d.Algorithm().String(), want)

	vm := b.GetVerificationMaterial()
	if vm.GetPublicKey() != nil {
		if len(p.keys) == 0 {
			return bundleFinding{finding: finding{problem: "signed with a key, and no key is trusted"}}
		}
		for _, k := range p.keys {
			for _, v := range k.verifiers {
				if _, err := v.bundle.Verify(b, verify.NewPolicy(artifact, verify.WithKey())); err == nil {
					return bundleFinding{finding: finding{by: "key " + k.name}}
				}
			}
		}
		return bundleFinding{finding: finding{problem: "not signed by a trusted key"}}
	}
	if p.keyless == nil {
		return bundleFinding{finding: finding{problem: "signed keyless (certificate), and no keyless identity is trusted"}}
	}
	opts := make([]verify.PolicyOption, 0, len(p.keyless.identities))
	for _, id := range p.keyless.identities {
		opts = append(opts, verify.WithCertificateIdentity(id))
	}
	res, err := p.keyless.verifier.Verify(b, verify.NewPolicy(artifact, opts...))
	if err != nil {
		return bundleFinding{finding: finding{problem: p.keyless.problem(b, err)}}
	}
	by := "identity"
	if c := res.Signature.Certificate; c != nil {
		by = fmt.Sprintf("identity %s (issuer %s)", c.SubjectAlternativeName, c.Issuer)
	}
	return bundleFinding{finding: finding{by: by}}
}

// checkStatement returns errNotSignature for a statement that is not a
// cosign signature, or a problem when it does not name d.
func checkStatement(payloadType string, payload []byte, d digest.Digest) (string, error) {
	if payloadType != inTotoPayloadType {
		return "", fmt.Errorf("%w: payload type %s", errNotSignature, payloadType)
	}
	var st struct {
		PredicateType string `json:"predicateType"`
		Subject       []struct {
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		return "bad in-toto statement: " + short(err), nil
	}
	if st.PredicateType != signPredicate {
		return "", fmt.Errorf("%w: predicate type %s", errNotSignature, st.PredicateType)
	}
	var other string
	for _, s := range st.Subject {
		got, ok := s.Digest[d.Algorithm().String()]
		if ok && got == d.Encoded() {
			return "", nil
		}
		if ok && other == "" {
			other = d.Algorithm().String() + ":" + got
		}
	}
	if other == "" {
		return "statement names no " + d.Algorithm().String() + " digest", nil
	}
	return "signed for " + shortDigest(other) + ", not this digest", nil
}

// problem says why a keyless bundle failed, in plainer words than
// sigstore-go's where the bundle shows the cause.
func (kl *keyless) problem(b *bundle.Bundle, err error) string {
	var noMatch *verify.ErrNoMatchingCertificateIdentity
	if errors.As(err, &noMatch) {
		// sigstore-go checks the identity last, once the certificate, its
		// chain and the signature have verified.
		if s, ok := certSummary(b); ok {
			return fmt.Sprintf("signed by %s (issuer %s), not a trusted identity", s.SubjectAlternativeName, s.Issuer)
		}
		return "signed by an identity that is not trusted"
	}
	ts, _ := b.Timestamps()
	entries, _ := b.TlogEntries()
	if len(ts) == 0 && len(entries) == 0 {
		return "keyless signature with no signed timestamp and no transparency log entry: nothing proves the certificate was valid when it signed"
	}
	if kl.requireTlog && len(entries) == 0 {
		return "keyless signature with no transparency log entry: the trusted root names a log, and its entry is required (as cosign verify does)"
	}
	return "keyless: " + short(err)
}

func certSummary(b *bundle.Bundle) (certificate.Summary, bool) {
	vc, err := b.VerificationContent()
	if err != nil || vc.Certificate() == nil {
		return certificate.Summary{}, false
	}
	s, err := certificate.SummarizeCertificate(vc.Certificate())
	return s, err == nil
}
