package registry

// The registry budget against the test ground's registry, which counts what
// it serves and limits pulls as Docker Hub does.

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/urunner/urunner/e2e/testground"
)

// Every request the resolver's clients send is in the budget of its
// registry and credentials, by kind, as the registry itself counted them;
// manifest GETs are the pulls Docker Hub counts, and the last rate limit
// the registry sent is kept.
func TestTheBudgetCountsWhatTheRegistryServed(t *testing.T) {
	reg := startRegistry(t, testground.RegistryOptions{TokenLogins: map[string]string{"ci": "secret"}, AllowAnonymousRead: true,
		RateLimit: &testground.RateLimit{Limit: 100, Window: 6 * time.Hour}})
	refs, want := pushRepoTags(t, reg, "team/app:1", "team/web:1", "team/api:1")
	res := newResolver(t, Host{Name: reg.Host, PlainHTTP: true})
	resolveLookups(t, res, []Lookup{
		{Ref: refs[0]}, {Ref: refs[1]}, {Ref: refs[2]},
		{Ref: refs[0], Cred: "pull:1", Pull: &Credentials{User: "ci", Password: "secret"}, Source: "shop/regcred"},
	})
	if _, err := res.Provenance(t.Context(), Lookup{Ref: refs[1]}, want[Key(refs[1])]); err != nil {
		t.Fatal(err)
	}
	served := reg.Requests()
	var got Budget
	for _, b := range res.Budget() {
		got.ManifestHeads += b.ManifestHeads
		got.ManifestGets += b.ManifestGets
		got.BlobGets += b.BlobGets
		got.Tokens += b.Tokens
		got.Other += b.Other
	}
	wantSum := Budget{ManifestHeads: served["HEAD manifest"], ManifestGets: served["GET manifest"], BlobGets: served["GET blob"],
		Tokens: served["GET token"] + served["POST token"], Other: served["GET ping"] + served["GET other"]}
	if diff := cmp.Diff(wantSum, got); diff != "" {
		t.Errorf("budget summed over credentials against the registry's counts %v (-want +got):\n%s", served, diff)
	}
	budgets := res.Budget()
	if len(budgets) != 2 || budgets[0].Credential != "" || budgets[1].Credential != "shop/regcred" {
		t.Fatalf("budgets %+v, want one anonymous and one for shop/regcred", budgets)
	}
	anon := budgets[0]
	if anon.ManifestGets != 1 || anon.Pulls() != 1 || anon.ManifestHeads < 3 {
		t.Errorf("anonymous budget %+v, want 3 HEADs or more and 1 pull (the provenance read)", anon)
	}
	wantRL := &RateLimit{Limit: 100, Remaining: reg.RateLimitRemaining(), Window: 6 * time.Hour}
	if diff := cmp.Diff(wantRL, anon.RateLimit); diff != "" {
		t.Errorf("anonymous rate limit (-want +got):\n%s", diff)
	}
	if pulls := 100 - reg.RateLimitRemaining(); pulls != budgets[0].Pulls()+budgets[1].Pulls() {
		t.Errorf("the registry counted %d pulls, the budget %d", pulls, budgets[0].Pulls()+budgets[1].Pulls())
	}
}

// A registry out of pulls answers 429 with a Retry-After: the budget says
// how often and for how long.
func TestTheBudgetKeepsTheRetryAfterOfARegistryOutOfPulls(t *testing.T) {
	reg := startRegistry(t, testground.RegistryOptions{RateLimit: &testground.RateLimit{Limit: 1, Window: time.Hour}})
	refs, want := pushRepoTags(t, reg, "team/app:1")
	res := newResolver(t, Host{Name: reg.Host, PlainHTTP: true})
	l := Lookup{Ref: refs[0]}
	if _, err := res.Provenance(t.Context(), l, want[Key(refs[0])]); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Provenance(t.Context(), l, want[Key(refs[0])]); err == nil {
		t.Fatal("a second pull past the limit succeeded")
	}
	b := res.Budget()
	if len(b) != 1 || b[0].Limited != 1 || b[0].RetryAfter != time.Hour ||
		b[0].RateLimit == nil || *b[0].RateLimit != (RateLimit{Limit: 1, Remaining: 0, Window: time.Hour}) {
		t.Errorf("budget %+v (rate limit %+v), want one 429 asking for an hour, and 0 of 1 left", b, b[0].RateLimit)
	}
}

