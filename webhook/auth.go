package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
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

// An authenticator checks one request of an endpoint in two steps:
// before the body is read, everything the headers and URL can tell (the
// whole check for a secret sent as is); after, what needs the body (a
// signature). A request is read only once before has passed.
type authenticator interface {
	before(r *http.Request) error
	// needsBody reports whether after reads the body (a signature).
	needsBody() bool
	after(r *http.Request, body []byte) error
}

// An authError is a refusal whose reason the sender may know: how the
// request is malformed, not which secret was wrong.
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }

// noBody is the after step of the authenticators that need no body.
type noBody struct{}

func (noBody) needsBody() bool                   { return false }
func (noBody) after(*http.Request, []byte) error { return nil }

// bearerAuth wants `Authorization: Bearer <secret>`: the distribution
// registry's notifications send it from the endpoint's static `headers`.
type bearerAuth struct {
	noBody
	secret string
}

func (a bearerAuth) before(r *http.Request) error {
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
type headerAuth struct {
	noBody
	secret string
}

func (a headerAuth) before(r *http.Request) error {
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
type pathAuth struct {
	noBody
	secret string
}

func (a pathAuth) before(r *http.Request) error {
	if !secretEqual(r.PathValue("token"), a.secret) {
		return errUnauthenticated
	}
	return nil
}

// signatureHeader carries the generic format's signature:
// "t=<unix seconds>,sha256=<hex HMAC-SHA256 of "<t>." + body>", the
// timestamp signed with the body so that a captured request expires.
const signatureHeader = "X-Urunner-Signature"

// signatureWindow is how far a signature's timestamp may be from the
// receiver's clock, either way; a signature is taken once within it.
const signatureWindow = 5 * time.Minute

// hmacAuth wants signatureHeader to hold a fresh timestamp and the
// HMAC-SHA256 of it and the exact body under the shared key: a captured
// request can be neither altered nor, once taken, replayed.
type hmacAuth struct {
	key  string
	now  func() time.Time
	seen *replays
}

func (*hmacAuth) needsBody() bool { return true }

// before checks the header's form and timestamp, which need no body.
func (a *hmacAuth) before(r *http.Request) error {
	_, _, err := a.parse(r)
	return err
}

func (a *hmacAuth) after(r *http.Request, body []byte) error {
	t, sig, err := a.parse(r)
	if err != nil {
		return err
	}
	if !hmac.Equal(sig, sign(a.key, t, body)) {
		return errUnauthenticated
	}
	if !a.seen.first(hex.EncodeToString(sig), a.now().Add(2*signatureWindow)) {
		return &authError{signatureHeader + ": this signature was taken before (a replayed request); sign each request anew"}
	}
	return nil
}

// parse reads "t=<unix seconds>,sha256=<hex>" and checks the timestamp.
func (a *hmacAuth) parse(r *http.Request) (string, []byte, error) {
	v := strings.TrimSpace(r.Header.Get(signatureHeader))
	if strings.HasPrefix(v, "sha256=") {
		return "", nil, &authError{signatureHeader + ": the unstamped form sha256=<hex> is no longer accepted; send t=<unix seconds>,sha256=<hex HMAC-SHA256 of \"<t>.\" followed by the body>"}
	}
	ts, mac, ok := strings.Cut(v, ",")
	ts, okT := strings.CutPrefix(ts, "t=")
	mac, okM := strings.CutPrefix(mac, "sha256=")
	sig, err := hex.DecodeString(mac)
	if !ok || !okT || !okM || err != nil || len(sig) != sha256.Size {
		return "", nil, errUnauthenticated
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", nil, errUnauthenticated
	}
	if d := a.now().Unix() - sec; d > int64(signatureWindow/time.Second) || d < -int64(signatureWindow/time.Second) {
		return "", nil, &authError{fmt.Sprintf("%s: timestamp t=%d is %d s from the receiver's clock, more than %s: sign with the current time (and keep clocks in sync)", signatureHeader, sec, max(d, -d), signatureWindow)}
	}
	return ts, sig, nil
}

// sign returns the HMAC-SHA256 of "<t>." and body under key.
func sign(key, t string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(t + "."))
	m.Write(body)
	return m.Sum(nil)
}

// Signature returns the value of the X-Urunner-Signature header for body
// sent at t, for senders of the generic format written in Go.
func Signature(key string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",sha256=" + hex.EncodeToString(sign(key, ts, body))
}

// replays remembers the signatures taken until they expire, so that each
// is taken once. Only authenticated requests add to it.
type replays struct {
	mu   sync.Mutex
	seen map[string]time.Time // signature → when it may be forgotten
}

func newReplays() *replays { return &replays{seen: map[string]time.Time{}} }

// first records sig until expires and reports whether it is new.
func (r *replays) first(sig string, expires time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for s, exp := range r.seen {
		if now.After(exp) {
			delete(r.seen, s)
		}
	}
	if _, ok := r.seen[sig]; ok {
		return false
	}
	r.seen[sig] = expires
	return true
}
