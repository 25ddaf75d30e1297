package registry

// AWS cannot be reached from where these tests run, so they drive the real
// AWS SDK against a local server speaking ECR's documented JSON 1.1 wire
// protocol (POST / with X-Amz-Target, SigV4-signed):
// https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetAuthorizationToken.html
// and regclient against the test ground's registry, which demands the
// password the token carries.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/regclient/regclient/types/ref"

	"github.com/urunner/urunner/e2e/testground"
)

const ecrTarget = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"

// fakeECR answers GetAuthorizationToken as ECR does and records each call.
type fakeECR struct {
	*httptest.Server
	reply func(call int) (status int, body string)

	mu          sync.Mutex
	calls       int
	authz       []string   // the Authorization header of each call
	registryIDs [][]string // the registryIds of each call
}

func startFakeECR(t *testing.T, reply func(call int) (status int, body string)) *fakeECR {
	t.Helper()
	f := &fakeECR{reply: reply}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeECR) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if r.Method != http.MethodPost || r.URL.Path != "/" || r.Header.Get("X-Amz-Target") != ecrTarget ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.1") {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":"UnknownOperationException","message":"%s %s target %q"}`, r.Method, r.URL.Path, r.Header.Get("X-Amz-Target"))
		return
	}
	var in struct {
		RegistryIDs []string `json:"registryIds"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":"SerializationException","message":%q}`, err.Error())
		return
	}
	f.mu.Lock()
	f.calls++
	call := f.calls
	f.authz = append(f.authz, r.Header.Get("Authorization"))
	f.registryIDs = append(f.registryIDs, in.RegistryIDs)
	f.mu.Unlock()
	status, body := f.reply(call)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (f *fakeECR) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// lastCall returns the Authorization header and registryIds of the latest
// call.
func (f *fakeECR) lastCall(t *testing.T) (authz string, registryIDs []string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == 0 {
		t.Fatal("GetAuthorizationToken was not called")
	}
	return f.authz[f.calls-1], f.registryIDs[f.calls-1]
}

// ecrTokenReply is GetAuthorizationToken's answer for password.
func ecrTokenReply(password string, expires time.Time) (int, string) {
	tok := base64.StdEncoding.EncodeToString([]byte("AWS:" + password))
	return http.StatusOK, fmt.Sprintf(`{"authorizationData":[{"authorizationToken":%q,"expiresAt":%d,"proxyEndpoint":"https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"}]}`,
		tok, expires.Unix())
}

// isolateAWS limits the SDK's default credential chain to what a test
// sets: no shared files, no instance metadata (IMDS), nothing from the
// environment the tests run in.
func isolateAWS(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	for _, k := range []string{
		"AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_REGION", "AWS_DEFAULT_REGION",
	} {
		t.Setenv(k, "")
	}
}

// checkSigned fails unless authz is a SigV4 signature by keyID for ECR in
// region.
func checkSigned(t *testing.T, authz, keyID, region string) {
	t.Helper()
	want := "AWS4-HMAC-SHA256 Credential=" + keyID + "/"
	scope := "/" + region + "/ecr/aws4_request"
	if !strings.HasPrefix(authz, want) || !strings.Contains(authz, scope) {
		t.Errorf("Authorization = %q, want %q... with scope %q", authz, want, scope)
	}
}

// startCloudRegistry starts a test ground registry that demands one of
// logins.
func startCloudRegistry(t *testing.T, logins map[string]string) *testground.Registry {
	t.Helper()
	reg, err := testground.StartRegistry(testground.RegistryOptions{Logins: logins})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	return reg
}

// pushCloudImages pushes one image per repoTag and returns the digests by
// Key.
func pushCloudImages(t *testing.T, reg *testground.Registry, repoTags ...string) map[string]string {
	t.Helper()
	want := map[string]string{}
	for _, rt := range repoTags {
		d, err := reg.PushImage(t.Context(), rt, rt)
		if err != nil {
			t.Fatal(err)
		}
		want[reg.Host+"/"+rt] = d
	}
	return want
}

