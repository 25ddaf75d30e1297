package registry

import (
	"cmp"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/regclient/regclient/types/errs"
)

// Budget is what the Resolver spent on one registry with one set of
// credentials, and what the registry said is left of its rate limit. Every
// request of the registry's clients counts: lookups, change context,
// platform children, signatures, and the token service's requests made for
// them (which may go to another host, such as auth.docker.io).
type Budget struct {
	// Registry is the registry as images name it ("docker.io").
	Registry string
	// Credential names the credentials when a workload's pull secret was
	// used ("shop/regcred", the first Secret seen with them); "" for the
	// registry's configured credentials, or none.
	Credential string

	ManifestHeads int
	ManifestGets  int
	BlobGets      int
	// Tokens counts the requests to the token service.
	Tokens int
	// Other counts the rest: the /v2/ ping, referrers, tag lists, blob
	// HEADs.
	Other int

	// RateLimit is the registry's RateLimit-Limit and the lowest
	// RateLimit-Remaining it sent in the run (answers to concurrent
	// requests arrive in any order: the lowest is the latest state of the
	// window); nil when it sent none.
	RateLimit *RateLimit
	// Limited counts 429 answers; RetryAfter is the longest Retry-After
	// one of them asked for.
	Limited    int
	RetryAfter time.Duration
}

// Pulls is what Docker Hub counts against its rate limit: manifest GETs;
// HEADs, blobs and tokens do not count. Other registries count their own
// way, but a manifest GET is what every one of them calls a pull.
func (b Budget) Pulls() int { return b.ManifestGets }

// Requests is every request sent.
func (b Budget) Requests() int {
	return b.ManifestHeads + b.ManifestGets + b.BlobGets + b.Tokens + b.Other
}

// RateLimit is a registry's rate limit answer (the IETF draft Docker Hub
// follows: "RateLimit-Limit: 100;w=21600", "RateLimit-Remaining: 76;w=21600").
type RateLimit struct {
	Limit, Remaining int
	// Window is the limit's window; 0 when the registry did not say.
	Window time.Duration
}

// budgetKey is one registry and credentials, as Budget names them.
type budgetKey struct{ registry, credential string }

// requestKind is a request as a Budget counts it.
type requestKind int

const (
	kindOther requestKind = iota
	kindManifestHead
	kindManifestGet
	kindBlobGet
	kindToken
)

// kindOf classifies a request of registry's client. A request outside the
// registry's /v2/ API, or to another host, is its token service's.
func kindOf(req *http.Request, registry string) requestKind {
	p := req.URL.Path
	switch {
	case req.URL.Host != hostPort(registry) || !strings.HasPrefix(p, "/v2/"):
		return kindToken
	case strings.Contains(p, "/manifests/") && req.Method == http.MethodHead:
		return kindManifestHead
	case strings.Contains(p, "/manifests/") && req.Method == http.MethodGet:
		return kindManifestGet
	case strings.Contains(p, "/blobs/") && !strings.Contains(p, "/blobs/uploads/") && req.Method == http.MethodGet:
		return kindBlobGet
	default:
		return kindOther
	}
}

// count adds one request of kind k to b.
func (b *Budget) count(k requestKind) {
	switch k {
	case kindManifestHead:
		b.ManifestHeads++
	case kindManifestGet:
		b.ManifestGets++
	case kindBlobGet:
		b.BlobGets++
	case kindToken:
		b.Tokens++
	default:
		b.Other++
	}
}

// answered notes what a registry's answer says about its rate limit.
func (b *Budget) answered(resp *http.Response, now time.Time) {
	if rl, ok := parseRateLimit(resp.Header); ok {
		seen := &RateLimit{Limit: rl.limit, Remaining: rl.remaining, Window: rl.windowDur}
		if b.RateLimit == nil || seen.Limit != b.RateLimit.Limit || seen.Window != b.RateLimit.Window || seen.Remaining < b.RateLimit.Remaining {
			b.RateLimit = seen
		}
	}
	if resp.StatusCode != http.StatusTooManyRequests {
		return
	}
	b.Limited++
	if d, ok := retryAfter(resp.Header.Get("Retry-After"), now); ok && d > b.RetryAfter {
		b.RetryAfter = d
	}
}

// Budget returns what this Resolver spent per registry and credentials,
// ordered by registry then credentials.
func (res *Resolver) Budget() []Budget { return res.tr.budget() }

func (t *transport) budget() []Budget {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Budget, 0, len(t.budgets))
	for _, b := range t.budgets {
		c := *b
		if b.RateLimit != nil {
			rl := *b.RateLimit
			c.RateLimit = &rl
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(x, y Budget) int {
		return cmp.Or(cmp.Compare(x.Registry, y.Registry), cmp.Compare(x.Credential, y.Credential))
	})
	return out
}

// budgetOf returns the Budget of k, made on first use; t.mu is held.
func (t *transport) budgetOf(k budgetKey) *Budget {
	b := t.budgets[k]
	if b == nil {
		b = &Budget{Registry: k.registry, Credential: k.credential}
		t.budgets[k] = b
	}
	return b
}

// Low reports whether the rate limit is running low: a tenth or less of
// it remains. It is the judgement of the log line "registry rate limit
// running low", and what makes a run's optional reads wait (see Short).
func (r RateLimit) Low() bool { return r.Limit > 0 && r.Remaining*10 <= r.Limit }

// Short returns, per registry, the budget of its credentials that is
// shortest when the registry's rate limit is low (see RateLimit.Low) or it
// answered 429 in this run: a run that has made its lookups then leaves
// what remains to them and to the nodes, and its optional reads wait.
func (res *Resolver) Short() map[string]Budget { return short(res.Budget()) }

func short(bs []Budget) map[string]Budget {
	out := map[string]Budget{}
	for _, b := range bs {
		if b.Limited == 0 && (b.RateLimit == nil || !b.RateLimit.Low()) {
			continue
		}
		if o, ok := out[b.Registry]; ok && remaining(o) <= remaining(b) {
			continue
		}
		out[b.Registry] = b
	}
	return out
}

// remaining is what b's registry said is left, 0 when it only answered 429.
func remaining(b Budget) int {
	if b.RateLimit == nil || b.Limited > 0 {
		return 0
	}
	return b.RateLimit.Remaining
}

// RateLimited reports whether err is a registry's rate limit: a 429, or a
// host urunner stopped asking until its Retry-After.
func RateLimited(err error) bool {
	return errors.Is(err, ErrRateLimited) || errors.Is(err, errs.ErrHTTPRateLimit)
}
