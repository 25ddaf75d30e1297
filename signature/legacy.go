package signature

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"
)

const (
	// simpleSigningType is the media type of a .sig layer: a payload in
	// the "simple signing" format, https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md.
	simpleSigningType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// signatureAnnotation holds the base64 signature of the layer's payload.
	signatureAnnotation = "dev.cosignproject.cosign/signature"
	// certificateAnnotation holds the signing certificate of a keyless
	// signature.
	certificateAnnotation = "dev.sigstore.cosign/certificate"
	// simpleSigningKind is the payload's critical.type for an image.
	simpleSigningKind = "cosign container image signature"
)

// sigTag is the tag under which cosign stores the signatures of d in the
// legacy format: "sha256-<hex>.sig".
func sigTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded() + ".sig"
}

// verifyLegacy checks the payload layers of the tag sha256-<hex>.sig, at
// most limit of them.
func (p *Policy) verifyLegacy(ctx context.Context, rc *regclient.RegClient, r ref.Ref, d digest.Digest, limit int) ([]finding, error) {
	tr := r.SetTag(sigTag(d))
	m, err := rc.ManifestGet(ctx, tr)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get signature tag %s: %w", tr.Tag, err)
	}
	img, ok := m.(manifest.Imager)
	if !ok {
		return []finding{{problem: "tag " + tr.Tag + " is not an image manifest"}}, nil
	}
	layers, err := img.GetLayers()
	if err != nil {
		return []finding{{problem: "tag " + tr.Tag + ": " + short(err)}}, nil
	}
	var fs []finding
	for _, l := range layers {
		if l.MediaType != simpleSigningType {
			continue
		}
		if len(fs) >= limit {
			break
		}
		payload, err := readBlob(ctx, rc, tr, l)
		if errors.Is(err, errContent) {
			fs = append(fs, finding{problem: short(err)})
			continue
		}
		if err != nil {
			return nil, err
		}
		f := p.verifySimpleSigning(payload, l.Annotations, r, d)
		fs = append(fs, f)
		if f.by != "" {
			break
		}
	}
	return fs, nil
}

// simpleSigning is the part of a simple-signing payload that says what was
// signed.
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
}

// verifySimpleSigning checks one payload: that it names d and r's
// repository, then its signature against the keys.
func (p *Policy) verifySimpleSigning(payload []byte, annotations map[string]string, r ref.Ref, d digest.Digest) finding {
	var ss simpleSigning
	if err := json.Unmarshal(payload, &ss); err != nil {
		return finding{problem: "bad simple-signing payload: " + short(err)}
	}
	if ss.Critical.Type != simpleSigningKind {
		return finding{problem: fmt.Sprintf("payload type %q is not an image signature", ss.Critical.Type)}
	}
	if got := ss.Critical.Image.DockerManifestDigest; got != d.String() {
		return finding{problem: "signed for " + shortDigest(got) + ", not this digest"}
	}
	if problem := checkDockerReference(ss.Critical.Identity.DockerReference, r); problem != "" {
		return finding{problem: problem}
	}
	sig, err := base64.StdEncoding.DecodeString(annotations[signatureAnnotation])
	if err != nil || len(sig) == 0 {
		return finding{problem: "bad signature encoding in " + signatureAnnotation}
	}
	for _, k := range p.keys {
		for _, v := range k.verifiers {
			if v.sig.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload)) == nil {
				return finding{by: "key " + k.name}
			}
		}
	}
	if annotations[certificateAnnotation] != "" && p.keyless != nil {
		return finding{problem: "keyless signature in the .sig tag format is not supported: sign with cosign's bundle format"}
	}
	return finding{problem: "not signed by a trusted key"}
}

// checkDockerReference returns a problem when the payload's
// docker-reference names another repository than r's. Only the repository
// counts: cosign writes the repository signed (its registry and path), and
// a tag there would say nothing about the digest.
func checkDockerReference(dockerRef string, r ref.Ref) string {
	if dockerRef == "" {
		return ""
	}
	signed, err := ref.New(dockerRef)
	if err != nil {
		return "bad docker-reference " + dockerRef
	}
	if !ref.EqualRepository(signed, r) {
		return "signed for repository " + repoName(signed) + ", not " + repoName(r)
	}
	return ""
}

func repoName(r ref.Ref) string {
	return strings.TrimSuffix(r.Registry+"/"+r.Repository, "/")
}
