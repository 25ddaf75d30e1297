// Package signature tells whether an image digest carries a valid cosign
// signature under a user's policy: trusted public keys, and optionally
// keyless identities (a certificate issuer and subject) under a trusted root.
//
// It finds signatures where cosign stores them, in the image's own
// repository:
//   - as OCI 1.1 referrers holding a sigstore bundle (a DSSE envelope over an
//     in-toto statement whose subject is the digest), which cosign v3 writes
//     by default; regclient falls back to the referrers tag sha256-<hex> on
//     registries without the referrers API;
//   - under the tag sha256-<hex>.sig (a manifest whose layers are
//     simple-signing payloads, each signed in its
//     dev.cosignproject.cosign/signature annotation), which cosign v2 writes
//     by default and v3 with --new-bundle-format=false.
//
// The cryptography is sigstore's (github.com/sigstore/sigstore-go and
// github.com/sigstore/sigstore); this package only finds the signatures,
// checks that they name the digest asked about, and says why a digest is
// refused in words fit for a Kubernetes Event.
package signature
