package registry

// Google Cloud cannot be reached from where these tests run, so they drive
// the real golang.org/x/oauth2/google Application Default Credentials
// against local servers: a GCE/GKE metadata server (GCE_METADATA_HOST,
// https://cloud.google.com/compute/docs/access/authenticate-workloads#applications)
// and, for a service account key file, an OAuth2 token endpoint taking the
// JWT bearer grant (RFC 7523). regclient resolves against the test
// ground's registry, which demands the access token.

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const metadataTokenPath = "/computeMetadata/v1/instance/service-accounts/default/token"

// fakeMetadata answers the GCE metadata server requests ADC makes: the
// project id, asked when the credentials are found, and the default
// service account's token.
type fakeMetadata struct {
	*httptest.Server
	reply func(call int) (status int, body string)

	mu     sync.Mutex
	tokens int      // token requests
	others []string // any other request, by path
}

func startFakeMetadata(t *testing.T, reply func(call int) (status int, body string)) *fakeMetadata {
	t.Helper()
	f := &fakeMetadata{reply: reply}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeMetadata) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Metadata-Flavor", "Google")
	if r.Method != http.MethodGet || r.Header.Get("Metadata-Flavor") != "Google" {
		f.record(r)
		http.Error(w, "missing required header Metadata-Flavor: Google", http.StatusForbidden)
		return
	}
	switch r.URL.Path {
	case "/computeMetadata/v1/project/project-id":
		w.Header().Set("Content-Type", "application/text")
		_, _ = io.WriteString(w, "urunner-test")
	case metadataTokenPath:
		if scopes := r.URL.Query().Get("scopes"); !strings.Contains(scopes, gcpScope) {
			f.record(r)
			http.Error(w, "want scope "+gcpScope+", got "+scopes, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.tokens++
		call := f.tokens
		f.mu.Unlock()
		status, body := f.reply(call)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	default:
		f.record(r)
		http.NotFound(w, r)
	}
}

func (f *fakeMetadata) record(r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.others = append(f.others, r.Method+" "+r.URL.Path)
}

// counts returns the token requests and any unexpected ones.
func (f *fakeMetadata) counts() (tokens int, others []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens, append([]string(nil), f.others...)
}

func metadataTokenReply(token string, expiresIn int) (int, string) {
	return http.StatusOK, fmt.Sprintf(`{"access_token":%q,"expires_in":%d,"token_type":"Bearer"}`, token, expiresIn)
}

// isolateGCP points ADC at metadataHost and keeps it from anything of the
// machine the tests run on: no key file variable, no gcloud ADC file.
func isolateGCP(t *testing.T, metadataHost string) {
	t.Helper()
	t.Setenv("GCE_METADATA_HOST", metadataHost)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
}

func TestGCPResolvesWithMetadataTokenOncePerRun(t *testing.T) {
	const token = "ya29.metadata-access-token"
	md := startFakeMetadata(t, func(int) (int, string) { return metadataTokenReply(token, 3599) })
	isolateGCP(t, md.Listener.Addr().String())
	reg := startCloudRegistry(t, map[string]string{"oauth2accesstoken": token})
	repoTags := []string{"proj/repo/app:1", "proj/repo/tool:2"}
	want := pushCloudImages(t, reg, repoTags...)

	p, err := newGCP(HostConfig{Host: reg.Host, Type: "gcp"})
	if err != nil {
		t.Fatal(err)
	}
	if tokens, others := md.counts(); tokens != 0 || len(others) != 0 {
		t.Fatalf("newGCP asked the metadata server (%d token requests, others %v), want nothing", tokens, others)
	}
	res := newCloudResolver(t, reg.Host, p)
	for run := 1; run <= 2; run++ {
		got := resultDigests(t, resolveCloud(t, res, reg.Host, repoTags...))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("run %d digests (-want +got):\n%s", run, diff)
		}
		if tokens, _ := md.counts(); tokens != 1 {
			t.Errorf("after run %d: %d token requests, want 1", run, tokens)
		}
	}
	if _, others := md.counts(); len(others) != 0 {
		t.Errorf("unexpected metadata requests: %v", others)
	}
}

func TestGCPMetadataErrorFailsEveryImageWithoutAskingTheRegistry(t *testing.T) {
	md := startFakeMetadata(t, func(int) (int, string) {
		return http.StatusForbidden, "Workload Identity: the Kubernetes service account is not bound to a Google service account"
	})
	isolateGCP(t, md.Listener.Addr().String())
	reg := startCloudRegistry(t, map[string]string{"oauth2accesstoken": "never-issued"})
	p, err := newGCP(HostConfig{Host: reg.Host, Type: "gcp"})
	if err != nil {
		t.Fatal(err)
	}
	results := resolveCloud(t, newCloudResolver(t, reg.Host, p), reg.Host, "proj/repo/app:1", "proj/repo/tool:2")
	if len(results) != 2 {
		t.Errorf("got %d results, want 2", len(results))
	}
	for k, r := range results {
		if !errors.Is(r.Err, ErrCredentials) {
			t.Errorf("%s: error %v, want ErrCredentials", k, r.Err)
			continue
		}
		if !strings.Contains(r.Err.Error(), reg.Host) || !strings.Contains(r.Err.Error(), "application default credentials") {
			t.Errorf("%s: error %q does not name the registry and the credentials source", k, r.Err)
		}
	}
	if got := reg.Requests(); len(got) != 0 {
		t.Errorf("registry requests = %v, want none (no HEAD without credentials)", got)
	}
	if tokens, _ := md.counts(); tokens != 1 {
		t.Errorf("%d token requests, want 1", tokens)
	}
}