// Docker Hub's requests as its budget counts them: its API lives on
// registry-1.docker.io, its token service on auth.docker.io.
func TestKindOfDockerHubRequests(t *testing.T) {
	for name, tc := range map[string]struct {
		method, url string
		want        requestKind
	}{
		"lookup":        {http.MethodHead, "https://registry-1.docker.io/v2/library/nginx/manifests/latest", kindManifestHead},
		"pull":          {http.MethodGet, "https://registry-1.docker.io/v2/library/nginx/manifests/sha256:ab", kindManifestGet},
		"config":        {http.MethodGet, "https://registry-1.docker.io/v2/library/nginx/blobs/sha256:cd", kindBlobGet},
		"blob HEAD":     {http.MethodHead, "https://registry-1.docker.io/v2/library/nginx/blobs/sha256:cd", kindOther},
		"token":         {http.MethodGet, "https://auth.docker.io/token?scope=repository:library/nginx:pull", kindToken},
		"ping":          {http.MethodGet, "https://registry-1.docker.io/v2/", kindOther},
		"referrers":     {http.MethodGet, "https://registry-1.docker.io/v2/library/nginx/referrers/sha256:ab", kindOther},
		"same-host JWT": {http.MethodGet, "https://registry-1.docker.io/jwt/auth?service=x", kindToken},
	} {
		req, err := http.NewRequest(tc.method, tc.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := kindOf(req, "docker.io"); got != tc.want {
			t.Errorf("%s: kind %d, want %d", name, got, tc.want)
		}
	}
}

// Answers to concurrent requests arrive in any order: the budget keeps the
// lowest remaining of the window, not the last answer's.
func TestTheBudgetKeepsTheLowestRemainingOfAWindow(t *testing.T) {
	answer := func(remaining string) *http.Response {
		h := http.Header{}
		h.Set("RateLimit-Limit", "100;w=21600")
		h.Set("RateLimit-Remaining", remaining+";w=21600")
		return &http.Response{StatusCode: http.StatusOK, Header: h}
	}
	var b Budget
	for _, r := range []string{"99", "97", "98"} {
		b.answered(answer(r), time.Now())
	}
	if b.RateLimit == nil || b.RateLimit.Remaining != 97 || b.RateLimit.Limit != 100 {
		t.Errorf("rate limit %+v, want 97 of 100 remaining", b.RateLimit)
	}
	// Another limit (the registry changed its policy): its answer counts.
	h := answer("150")
	h.Header.Set("RateLimit-Limit", "200;w=21600")
	b.answered(h, time.Now())
	if b.RateLimit.Limit != 200 || b.RateLimit.Remaining != 150 {
		t.Errorf("rate limit %+v, want 150 of 200 remaining", b.RateLimit)
	}
}

func TestRateLimitLow(t *testing.T) {
	for _, tc := range []struct {
		name string
		rl   RateLimit
		want bool
	}{
		{"a tenth left is low", RateLimit{Limit: 100, Remaining: 10}, true},
		{"nothing left is low", RateLimit{Limit: 100, Remaining: 0}, true},
		{"more than a tenth left is not", RateLimit{Limit: 100, Remaining: 11}, false},
		{"no limit said is not", RateLimit{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.rl.Low(); got != tc.want {
				t.Errorf("%+v.Low() = %v, want %v", tc.rl, got, tc.want)
			}
		})
	}
}

func TestShortRegistries(t *testing.T) {
	rl := func(rem int) *RateLimit { return &RateLimit{Limit: 100, Remaining: rem, Window: 6 * time.Hour} }
	for _, tc := range []struct {
		name string
		bs   []Budget
		want map[string]Budget
	}{
		{"a registry that sends no rate limit is never short",
			[]Budget{{Registry: "ghcr.io", ManifestHeads: 40}}, map[string]Budget{}},
		{"a registry with more than a tenth left is not short",
			[]Budget{{Registry: "docker.io", RateLimit: rl(11)}}, map[string]Budget{}},
		{"a registry with a tenth left is short",
			[]Budget{{Registry: "docker.io", RateLimit: rl(10)}}, map[string]Budget{"docker.io": {Registry: "docker.io", RateLimit: rl(10)}}},
		{"a registry that answered 429 is short, whatever it said is left",
			[]Budget{{Registry: "quay.io", Limited: 1}, {Registry: "docker.io", RateLimit: rl(50), Limited: 2}},
			map[string]Budget{"quay.io": {Registry: "quay.io", Limited: 1}, "docker.io": {Registry: "docker.io", RateLimit: rl(50), Limited: 2}}},
		{"of a registry's credentials, the shortest speaks for it",
			[]Budget{{Registry: "docker.io", RateLimit: rl(80)}, {Registry: "docker.io", Credential: "shop/regcred", RateLimit: rl(3)},
				{Registry: "docker.io", Credential: "team/regcred", RateLimit: rl(7)}},
			map[string]Budget{"docker.io": {Registry: "docker.io", Credential: "shop/regcred", RateLimit: rl(3)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, short(tc.bs)); diff != "" {
				t.Errorf("short (-want +got):\n%s", diff)
			}
		})
	}
}
