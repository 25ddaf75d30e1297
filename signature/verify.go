package signature

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/types/ref"
)

// Status is what Verify found. Its zero value, Unsigned, refuses: a Verdict
// nobody filled in never lets a digest through.
type Status int

const (
	// Unsigned: no signature for the digest where cosign stores them.
	Unsigned Status = iota
	// Invalid: signatures were found, none valid under the policy.
	Invalid
	// Verified: a signature for the digest verified under the policy.
	Verified
)

func (s Status) String() string {
	switch s {
	case Unsigned:
		return "unsigned"
	case Invalid:
		return "invalid"
	case Verified:
		return "verified"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Verdict is the answer for one digest.
type Verdict struct {
	Status Status
	// By names what verified it: "key <file>" or "identity <subject>
	// (issuer <issuer>)". Empty unless Verified.
	By string
	// Reason says in one short line why the digest is refused, fit for a
	// Kubernetes Event's message. Empty when Verified.
	Reason string
	// Signatures is how many signatures of the digest were examined.
	Signatures int
}

// Verified reports whether the digest may be used.
func (v Verdict) Verified() bool { return v.Status == Verified }

// maxSignatures bounds the signatures examined per digest, and so the
// requests one verification can cost: every cosign sign adds one, and a
// repository anyone may push to could hold thousands.
const maxSignatures = 16

// maxBlobSize bounds a signature payload or bundle read into memory; real
// ones are a few kilobytes.
const maxBlobSize = 1 << 20

// Verify looks for signatures of the digest r names in r's repository and
// checks them against the policy. rc must be configured with the
// registry's credentials and TLS. r must carry a digest (a tag alongside it
// is ignored): the digest is what is verified, never what a tag points to
// now.
//
// The error is for "could not tell" (the registry unreachable or refusing,
// a reference without digest): the caller must treat it as a failed lookup,
// never as a pass nor as a refusal of the digest. A digest that is refused
// is a Verdict, not an error. One case cannot be told: when only the
// registry's referrers endpoint fails, regclient reads the referrers
// fallback tag instead without saying so, and a digest signed only in the
// bundle format comes out Unsigned (refused, never passed).
//
// ctx should carry a deadline: Verify makes a few requests in sequence.
// A Policy is safe for concurrent use.
//
// Cost: one referrers request, then for each signature bundle its manifest
// and blob; if no bundle verifies, one request for the sha256-<hex>.sig tag
// and one per payload layer. See the package tests for the counts.
func (p *Policy) Verify(ctx context.Context, rc *regclient.RegClient, r ref.Ref) (Verdict, error) {
	if r.Digest == "" {
		return Verdict{}, fmt.Errorf("verify signature of %s: reference has no digest", r.CommonName())
	}
	d, err := digest.Parse(r.Digest)
	if err != nil {
		return Verdict{}, fmt.Errorf("verify signature of %s: %w", r.CommonName(), err)
	}
	r = r.SetDigest(d.String())

	var seen []finding
	bundles, err := p.verifyBundles(ctx, rc, r, d)
	if err != nil {
		return Verdict{}, fmt.Errorf("verify signature of %s: %w", r.CommonName(), err)
	}
	if v, ok := verified(bundles); ok {
		return v, nil
	}
	seen = append(seen, bundles...)
	legacy, err := p.verifyLegacy(ctx, rc, r, d, maxSignatures-len(seen))
	if err != nil {
		return Verdict{}, fmt.Errorf("verify signature of %s: %w", r.CommonName(), err)
	}
	if v, ok := verified(legacy); ok {
		v.Signatures += len(seen)
		return v, nil
	}
	seen = append(seen, legacy...)
	return refusal(seen), nil
}

// finding is the outcome of one signature: verified by something, or a
// problem.
type finding struct {
	by      string
	problem string
}

func verified(fs []finding) (Verdict, bool) {
	for i, f := range fs {
		if f.by != "" {
			return Verdict{Status: Verified, By: f.by, Signatures: i + 1}, true
		}
	}
	return Verdict{}, false
}

// refusal sums up the problems of the signatures examined, most frequent
// first, in a line short enough for an Event.
func refusal(fs []finding) Verdict {
	if len(fs) == 0 {
		return Verdict{Status: Unsigned, Reason: "no cosign signature found for the digest"}
	}
	count := map[string]int{}
	var problems []string
	for _, f := range fs {
		if count[f.problem] == 0 {
			problems = append(problems, f.problem)
		}
		count[f.problem]++
	}
	slices.SortStableFunc(problems, func(a, b string) int { return count[b] - count[a] })
	reason := fmt.Sprintf("%d signature(s) found, none valid: %s", len(fs), strings.Join(problems, "; "))
	const maxReason = 300
	if len(reason) > maxReason {
		reason = reason[:maxReason-3] + "..."
	}
	return Verdict{Status: Invalid, Reason: reason, Signatures: len(fs)}
}

// errNotSignature marks an artifact stored beside signatures that is none
// (an attestation, an SBOM): it is skipped, neither verified nor refused.
var errNotSignature = errors.New("not a signature")

// short returns the first line of err, bounded, for a problem.
func short(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	const maxProblem = 160
	if len(s) > maxProblem {
		s = s[:maxProblem-3] + "..."
	}
	return s
}

// shortDigest shortens a digest for a reason: enough to tell two apart.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}
