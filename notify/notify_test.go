package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	webOld   = "sha256:8f79a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e"
	webNew   = "sha256:2c2f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5e4f30213243546576879"
	proxyOld = "sha256:aaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	proxyNew = "sha256:ccccccccccccdddddddddddddddddddddddddddddddddddddddddddddddddddd"

	// secretPath is where a Slack webhook keeps its credential.
	secretPath = "/services/T000/B000/SECRETXYZ"
)

// sample is a run that restarted two containers of one workload and one of
// another, failed to restart a third workload and failed one lookup.
func sample() Report {
	return Report{
		Cluster: "prod",
		Restarts: []Restart{
			{Namespace: "shop", Kind: "Deployment", Name: "web", Container: "app", Image: "registry.example.com/shop/web:latest", From: webOld, To: webNew},
			{Namespace: "shop", Kind: "Deployment", Name: "web", Container: "proxy", Image: "registry.example.com/shop/proxy:1.2", From: proxyOld, To: proxyNew},
			{Namespace: "blog", Kind: "Deployment", Name: "front", Container: "nginx", Image: "registry.example.com/blog/front:main", From: proxyNew, To: webNew},
		},
		Failures: []Failure{
			{Namespace: "shop", Kind: "Deployment", Name: "api", Image: "registry.example.com/shop/api:main", Error: `patch: deployments.apps "api" is forbidden`},
			{Image: "registry.example.com/gone:latest", Error: "not found: <html>"},
		},
		Namespaces: 3,
		Workloads:  12,
		Images:     5,
		Baselined:  4,
		Duration:   1500 * time.Millisecond,
	}
}

func TestWebhookReceivesTheReportAsJSON(t *testing.T) {
	hook := newHook(t, "/urunner", nil)
	New(Options{WebhookURL: hook.url}).Send(t.Context(), sample())

	got := hook.only(t)
	if got.method != http.MethodPost || got.contentType != "application/json" {
		t.Errorf("request: got %s with Content-Type %q, want POST with application/json", got.method, got.contentType)
	}
	var doc map[string]any
	if err := json.Unmarshal(got.body, &doc); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, got.body)
	}
	want := map[string]any{
		"version":         1.0,
		"cluster":         "prod",
		"dryRun":          false,
		"durationSeconds": 1.5,
		"namespaces":      3.0,
		"workloads":       12.0,
		"images":          5.0,
		"baselined":       4.0,
		"restarts": []any{
			map[string]any{"namespace": "shop", "kind": "Deployment", "name": "web", "container": "app", "image": "registry.example.com/shop/web:latest", "from": webOld, "to": webNew},
			map[string]any{"namespace": "shop", "kind": "Deployment", "name": "web", "container": "proxy", "image": "registry.example.com/shop/proxy:1.2", "from": proxyOld, "to": proxyNew},
			map[string]any{"namespace": "blog", "kind": "Deployment", "name": "front", "container": "nginx", "image": "registry.example.com/blog/front:main", "from": proxyNew, "to": webNew},
		},
		"failures": []any{
			map[string]any{"namespace": "shop", "kind": "Deployment", "name": "api", "image": "registry.example.com/shop/api:main", "error": `patch: deployments.apps "api" is forbidden`},
			map[string]any{"image": "registry.example.com/gone:latest", "error": "not found: <html>"},
		},
	}
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Errorf("webhook document (-want +got):\n%s", diff)
	}
}

func TestWebhookListsAreEmptyNotNull(t *testing.T) {
	hook := newHook(t, "/", nil)
	r := sample()
	r.Failures = nil
	New(Options{WebhookURL: hook.url}).Send(t.Context(), r)

	if body := string(hook.only(t).body); !strings.Contains(body, `"failures":[]`) {
		t.Errorf("a run without failures: got %s, want \"failures\":[]", body)
	}
}

