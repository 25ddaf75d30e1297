// Package signature tells whether an image digest carries a valid cosign
// signature under a user's policy: trusted public keys and, optionally,
// keyless identities (an OIDC issuer and a certificate subject) under a
// sigstore trusted root. It fetches nothing but the signatures, from the
// registry, with the caller's regclient client: keyless verification is
// offline, from the proofs the signature carries and the keys of the
// trusted root.
//
// Signatures are looked for where cosign stores them, in the image's own
// repository:
//   - as OCI 1.1 referrers holding a sigstore bundle (a DSSE envelope over
//     an in-toto statement of predicate https://sigstore.dev/cosign/sign/v1
//     whose subject is the digest), which cosign v3 writes by default;
//     regclient falls back to the referrers tag sha256-<hex> on registries
//     without the referrers API. Key-signed and keyless bundles are
//     verified. Attestations (other predicates) are not signatures and
//     are skipped.
//   - under the tag sha256-<hex>.sig: a manifest whose layers are
//     simple-signing payloads, each signed in its
//     dev.cosignproject.cosign/signature annotation, which cosign v2 writes
//     by default and v3 with --new-bundle-format=false. Key-signed ones are
//     verified; keyless ones in this format are refused as unsupported.
//
// A payload must name the digest verified (critical.image.
// docker-manifest-digest, or the statement's subject) and, when it says
// one, its repository (critical.identity.docker-reference).
//
// A keyless bundle must carry an entry of a transparency log the trusted
// root names (its signed entry timestamp and inclusion proof, checked
// offline), as cosign verify requires, unless Config.WithoutTransparencyLog
// opts out; then a timestamp authority's signed timestamp must show when
// the short-lived certificate signed.
//
// The cryptography is sigstore's: github.com/sigstore/sigstore for keys
// and simple-signing payloads, github.com/sigstore/sigstore-go for bundles,
// certificates and timestamps. This package finds signatures, checks what
// they claim to sign, and says why a digest is refused in words fit for a
// Kubernetes Event.
package signature