// resolveCloud resolves repoTags on host with res, as one run.
func resolveCloud(t *testing.T, res *Resolver, host string, repoTags ...string) map[string]Result {
	t.Helper()
	var refs []ref.Ref
	for _, rt := range repoTags {
		r, err := ParseImage(host + "/" + rt)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	return res.ResolveAll(t.Context(), refs)
}

// newCloudResolver returns a Resolver whose only host presents p's
// credentials.
func newCloudResolver(t *testing.T, host string, p Provider) *Resolver {
	t.Helper()
	res, err := NewResolver(Options{Hosts: []Host{{Name: host, PlainHTTP: true, Provider: p}}, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestECRResolvesWithOneTokenCallPerRun(t *testing.T) {
	isolateAWS(t)
	const password = "ecr-token-password"
	fake := startFakeECR(t, func(int) (int, string) { return ecrTokenReply(password, time.Now().Add(12*time.Hour)) })
	reg := startCloudRegistry(t, map[string]string{"AWS": password})
	repoTags := []string{"team/app:1", "team/tool:2"}
	want := pushCloudImages(t, reg, repoTags...)

	// The registry is 127.0.0.1:PORT, which names neither region nor
	// account; TestECRTakesRegionAndAccountFromTheHost covers that.
	p, err := newECR(HostConfig{
		Host: reg.Host, Type: "aws_ecr", Region: "eu-west-1", RegistryID: "123456789012",
		AccessKeyID: Secret{Value: "AKIDSTATIC"}, SecretAccessKey: Secret{Value: "static-secret"},
		Endpoint: fake.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := fake.Calls(); n != 0 {
		t.Fatalf("newECR called GetAuthorizationToken %d times, want 0", n)
	}
	res := newCloudResolver(t, reg.Host, p)
	for run := 1; run <= 2; run++ {
		got := resultDigests(t, resolveCloud(t, res, reg.Host, repoTags...))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("run %d digests (-want +got):\n%s", run, diff)
		}
		if n := fake.Calls(); n != 1 {
			t.Errorf("after run %d: GetAuthorizationToken called %d times, want 1", run, n)
		}
	}
	authz, ids := fake.lastCall(t)
	checkSigned(t, authz, "AKIDSTATIC", "eu-west-1")
	if diff := cmp.Diff([]string{"123456789012"}, ids); diff != "" {
		t.Errorf("registryIds (-want +got):\n%s", diff)
	}
}

func TestECRAccessDeniedFailsEveryImageWithoutAskingTheRegistry(t *testing.T) {
	isolateAWS(t)
	fake := startFakeECR(t, func(int) (int, string) {
		return http.StatusBadRequest, `{"__type":"AccessDeniedException","message":"User: arn:aws:iam::123456789012:user/urunner is not authorized to perform: ecr:GetAuthorizationToken on resource: * because no identity-based policy allows the ecr:GetAuthorizationToken action"}`
	})
	reg := startCloudRegistry(t, map[string]string{"AWS": "never-issued"})
	p, err := newECR(HostConfig{
		Host: reg.Host, Type: "aws_ecr", Region: "eu-west-1", RegistryID: "123456789012",
		AccessKeyID: Secret{Value: "AKIDSTATIC"}, SecretAccessKey: Secret{Value: "static-secret"},
		Endpoint: fake.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	results := resolveCloud(t, newCloudResolver(t, reg.Host, p), reg.Host, "team/app:1", "team/tool:2", "team/web:3")
	if len(results) != 3 {
		t.Errorf("got %d results, want 3", len(results))
	}
	for k, r := range results {
		if !errors.Is(r.Err, ErrCredentials) {
			t.Errorf("%s: error %v, want ErrCredentials", k, r.Err)
			continue
		}
		for _, s := range []string{reg.Host, "needs the IAM permission ecr:GetAuthorizationToken"} {
			if !strings.Contains(r.Err.Error(), s) {
				t.Errorf("%s: error %q does not say %q", k, r.Err, s)
			}
		}
	}
	if got := reg.Requests(); len(got) != 0 {
		t.Errorf("registry requests = %v, want none (no HEAD without credentials)", got)
	}
	if n := fake.Calls(); n != 1 {
		t.Errorf("GetAuthorizationToken called %d times, want 1", n)
	}
}

func TestECRRefreshesTokenExpiringWithinFiveMinutes(t *testing.T) {
	isolateAWS(t)
	soon := time.Now().Add(4 * time.Minute).Truncate(time.Second)
	later := time.Now().Add(12 * time.Hour).Truncate(time.Second)
	fake := startFakeECR(t, func(call int) (int, string) {
		if call == 1 {
			return ecrTokenReply("expiring", soon)
		}
		return ecrTokenReply(fmt.Sprintf("fresh-%d", call), later)
	})
	p, err := newECR(HostConfig{
		Host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com", Type: "aws_ecr",
		AccessKeyID: Secret{Value: "AKIDSTATIC"}, SecretAccessKey: Secret{Value: "static-secret"},
		Endpoint: fake.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []Credentials{
		{User: "AWS", Password: "expiring", Expiry: soon},
		{User: "AWS", Password: "fresh-2", Expiry: later},
		{User: "AWS", Password: "fresh-2", Expiry: later},
	} {
		got, err := p.Credentials(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("call %d credentials (-want +got):\n%s", i+1, diff)
		}
	}
	if n := fake.Calls(); n != 2 {
		t.Errorf("GetAuthorizationToken called %d times, want 2", n)
	}
}

func TestECRConcurrentCallersShareOneTokenCall(t *testing.T) {
	isolateAWS(t)
	fake := startFakeECR(t, func(call int) (int, string) {
		return ecrTokenReply(fmt.Sprintf("token-%d", call), time.Now().Add(12*time.Hour))
	})
	p, err := newECR(HostConfig{
		Host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com", Type: "aws_ecr",
		AccessKeyID: Secret{Value: "AKIDSTATIC"}, SecretAccessKey: Secret{Value: "static-secret"},
		Endpoint: fake.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c, err := p.Credentials(t.Context())
			if err != nil || c.Password != "token-1" {
				t.Errorf("Credentials = %q, %v; want token-1", c.Password, err)
			}
		})
	}
	wg.Wait()
	if n := fake.Calls(); n != 1 {
		t.Errorf("GetAuthorizationToken called %d times, want 1", n)
	}
}

func TestECRDefaultChain(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantKey string // empty: no credentials, an error
	}{
		{"keys in the environment sign the request", map[string]string{"AWS_ACCESS_KEY_ID": "AKIDFROMENV", "AWS_SECRET_ACCESS_KEY": "env-secret"}, "AKIDFROMENV"},
		{"no credentials anywhere is an error naming the registry", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolateAWS(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fake := startFakeECR(t, func(int) (int, string) { return ecrTokenReply("from-chain", time.Now().Add(12*time.Hour)) })
			const host = "210987654321.dkr.ecr.ap-southeast-2.amazonaws.com"
			p, err := newECR(HostConfig{Host: host, Type: "aws_ecr", Endpoint: fake.URL})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := p.Credentials(ctx)
			if tc.wantKey == "" {
				if err == nil || !strings.Contains(err.Error(), host) {
					t.Errorf("Credentials error = %v, want one naming %s", err, host)
				}
				if n := fake.Calls(); n != 0 {
					t.Errorf("GetAuthorizationToken called %d times without credentials, want 0", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.User != "AWS" || c.Password != "from-chain" {
				t.Errorf("Credentials = %q/%q, want AWS/from-chain", c.User, c.Password)
			}
			authz, ids := fake.lastCall(t)
			checkSigned(t, authz, tc.wantKey, "ap-southeast-2")
			if diff := cmp.Diff([]string{"210987654321"}, ids); diff != "" {
				t.Errorf("registryIds (-want +got):\n%s", diff)
			}
		})
	}
}

func TestECRTakesRegionAndAccountFromTheHost(t *testing.T) {
	for _, tc := range []struct {
		host                string
		wantAccount, region string
		ok                  bool
	}{
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com", "123456789012", "eu-west-1", true},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com:443", "123456789012", "us-east-1", true},
		{"123456789012.DKR.ECR.US-EAST-2.AMAZONAWS.COM", "123456789012", "us-east-2", true},
		{"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "123456789012", "us-gov-west-1", true},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "123456789012", "cn-north-1", true},
		{"123456789012.dkr-ecr.eu-central-1.on.aws", "123456789012", "eu-central-1", true},
		{"123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov", "123456789012", "us-iso-east-1", true},
		{"public.ecr.aws", "", "", false},
		{"12345.dkr.ecr.eu-west-1.amazonaws.com", "", "", false},
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example", "", "", false},
		{"registry.example.com", "", "", false},
		{"127.0.0.1:5000", "", "", false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			account, region, ok := parseECRHost(tc.host)
			if account != tc.wantAccount || region != tc.region || ok != tc.ok {
				t.Errorf("parseECRHost = %q, %q, %v; want %q, %q, %v", account, region, ok, tc.wantAccount, tc.region, tc.ok)
			}
		})
	}
}

func TestNewECRNamesTheFieldAtFault(t *testing.T) {
	isolateAWS(t)
	for _, tc := range []struct {
		name      string
		hc        HostConfig
		wantField string
	}{
		{"a host that names no region needs region", HostConfig{Host: "registry.example.com"}, "region"},
		{"an access key needs its secret", HostConfig{Host: "registry.example.com", Region: "eu-west-1", AccessKeyID: Secret{Value: "AKID"}}, "secretAccessKey"},
		{"a secret needs its access key", HostConfig{Host: "registry.example.com", Region: "eu-west-1", SecretAccessKey: Secret{Value: "s"}}, "accessKeyID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newECR(tc.hc)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.wantField {
				t.Fatalf("newECR error = %v, want a FieldError for %s", err, tc.wantField)
			}
			if !strings.Contains(err.Error(), tc.hc.Host) {
				t.Errorf("error %q does not name the registry %s", err, tc.hc.Host)
			}
		})
	}
}