func TestSlackMessageNamesEachRestartAndFailure(t *testing.T) {
	hook := newHook(t, secretPath, nil)
	New(Options{SlackURL: hook.url}).Send(t.Context(), sample())

	got := hook.only(t)
	msg := decodeSlack(t, got.body)
	want := strings.Join([]string{
		"*urunner* on `prod`: restarted 2 workloads (3 containers), 2 failures",
		"*Restarted*",
		"• Deployment `shop/web` container `app` `registry.example.com/shop/web:latest`: `8f79a1b2c3d4` → `2c2f0e1d2c3b`",
		"• Deployment `shop/web` container `proxy` `registry.example.com/shop/proxy:1.2`: `aaaaaaaaaaaa` → `cccccccccccc`",
		"• Deployment `blog/front` container `nginx` `registry.example.com/blog/front:main`: `cccccccccccc` → `2c2f0e1d2c3b`",
		"*Failed*",
		"• Deployment `shop/api` `registry.example.com/shop/api:main`: patch: deployments.apps \"api\" is forbidden",
		"• lookup `registry.example.com/gone:latest`: not found: &lt;html&gt;",
		"12 workloads in 3 namespaces · 5 images · 4 baselined · 1.5s",
	}, "\n")
	if diff := cmp.Diff(want, msg.Text); diff != "" {
		t.Errorf("Slack text (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, msg.blockText()); diff != "" {
		t.Errorf("Slack blocks say something else than the text (-want +got):\n%s", diff)
	}
	wantTypes := []string{"section", "section", "section", "context"}
	if diff := cmp.Diff(wantTypes, msg.blockTypes()); diff != "" {
		t.Errorf("Slack block types (-want +got):\n%s", diff)
	}
}

func TestSlackTitleWithoutClusterOrFailures(t *testing.T) {
	hook := newHook(t, "/", nil)
	r := sample()
	r.Cluster, r.Restarts, r.Failures = "", r.Restarts[2:], nil
	New(Options{SlackURL: hook.url}).Send(t.Context(), r)

	title, _, _ := strings.Cut(decodeSlack(t, hook.only(t).body).Text, "\n")
	if want := "*urunner*: restarted 1 workload"; title != want {
		t.Errorf("title: got %q, want %q", title, want)
	}
}

func TestSlackListsAtMost50RestartsAndFailures(t *testing.T) {
	slack, webhook := newHook(t, "/", nil), newHook(t, "/", nil)
	var r Report
	for i := range 60 {
		r.Restarts = append(r.Restarts, Restart{Namespace: "ns", Kind: "Deployment", Name: fmt.Sprintf("app-%d", i), Container: "c", Image: "registry.example.com/app:latest", From: webOld, To: webNew})
	}
	for i := range 55 {
		// Long errors must not push a section past Slack's limit.
		r.Failures = append(r.Failures, Failure{Image: fmt.Sprintf("registry.example.com/gone-%d:latest", i), Error: strings.Repeat("x", 5000)})
	}
	New(Options{SlackURL: slack.url, WebhookURL: webhook.url}).Send(t.Context(), r)

	msg := decodeSlack(t, slack.only(t).body)
	restarted, failed, _ := strings.Cut(msg.Text, "*Failed*")
	if got := strings.Count(restarted, "\n• "); got != 50 {
		t.Errorf("restarts listed: got %d, want 50", got)
	}
	if got := strings.Count(failed, "\n• "); got != 50 {
		t.Errorf("failures listed: got %d, want 50", got)
	}
	for _, want := range []string{"`ns/app-49`", "\n…and 10 more\n", "`registry.example.com/gone-49:latest`", "\n…and 5 more\n"} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("Slack text lacks %q", want)
		}
	}
	for _, unwanted := range []string{"`ns/app-50`", "gone-50"} {
		if strings.Contains(msg.Text, unwanted) {
			t.Errorf("Slack text lists %q, past the first 50", unwanted)
		}
	}
	if len(msg.Blocks) > 50 {
		t.Errorf("Slack blocks: got %d, want at most Slack's 50", len(msg.Blocks))
	}
	for i, b := range msg.Blocks {
		if b.Text != nil && len(b.Text.Text) > 3000 {
			t.Errorf("Slack block %d: %d characters, more than Slack's 3000 a section", i, len(b.Text.Text))
		}
	}

	var doc webhookMessage
	if err := json.Unmarshal(webhook.only(t).body, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Restarts) != 60 || len(doc.Failures) != 55 {
		t.Errorf("JSON webhook: got %d restarts and %d failures, want all 60 and 55", len(doc.Restarts), len(doc.Failures))
	}
	if doc.Failures[0].Error != r.Failures[0].Error {
		t.Errorf("JSON webhook clipped an error to %d characters, want it whole", len(doc.Failures[0].Error))
	}
}

