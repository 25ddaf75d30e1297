package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
)

// errUnauthenticated is every authentication failure: the answer never
// says which part was wrong.
var errUnauthenticated = errors.New("unauthenticated")

// secretEqual compares in constant time, length included: both sides are
// hashed first, so a wrong guess learns nothing from the timing.
func secretEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// An authenticator checks one request of an endpoint; body is nil when it
// is called before the body is read.
type authenticator interface {
	// needsBody reports whether the check reads the body (a signature).
	needsBody() bool
	check(r *http.Request, body []byte) error
}

// bearerAuth wants `Authorization: Bearer <secret>`: the distribution
// registry's notifications send it from the endpoint's static `headers`.
type bearerAuth struct{ secret string }

func (bearerAuth) needsBody() bool { return false }

func (a bearerAuth) check(r *http.Request, _ []byte) error {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || !secretEqual(strings.TrimSpace(token), a.secret) {
		return errUnauthenticated
	}
	return nil
}

// headerAuth wants the secret as the whole Authorization header, as
// Harbor's "Auth Header" and GitLab's registry notification secret send
// it; "Bearer <secret>" is accepted too, since people type that in
// Harbor's field.
type headerAuth struct{ secret string }

func (headerAuth) needsBody() bool { return false }

func (a headerAuth) check(r *http.Request, _ []byte) error {
	v := strings.TrimSpace(r.Header.Get("Authorization"))
	plain := secretEqual(v, a.secret)
	bearer := secretEqual(v, "Bearer "+a.secret)
	if !plain && !bearer {
		return errUnauthenticated
	}
	return nil
}

// pathAuth wants the secret as the last element of the URL path. Docker
// Hub's webhooks carry no header and no signature: the URL is the only
// secret a Docker Hub webhook can have.
type pathAuth struct{ secret string }

func (pathAuth) needsBody() bool { return false }

func (a pathAuth) check(r *http.Request, _ []byte) error {
	if !secretEqual(r.PathValue("token"), a.secret) {
		return errUnauthenticated
	}
	return nil
}

// signatureHeader carries the generic format's HMAC-SHA256 of the body,
// as GitHub's X-Hub-Signature-256 does: "sha256=<hex>".
const signatureHeader = "X-Urunner-Signature"

// hmacAuth wants signatureHeader to hold the HMAC-SHA256 of the exact
// body under the shared key: a captured request cannot be altered.
type hmacAuth struct{ key string }

func (hmacAuth) needsBody() bool { return true }

func (a hmacAuth) check(r *http.Request, body []byte) error {
	got, ok := strings.CutPrefix(strings.TrimSpace(r.Header.Get(signatureHeader)), "sha256=")
	sig, err := hex.DecodeString(got)
	if !ok || err != nil {
		return errUnauthenticated
	}
	if !hmac.Equal(sig, sign(a.key, body)) {
		return errUnauthenticated
	}
	return nil
}

// sign returns the HMAC-SHA256 of body under key.
func sign(key string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return m.Sum(nil)
}

// Signature returns the value of the X-Urunner-Signature header for body,
// for senders of the generic format written in Go.
func Signature(key string, body []byte) string {
	return "sha256=" + hex.EncodeToString(sign(key, body))
}
