package webhook

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testConfig enables every endpoint with a known secret.
var testConfig = Config{
	DistributionToken: "distribution-secret-123456",
	GitLabToken:       "gitlab-secret-1234567890",
	HarborAuth:        "harbor-secret-1234567890",
	DockerHubToken:    "dockerhub-secret-12345678",
	GenericKey:        "generic-key-123456789012",
	MaxBodyBytes:      4096,
}

func testHandler(rec *recorder) http.Handler {
	s := &server{maxBody: testConfig.MaxBodyBytes, push: rec, ready: func() bool { return true }, log: discardLog(), seen: newIDSet(16)}
	return s.handler(testConfig.endpoints())
}

type request struct {
	method, path string
	headers      map[string]string
	body         string
}

func do(h http.Handler, r request) *httptest.ResponseRecorder {
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	req := httptest.NewRequest(method, r.path, strings.NewReader(r.body))
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

const genericBody = `{"references":["registry.example.com/shop/web:latest"]}`

// Each endpoint takes a notification only with its own credential, and
// anything refused changes nothing: no reference reaches the trigger.
func TestEndpointsAuthenticateAndRefuseWithoutChange(t *testing.T) {
	dist := string(fixture(t, "distribution-push.json"))
	harbor := string(fixture(t, "harbor-push-default.json"))
	hub := string(fixture(t, "dockerhub-push.json"))
	for _, tc := range []struct {
		name string
		req  request
		code int
		refs int
	}{
		{"distribution with its bearer token", request{path: "/hooks/distribution", body: dist,
			headers: map[string]string{"Authorization": "Bearer " + testConfig.DistributionToken}}, 202, 1},
		{"distribution with the token but no Bearer", request{path: "/hooks/distribution", body: dist,
			headers: map[string]string{"Authorization": testConfig.DistributionToken}}, 401, 0},
		{"distribution with another endpoint's token", request{path: "/hooks/distribution", body: dist,
			headers: map[string]string{"Authorization": "Bearer " + testConfig.GitLabToken}}, 401, 0},
		{"distribution without a header", request{path: "/hooks/distribution", body: dist}, 401, 0},
		{"distribution with a token one character short", request{path: "/hooks/distribution", body: dist,
			headers: map[string]string{"Authorization": "Bearer " + testConfig.DistributionToken[1:]}}, 401, 0},
		{"gitlab with its bare token", request{path: "/hooks/gitlab", body: dist,
			headers: map[string]string{"Authorization": testConfig.GitLabToken}}, 202, 1},
		{"harbor with its auth header", request{path: "/hooks/harbor", body: harbor,
			headers: map[string]string{"Authorization": testConfig.HarborAuth}}, 202, 1},
		{"harbor with Bearer and its auth header", request{path: "/hooks/harbor", body: harbor,
			headers: map[string]string{"Authorization": "Bearer " + testConfig.HarborAuth}}, 202, 1},
		{"harbor with a wrong auth header", request{path: "/hooks/harbor", body: harbor,
			headers: map[string]string{"Authorization": "nope"}}, 401, 0},
		{"docker hub with the token in its path", request{path: "/hooks/dockerhub/" + testConfig.DockerHubToken, body: hub}, 202, 1},
		{"docker hub with a wrong path token", request{path: "/hooks/dockerhub/guess", body: hub}, 401, 0},
		{"docker hub without a path token", request{path: "/hooks/dockerhub", body: hub}, 404, 0},
		{"generic signed", request{path: "/hooks/generic", body: genericBody,
			headers: map[string]string{signatureHeader: Signature(testConfig.GenericKey, time.Now(), []byte(genericBody))}}, 202, 1},
		{"generic signed with another key", request{path: "/hooks/generic", body: genericBody,
			headers: map[string]string{signatureHeader: Signature("another-key-1234567890", time.Now(), []byte(genericBody))}}, 401, 0},
		{"generic body changed after signing", request{path: "/hooks/generic", body: strings.Replace(genericBody, "web", "api", 1),
			headers: map[string]string{signatureHeader: Signature(testConfig.GenericKey, time.Now(), []byte(genericBody))}}, 401, 0},
		{"generic signature not hex", request{path: "/hooks/generic", body: genericBody,
			headers: map[string]string{signatureHeader: "t=" + strconv.FormatInt(time.Now().Unix(), 10) + ",sha256=zz"}}, 401, 0},
		{"generic unsigned", request{path: "/hooks/generic", body: genericBody}, 401, 0},
		{"authenticated but malformed", request{path: "/hooks/distribution", body: `{"events": 3}`,
			headers: map[string]string{"Authorization": "Bearer " + testConfig.DistributionToken}}, 400, 0},
		{"authenticated but not a push", request{path: "/hooks/harbor", body: string(fixture(t, "harbor-pull-default.json")),
			headers: map[string]string{"Authorization": testConfig.HarborAuth}}, 200, 0},
		{"GET on an endpoint", request{method: http.MethodGet, path: "/hooks/distribution",
			headers: map[string]string{"Authorization": "Bearer " + testConfig.DistributionToken}}, 405, 0},
		{"unknown endpoint", request{path: "/hooks/quay", body: "{}"}, 404, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			w := do(testHandler(rec), tc.req)
			if w.Code != tc.code {
				t.Errorf("status %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			if got := len(rec.got()); got != tc.refs {
				t.Errorf("%d pushes reached the trigger, want %d", got, tc.refs)
			}
			if w.Code == 401 && !strings.Contains(w.Body.String(), `"error":"unauthenticated"`) {
				t.Errorf("401 body %s", w.Body)
			}
		})
	}
}

// A body over the limit is refused with 413 before it is parsed, even
// when it is authenticated; a signed one cannot even be checked.
func TestOversizedBodiesAreRefused(t *testing.T) {
	big := `{"references":["registry.example.com/shop/web:latest"],"pad":"` + strings.Repeat("x", int(testConfig.MaxBodyBytes)) + `"}`
	for _, req := range []request{
		{path: "/hooks/distribution", body: big, headers: map[string]string{"Authorization": "Bearer " + testConfig.DistributionToken}},
		{path: "/hooks/generic", body: big, headers: map[string]string{signatureHeader: Signature(testConfig.GenericKey, time.Now(), []byte(big))}},
	} {
		rec := &recorder{}
		w := do(testHandler(rec), req)
		if w.Code != http.StatusRequestEntityTooLarge || len(rec.got()) != 0 {
			t.Errorf("%s: status %d with %d pushes, want 413 and none", req.path, w.Code, len(rec.got()))
		}
	}
}

// An unauthenticated request is refused before its body is read, so a
// stranger cannot make the receiver read megabytes.
func TestUnauthenticatedBodyIsNotRead(t *testing.T) {
	rec := &recorder{}
	body := &countingReader{r: strings.NewReader(string(fixture(t, "distribution-push.json")))}
	req := httptest.NewRequest(http.MethodPost, "/hooks/distribution", body)
	w := httptest.NewRecorder()
	testHandler(rec).ServeHTTP(w, req)
	if w.Code != 401 || body.n != 0 {
		t.Errorf("status %d after reading %d bytes, want 401 after none", w.Code, body.n)
	}
	if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="urunner webhook"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
}

type countingReader struct {
	r *strings.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// distribution sends an event again, same id, when its first answer came
// after the endpoint's timeout: the second delivery is acknowledged and
// pushes nothing.
func TestRedeliveredEventIsTakenOnce(t *testing.T) {
	rec := &recorder{}
	h := testHandler(rec)
	req := request{path: "/hooks/distribution", body: string(fixture(t, "distribution-push.json")),
		headers: map[string]string{"Authorization": "Bearer " + testConfig.DistributionToken}}
	first, second := do(h, req), do(h, req)
	if first.Code != 202 || second.Code != 200 || !strings.Contains(second.Body.String(), `"duplicate":true`) {
		t.Errorf("first %d %s, second %d %s", first.Code, first.Body, second.Code, second.Body)
	}
	if diff := cmp.Diff([][]string{{"127.0.0.1:45107/shop/web:latest"}}, rec.got()); diff != "" {
		t.Errorf("pushes (-want +got):\n%s", diff)
	}
}

// An endpoint whose secret is not configured is not served at all.
func TestEndpointWithoutSecretIsNotServed(t *testing.T) {
	cfg := Config{GenericKey: testConfig.GenericKey}
	s := &server{maxBody: 4096, push: &recorder{}, ready: func() bool { return true }, log: discardLog(), seen: newIDSet(4)}
	h := s.handler(cfg.endpoints())
	for _, path := range []string{"/hooks/distribution", "/hooks/gitlab", "/hooks/harbor", "/hooks/dockerhub/x"} {
		if w := do(h, request{path: path, body: "{}", headers: map[string]string{"Authorization": "Bearer "}}); w.Code != 404 {
			t.Errorf("%s: status %d, want 404", path, w.Code)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	ready := false
	s := &server{maxBody: 4096, push: &recorder{}, ready: func() bool { return ready }, log: discardLog(), seen: newIDSet(4)}
	h := s.handler(testConfig.endpoints())
	if w := do(h, request{method: "GET", path: "/healthz"}); w.Code != 200 {
		t.Errorf("healthz %d", w.Code)
	}
	if w := do(h, request{method: "GET", path: "/readyz"}); w.Code != 503 {
		t.Errorf("readyz before sync %d, want 503", w.Code)
	}
	ready = true
	if w := do(h, request{method: "GET", path: "/readyz"}); w.Code != 200 {
		t.Errorf("readyz after sync %d", w.Code)
	}
}

func TestSecretEqualIsExact(t *testing.T) {
	for _, tc := range []struct {
		got, want string
		eq        bool
	}{
		{"abc", "abc", true}, {"abc", "abd", false}, {"ab", "abc", false}, {"", "abc", false}, {"abcd", "abc", false},
	} {
		if secretEqual(tc.got, tc.want) != tc.eq {
			t.Errorf("secretEqual(%q, %q) != %v", tc.got, tc.want, tc.eq)
		}
	}
	if !bytes.HasPrefix([]byte(Signature("k", time.Now(), []byte("b"))), []byte("t=")) {
		t.Error("signature without its t= prefix")
	}
}