func TestNothingIsSent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		report Report
	}{
		{"a run that restarted nothing and failed nothing", Report{Namespaces: 3, Workloads: 12, Images: 5, Baselined: 4}},
		{"a dry run, even one that would restart", func() Report { r := sample(); r.DryRun = true; return r }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slack, webhook := newHook(t, "/", nil), newHook(t, "/", nil)
			New(Options{SlackURL: slack.url, WebhookURL: webhook.url}).Send(t.Context(), tc.report)
			if n, m := len(slack.received()), len(webhook.received()); n+m != 0 {
				t.Errorf("got %d Slack and %d webhook requests, want none", n, m)
			}
		})
	}
}

func TestNothingConfiguredSendsNothing(t *testing.T) {
	// Nothing to assert but that it returns: no endpoint, no panic.
	New(Options{}).Send(t.Context(), sample())
}

// A failing endpoint is one warning that names it by scheme and host only,
// and the other endpoint still gets its message.
func TestFailingEndpoint(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name         string
		answer       http.HandlerFunc // nil: nothing listens
		wantRequests int
		wantError    string
	}{
		{
			name: "500 is retried once",
			answer: func(w http.ResponseWriter, r *http.Request) {
				// An endpoint may echo the path, which must not reach the log.
				http.Error(w, "no hook at "+r.URL.Path, http.StatusInternalServerError)
			},
			wantRequests: 2,
			wantError:    "answered 500 Internal Server Error",
		},
		{
			name: "404 is not retried",
			answer: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "no_service", http.StatusNotFound)
			},
			wantRequests: 1,
			wantError:    "answered 404 Not Found: no_service",
		},
		{
			name: "a hung endpoint is given up at the timeout, not retried",
			answer: func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
			},
			wantRequests: 1,
			wantError:    "no answer within 300ms",
		},
		{
			name:      "a closed port is retried once",
			wantError: "connection refused",
		},
	} {
		for _, failing := range []string{"slack", "webhook"} {
			t.Run(tc.name+"/"+failing, func(t *testing.T) {
				t.Parallel()
				bad := closedPort(t)
				if tc.answer != nil {
					bad = newHook(t, secretPath, tc.answer)
				}
				good := newHook(t, "/", nil)
				o := Options{SlackURL: bad.url, WebhookURL: good.url}
				if failing == "webhook" {
					o = Options{SlackURL: good.url, WebhookURL: bad.url}
				}
				log, logs := logger()
				o.Log, o.Timeout = log, timeout

				sendReturns(t, New(o), t.Context(), sample())

				good.only(t)
				if tc.answer != nil {
					reqs := bad.received()
					if len(reqs) != tc.wantRequests {
						t.Errorf("failing endpoint: got %d requests, want %d", len(reqs), tc.wantRequests)
					}
					if len(reqs) == 2 && reqs[1].at.Sub(reqs[0].at) < retryDelay {
						t.Errorf("retried after %s, want at least %s", reqs[1].at.Sub(reqs[0].at), retryDelay)
					}
				}
				warns := logs.lines("level=WARN")
				if len(warns) != 1 {
					t.Fatalf("got %d warnings, want 1:\n%s", len(warns), logs)
				}
				wantEndpoint := "endpoint=" + strings.TrimSuffix(bad.url, secretPath)
				for _, want := range []string{"to=" + failing, wantEndpoint, tc.wantError} {
					if !strings.Contains(warns[0], want) {
						t.Errorf("warning lacks %q:\n%s", want, warns[0])
					}
				}
				if strings.Contains(logs.String(), "SECRETXYZ") {
					t.Errorf("the log shows the webhook's secret path:\n%s", logs)
				}
			})
		}
	}
}

