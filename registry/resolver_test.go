package registry

// The resolver against the test ground's registry (olareg, in-process, with
// real basic and token auth, counting every request it serves).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/regclient/regclient/types/ref"

	"github.com/urunner/urunner/e2e/testground"
)

func startRegistry(t *testing.T, opts testground.RegistryOptions) *testground.Registry {
	t.Helper()
	reg, err := testground.StartRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	return reg
}

func newResolver(t *testing.T, hosts ...Host) *Resolver {
	t.Helper()
	res, err := NewResolver(Options{Hosts: hosts, Concurrency: 8, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// resolveLookups feeds lookups to Resolve and collects every outcome.
func resolveLookups(t *testing.T, res *Resolver, ls []Lookup, opts ...ResolveOption) []Outcome {
	t.Helper()
	in := make(chan Lookup)
	go func() {
		defer close(in)
		for _, l := range ls {
			in <- l
		}
	}()
	var out []Outcome
	for o := range res.Resolve(t.Context(), in, opts...) {
		out = append(out, o)
	}
	return out
}

func manyRepos(n int) []string {
	var rts []string
	for i := range n {
		rts = append(rts, fmt.Sprintf("team/app%02d:latest", i))
	}
	return rts
}

// Eight workers sharing one set of credentials take the registry's auth
// challenge once: the first lookup goes alone, the rest reuse what it got.
func TestOneAuthChallengePerHostAndCredentials(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts testground.RegistryOptions
	}{
		{"basic auth", testground.RegistryOptions{Logins: map[string]string{"ci": "secret"}}},
		{"token auth", testground.RegistryOptions{TokenLogins: map[string]string{"ci": "secret"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := startRegistry(t, tc.opts)
			refs, want := pushRepoTags(t, reg, manyRepos(16)...)
			res := newResolver(t, Host{Name: reg.Host, PlainHTTP: true, Concurrency: 8, Provider: basic{Credentials{User: "ci", Password: "secret"}}})
			reg.ResetRequests()
			if diff := cmp.Diff(want, resultDigests(t, res.ResolveAll(t.Context(), refs))); diff != "" {
				t.Errorf("digests (-want +got):\n%s", diff)
			}
			got := reg.Requests()
			t.Logf("registry: %v", got)
			if n := got["HEAD manifest"]; n != len(refs)+1 {
				t.Errorf("%d HEADs for %d references, want %d (one per reference plus one challenge)", n, len(refs), len(refs)+1)
			}
		})
	}
}

// One repository refused (403) costs its own lookup, not its host's: the
// other repositories resolve, run after run, wherever it sorts.
func TestARefusedRepositoryDoesNotStarveItsHost(t *testing.T) {
	reg := startRegistry(t, testground.RegistryOptions{Logins: map[string]string{"ci": "secret"}})
	rts := append([]string{"team/aaa-forbidden:latest"}, manyRepos(5)...)
	refs, want := pushRepoTags(t, reg, rts...)
	delete(want, Key(refs[0]))
	reg.SetFault(func(w http.ResponseWriter, req *http.Request) bool {
		if strings.Contains(req.URL.Path, "/aaa-forbidden/") {
			http.Error(w, `{"errors":[{"code":"DENIED"}]}`, http.StatusForbidden)
			return true
		}
		return false
	})
	failedLastRun := map[string]bool{}
	for run := range 3 {
		res := newResolver(t, Host{Name: reg.Host, PlainHTTP: true, Provider: basic{Credentials{User: "ci", Password: "secret"}}})
		var ls []Lookup
		for _, r := range refs {
			ls = append(ls, Lookup{Ref: r})
		}
		got := map[string]string{}
		for _, o := range resolveLookups(t, res, ls, Suspect(func(k string) bool { return failedLastRun[k] })) {
			k := Key(o.Ref)
			switch {
			case o.Err == nil:
				got[k] = o.Digest
				delete(failedLastRun, k)
			case k == Key(refs[0]) && refused(o.Err):
				failedLastRun[k] = true
			default:
				t.Errorf("run %d: %s: %v", run, k, o.Err)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("run %d: digests (-want +got):\n%s", run, diff)
		}
	}
}

// Two credentials for one host are two scopes: a wrong pull secret in one
// namespace fails its own lookups only, and each lookup is answered with
// the credentials it came with.
func TestCredentialsOfOneScopeNeverServeAnother(t *testing.T) {
	reg := startRegistry(t, testground.RegistryOptions{Logins: map[string]string{"team-a": "good", "team-b": "good-too"}})
	refs, want := pushRepoTags(t, reg, "team/app:latest", "team/web:latest", "team/api:latest")
	res := newResolver(t, Host{Name: reg.Host, PlainHTTP: true})
	var ls []Lookup
	for _, r := range refs {
		ls = append(ls,
			Lookup{Ref: r, Cred: "a", Pull: &Credentials{User: "team-a", Password: "good"}},
			Lookup{Ref: r, Cred: "b", Pull: &Credentials{User: "team-b", Password: "wrong"}},
			Lookup{Ref: r}, // a namespace without a pull secret: anonymous
		)
	}
	got := map[string]map[string]string{}
	for _, o := range resolveLookups(t, res, ls) {
		if got[o.Cred] == nil {
			got[o.Cred] = map[string]string{}
		}
		v := o.Digest
		if o.Err != nil {
			v = "error"
		}
		got[o.Cred][Key(o.Ref)] = v
	}
	failed := map[string]string{}
	for k := range want {
		failed[k] = "error"
	}
	if diff := cmp.Diff(map[string]map[string]string{"a": want, "b": failed, "": failed}, got); diff != "" {
		t.Errorf("results by credentials (-want +got):\n%s", diff)
	}
	if users := reg.Users(); len(users["team-a"]) != 3 || len(users) != 2 {
		t.Errorf("repositories by user = %v, want team-a on all three and team-b tried", users)
	}
}

// A provider that cannot give credentials fails its own host's lookups
// while other hosts resolve at full speed (this ran into a concurrent map
// write before: run it with -race).
func TestAFailingProviderBesideOtherHosts(t *testing.T) {
	var hosts []Host
	var refs []ref.Ref
	want := map[string]string{}
	for i := range 3 {
		reg := startRegistry(t, testground.RegistryOptions{})
		rs, w := pushRepoTags(t, reg, manyRepos(20)...)
		refs = append(refs, rs...)
		h := Host{Name: reg.Host, PlainHTTP: true}
		if i == 1 {
			h.Provider = failingProvider{}
			for k := range w {
				w[k] = "error"
			}
		}
		for k, v := range w {
			want[k] = v
		}
		hosts = append(hosts, h)
	}
	for range 5 {
		got := map[string]string{}
		for k, r := range newResolver(t, hosts...).ResolveAll(t.Context(), refs) {
			got[k] = r.Digest
			if r.Err != nil {
				got[k] = "error"
				if !errors.Is(r.Err, ErrCredentials) {
					t.Errorf("%s: %v, want ErrCredentials", k, r.Err)
				}
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("results (-want +got):\n%s", diff)
		}
	}
}

type failingProvider struct{}

func (failingProvider) Credentials(context.Context) (Credentials, error) {
	return Credentials{}, errors.New("token service refused")
}

// A CA bundle given for a registry is trusted for its token service too,
// when the challenge names another host.
func TestTheRegistrysCAIsTrustedByItsTokenRealm(t *testing.T) {
	reg := startRegistry(t, testground.RegistryOptions{TLS: true, TokenLogins: map[string]string{"ci": "secret"}, RealmHost: "localhost"})
	refs, want := pushRepoTags(t, reg, "team/app:1", "team/web:1")
	res := newResolver(t, Host{Name: reg.Host, CAPEM: reg.CAPEM, Provider: basic{Credentials{User: "ci", Password: "secret"}}})
	if diff := cmp.Diff(want, resultDigests(t, res.ResolveAll(t.Context(), refs))); diff != "" {
		t.Errorf("digests (-want +got):\n%s", diff)
	}
}

// Lookups fed while others run (as the listing streams them) are all
// answered, each once.
func TestResolveAnswersEachLookupOnceWhileFed(t *testing.T) {
	reg := startRegistry(t, testground.RegistryOptions{Latency: 5 * time.Millisecond})
	refs, want := pushRepoTags(t, reg, manyRepos(30)...)
	res := newResolver(t, Host{Name: reg.Host, PlainHTTP: true, Concurrency: 4})
	in := make(chan Lookup)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(in)
		for range 3 { // every reference three times, as many workloads name it
			for _, r := range refs {
				in <- Lookup{Ref: r}
				time.Sleep(time.Millisecond)
			}
		}
	})
	got := map[string]string{}
	n := 0
	for o := range res.Resolve(t.Context(), in) {
		n++
		got[Key(o.Ref)] = o.Digest
	}
	wg.Wait()
	if n != len(refs) {
		t.Errorf("%d outcomes, want %d", n, len(refs))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("digests (-want +got):\n%s", diff)
	}
	if h := reg.Requests()["HEAD manifest"]; h != len(refs) {
		t.Errorf("%d HEADs, want %d", h, len(refs))
	}
}