func TestGCPRefreshesTokenExpiringWithinFiveMinutes(t *testing.T) {
	md := startFakeMetadata(t, func(call int) (int, string) {
		if call == 1 {
			return metadataTokenReply("expiring", 240)
		}
		return metadataTokenReply(fmt.Sprintf("fresh-%d", call), 3599)
	})
	isolateGCP(t, md.Listener.Addr().String())
	p, err := newGCP(HostConfig{Host: "europe-docker.pkg.dev", Type: "gcp"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"expiring", "fresh-2", "fresh-2"} {
		c, err := p.Credentials(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if c.User != "oauth2accesstoken" || c.Password != want {
			t.Errorf("call %d: credentials %q/%q, want oauth2accesstoken/%q", i+1, c.User, c.Password, want)
		}
		if left := time.Until(c.Expiry); left <= 0 || left > time.Hour {
			t.Errorf("call %d: expiry in %v, want within the hour the token lasts", i+1, left)
		}
	}
	if tokens, _ := md.counts(); tokens != 2 {
		t.Errorf("%d token requests, want 2", tokens)
	}
}

func TestGCPConcurrentCallersShareOneTokenRequest(t *testing.T) {
	md := startFakeMetadata(t, func(call int) (int, string) { return metadataTokenReply(fmt.Sprintf("token-%d", call), 3599) })
	isolateGCP(t, md.Listener.Addr().String())
	p, err := newGCP(HostConfig{Host: "gcr.io", Type: "gcp"})
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
	if tokens, _ := md.counts(); tokens != 1 {
		t.Errorf("%d token requests, want 1", tokens)
	}
}

func TestGCPKeepsTheCallersDeadline(t *testing.T) {
	// The metadata client takes no context: a server that does not answer
	// must not hold the run past its deadline.
	release := make(chan struct{})
	var tokenAsked atomic.Int32
	md := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != metadataTokenPath {
			http.NotFound(w, r)
			return
		}
		tokenAsked.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, "unavailable", http.StatusForbidden)
	}))
	t.Cleanup(md.Close)
	t.Cleanup(func() { close(release) }) // runs before Close, which waits for handlers
	isolateGCP(t, md.Listener.Addr().String())
	p, err := newGCP(HostConfig{Host: "gcr.io", Type: "gcp"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = p.Credentials(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Credentials error = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Credentials returned after %v, want about the 200ms deadline", d)
	}

	// The abandoned lookup is parked on its token request, past reading
	// GCE_METADATA_HOST, so restoring the variable cannot send it to the
	// real metadata address; the cleanup releases it.
	if n := tokenAsked.Load(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}

// fakeOAuth2 is a Google OAuth2 token endpoint for service account keys:
// it takes the JWT bearer grant and checks the assertion's signature.
type fakeOAuth2 struct {
	*httptest.Server
	pub   *rsa.PublicKey
	email string

	mu       sync.Mutex
	requests int
}

func (f *fakeOAuth2) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	call := f.requests
	f.mu.Unlock()
	if err := f.checkGrant(r); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":%q}`, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"ya29.key-token-%d","expires_in":3599,"token_type":"Bearer"}`, call)
}

func (f *fakeOAuth2) checkGrant(r *http.Request) error {
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		return fmt.Errorf("want POST /token, got %s %s", r.Method, r.URL.Path)
	}
	if err := r.ParseForm(); err != nil {
		return err
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		return fmt.Errorf("grant_type %q", g)
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		return fmt.Errorf("assertion is not a JWS")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(f.pub, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("assertion signature: %w", err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var claims struct {
		Iss, Scope, Aud string
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return err
	}
	if claims.Iss != f.email || claims.Scope != gcpScope || claims.Aud != f.URL+"/token" {
		return fmt.Errorf("claims iss %q scope %q aud %q", claims.Iss, claims.Scope, claims.Aud)
	}
	return nil
}

func (f *fakeOAuth2) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func TestGCPServiceAccountKeyFile(t *testing.T) {
	// The metadata server must not be asked when a key file is set.
	md := startFakeMetadata(t, func(int) (int, string) { return metadataTokenReply("from-metadata", 3599) })
	isolateGCP(t, md.Listener.Addr().String())
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	oauth := &fakeOAuth2{pub: &key.PublicKey, email: "urunner@urunner-test.iam.gserviceaccount.com"}
	oauth.Server = httptest.NewServer(http.HandlerFunc(oauth.serve))
	t.Cleanup(oauth.Close)
	keyFile, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "urunner-test",
		"private_key_id": "test-key-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   oauth.email,
		"client_id":      "1234567890",
		"token_uri":      oauth.URL + "/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(path, keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)

	p, err := newGCP(HostConfig{Host: "us-docker.pkg.dev", Type: "gcp"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, err := p.Credentials(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if c.User != "oauth2accesstoken" || c.Password != "ya29.key-token-1" {
			t.Errorf("credentials %q/%q, want oauth2accesstoken/ya29.key-token-1", c.User, c.Password)
		}
	}
	if n := oauth.count(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	if tokens, others := md.counts(); tokens != 0 || len(others) != 0 {
		t.Errorf("metadata server asked (%d token requests, others %v) with a key file set", tokens, others)
	}
}