func TestCancelledContextEndsAHungRequest(t *testing.T) {
	arrived := make(chan struct{}, 1)
	hung := newHook(t, secretPath, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	log, logs := logger()
	n := New(Options{SlackURL: hung.url, Timeout: time.Hour, Log: log})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()

	sendReturns(t, n, ctx, sample())

	if warns := logs.lines("level=WARN"); len(warns) != 1 || !strings.Contains(warns[0], "context canceled") {
		t.Errorf("want one warning saying the context was cancelled, got:\n%s", logs)
	}
}

func TestURLsAreNeverLogged(t *testing.T) {
	for _, tc := range []struct{ name, url, wantEndpoint string }{
		{"secret in the path", "http://127.0.0.1:1" + secretPath, "endpoint=http://127.0.0.1:1 "},
		{"secret in the query", "http://127.0.0.1:1/hook?token=SECRETXYZ", "endpoint=http://127.0.0.1:1 "},
		{"secret in the user info", "http://user:SECRETXYZ@127.0.0.1:1/hook", "endpoint=http://127.0.0.1:1 "},
		{"unsupported scheme", "ftp://127.0.0.1:1" + secretPath, `error="want an http or https URL, got ftp://127.0.0.1:1"`},
		{"unparsable", "http://127.0.0.1:1/%zz/SECRETXYZ", `endpoint="(unparsable URL)" error="the URL cannot be parsed"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log, logs := logger()
			sendReturns(t, New(Options{SlackURL: tc.url, Log: log}), t.Context(), sample())
			if !strings.Contains(logs.String(), tc.wantEndpoint) {
				t.Errorf("log lacks %q:\n%s", tc.wantEndpoint, logs)
			}
			if strings.Contains(logs.String(), "SECRETXYZ") {
				t.Errorf("the log shows the webhook's secret:\n%s", logs)
			}
		})
	}
}

func TestShortDigest(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{webOld, "8f79a1b2c3d4"},
		{"sha512:" + strings.Repeat("e", 128), "eeeeeeeeeeee"},
		{"abc", "abc"},
		{"", ""},
	} {
		if got := shortDigest(tc.in); got != tc.want {
			t.Errorf("shortDigest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// hook is a webhook endpoint on loopback that records what it receives.
type hook struct {
	url string

	mu   sync.Mutex
	reqs []received
}

type received struct {
	method, contentType string
	body                []byte
	at                  time.Time
}

// newHook serves path; answer nil answers 200 "ok", as Slack does.
func newHook(t *testing.T, path string, answer http.HandlerFunc) *hook {
	t.Helper()
	h := &hook{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, received{r.Method, r.Header.Get("Content-Type"), body.Bytes(), time.Now()})
		h.mu.Unlock()
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		if answer == nil {
			_, _ = w.Write([]byte("ok"))
			return
		}
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL + path
	return h
}

// closedPort is an endpoint where nothing listens.
func closedPort(t *testing.T) *hook {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return &hook{url: "http://" + addr + secretPath}
}

func (h *hook) received() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]received(nil), h.reqs...)
}

// only is the one request h received.
func (h *hook) only(t *testing.T) received {
	t.Helper()
	reqs := h.received()
	if len(reqs) != 1 {
		t.Fatalf("%s: got %d requests, want exactly 1", h.url, len(reqs))
	}
	return reqs[0]
}

// sendReturns calls Send and fails the test if it does not return. The bound
// is generous: it catches a Send that ignores its timeout or context, not a
// slow machine.
func sendReturns(t *testing.T, n *Notifier, ctx context.Context, r Report) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Send(ctx, r)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Send did not return")
	}
}

func decodeSlack(t *testing.T, body []byte) slackMessage {
	t.Helper()
	var m slackMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("Slack body is not JSON: %v\n%s", err, body)
	}
	return m
}

func (m slackMessage) blockText() string {
	var texts []string
	for _, b := range m.Blocks {
		if b.Text != nil {
			if b.Text.Type != "mrkdwn" {
				texts = append(texts, "(not mrkdwn)")
			}
			texts = append(texts, b.Text.Text)
		}
		for _, e := range b.Elements {
			texts = append(texts, e.Text)
		}
	}
	return strings.Join(texts, "\n")
}

func (m slackMessage) blockTypes() []string {
	var types []string
	for _, b := range m.Blocks {
		types = append(types, b.Type)
	}
	return types
}

// logBuffer is what a logger wrote; slog's handlers serialise their writes.
type logBuffer struct{ bytes.Buffer }

func logger() (*slog.Logger, *logBuffer) {
	var b logBuffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

func (b *logBuffer) lines(containing string) []string {
	var out []string
	for l := range strings.Lines(b.String()) {
		if strings.Contains(l, containing) {
			out = append(out, l)
		}
	}
	return out
}
