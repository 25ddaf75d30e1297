package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Restart is one restarted container.
type Restart struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Container string `json:"container"`
	Image     string `json:"image"`
	From      string `json:"from"`
	To        string `json:"to"`
	// Pending says why the restart has not rolled anything yet: an
	// OnDelete workload takes its new template only as its pods are deleted.
	Pending string `json:"pending,omitempty"`
	// Change says what the move changed, from the images' own labels:
	// "revision 3f2a1c4 → 9b7e02d (compare link), version 1.2 → 1.3".
	Change string `json:"change,omitempty"`
}

// Failure is one failed lookup or restart. Namespace, Kind and Name are empty
// for a lookup failure, which concerns an image and not one workload.
type Failure struct {
	Namespace string `json:"namespace,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Name      string `json:"name,omitempty"`
	Image     string `json:"image"`
	Error     string `json:"error"`
}

// Report is what a run did.
type Report struct {
	Cluster  string // optional name of the cluster, from config
	Restarts []Restart
	// Waiting are moves onto digests first seen this run that a hold
	// keeps waiting (Pending says why: approval, notify mode, soak, …).
	Waiting    []Restart
	Failures   []Failure
	Namespaces int
	Workloads  int
	Images     int
	Baselined  int
	DryRun     bool
	Duration   time.Duration
}

// Options configures a Notifier. With neither URL set, Send does nothing.
type Options struct {
	// WebhookURL receives a POST of the Report as JSON (see Send).
	WebhookURL string
	// SlackURL is a Slack incoming webhook, or another chat's
	// Slack-compatible one (Mattermost, Rocket.Chat): it receives a POST of
	// {"text": …, "blocks": […]} in Slack mrkdwn.
	SlackURL string
	// Timeout bounds each request; 0 means 10s.
	Timeout time.Duration
	// Log receives one warning per endpoint that failed; nil discards.
	Log *slog.Logger
	// Client sends the requests; nil means a default client.
	Client *http.Client
}

// Notifier posts run reports to the configured endpoints.
type Notifier struct {
	endpoints []endpoint
	timeout   time.Duration
	log       *slog.Logger
	client    *http.Client
}

// endpoint is one configured URL and the name it may be logged under.
type endpoint struct {
	kind   string // "webhook" or "slack"
	raw    string
	name   string // scheme://host, the only part of the URL ever logged
	secret []string
	encode func(Report) ([]byte, error)
	// bad says why the URL cannot be used, without quoting it.
	bad error
}

const (
	defaultTimeout = 10 * time.Second
	retryDelay     = time.Second
	// maxListed bounds the restarts and failures spelled out in a chat
	// message: past that a list is unread, and Slack refuses messages over
	// 50 blocks or 3,000 characters a section.
	maxListed = 50
	// maxField bounds an image or error quoted in a chat message, so that
	// one long error cannot push a section over Slack's limit.
	maxField = 300
	// maxSection is Slack's limit on the text of a section block.
	maxSection = 3000
	// maxBodyQuote bounds how much of an error answer is quoted in the log.
	maxBodyQuote = 200
)

// New returns a Notifier for o.
func New(o Options) *Notifier {
	n := &Notifier{timeout: o.Timeout, log: o.Log, client: o.Client}
	if n.timeout <= 0 {
		n.timeout = defaultTimeout
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.client == nil {
		n.client = &http.Client{}
	}
	if o.WebhookURL != "" {
		n.endpoints = append(n.endpoints, newEndpoint("webhook", o.WebhookURL, encodeWebhook))
	}
	if o.SlackURL != "" {
		n.endpoints = append(n.endpoints, newEndpoint("slack", o.SlackURL, encodeSlack))
	}
	return n
}

func newEndpoint(kind, raw string, encode func(Report) ([]byte, error)) endpoint {
	e := endpoint{kind: kind, raw: raw, name: "(unparsable URL)", secret: []string{raw}, encode: encode}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the URL, or the part of it at fault.
		e.bad = errors.New("the URL cannot be parsed")
		return e
	}
	e.name = (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		e.bad = fmt.Errorf("want an http or https URL, got %s", e.name)
	}
	// The longer forms first, so that a full URL becomes the endpoint's name
	// rather than its host followed by a redacted path.
	e.secret = append(e.secret, u.String(), u.Redacted())
	for _, s := range []string{u.EscapedPath(), u.Path, u.RawQuery, u.User.String()} {
		if len(s) > 1 {
			e.secret = append(e.secret, s)
		}
	}
	return e
}

// Send posts r to each configured endpoint, concurrently, when r restarted
// something, has new moves waiting or had failures and is not a dry run. It returns when every
// endpoint has answered or failed. A failure is logged as one warning per
// endpoint and is not returned: a notification never fails the run.
//
// The JSON webhook receives, with Content-Type application/json:
//
//	{"version":1, "cluster":"prod", "dryRun":false, "durationSeconds":1.5,
//	 "namespaces":3, "workloads":12, "images":5, "baselined":0,
//	 "restarts":[{"namespace":"shop", "kind":"Deployment", "name":"web",
//	   "container":"app", "image":"registry.example.com/shop/web:latest",
//	   "from":"sha256:…", "to":"sha256:…"}],
//	 "waiting":[{…, "pending":"waiting for approval: kubectl annotate …"}],
//	 "failures":[{"namespace":"shop", "kind":"Deployment", "name":"api",
//	   "image":"…", "error":"…"}, {"image":"…", "error":"…"}]}
//
// where a failure without namespace, kind and name is a failed lookup, and
// every restart and failure is listed. The Slack message lists at most 50 of
// each, with digests shortened to 12 hex characters.
//
// A request is tried again once, after a second, when the endpoint answered
// 5xx or the connection failed; not after a 4xx, nor after a timeout (a hung
// endpoint would cost the run another whole Timeout).
func (n *Notifier) Send(ctx context.Context, r Report) {
	if len(n.endpoints) == 0 || r.DryRun || len(r.Restarts)+len(r.Failures)+len(r.Waiting) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, e := range n.endpoints {
		wg.Go(func() {
			if err := n.send(ctx, e, r); err != nil {
				n.log.Warn("notification failed", "to", e.kind, "endpoint", e.name, "error", e.scrub(err))
				return
			}
			n.log.Debug("notification sent", "to", e.kind, "endpoint", e.name)
		})
	}
	wg.Wait()
}

func (n *Notifier) send(ctx context.Context, e endpoint, r Report) error {
	if e.bad != nil {
		return e.bad
	}
	body, err := e.encode(r)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", e.kind, err)
	}
	retry, err := n.post(ctx, e, body)
	if err == nil || !retry {
		return err
	}
	n.log.Debug("notification failed; retrying", "to", e.kind, "endpoint", e.name, "error", e.scrub(err))
	t := time.NewTimer(retryDelay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w (not retried: %w)", err, context.Cause(ctx))
	case <-t.C:
	}
	_, err = n.post(ctx, e, body)
	return err
}

// post makes one request and reports whether a failure is worth a retry.
func (n *Notifier) post(parent context.Context, e endpoint, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(parent, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.raw, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "urunner")
	resp, err := n.client.Do(req)
	if err != nil {
		var ne net.Error
		switch {
		case parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
			return false, fmt.Errorf("no answer within %s: %w", n.timeout, err)
		case ctx.Err() != nil, errors.As(err, &ne) && ne.Timeout():
			return false, err
		}
		return true, err
	}
	defer resp.Body.Close()
	quote, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyQuote))
	// Drained so that the connection can be reused by the retry.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	err = fmt.Errorf("answered %s", resp.Status)
	// Slack says why in the body: invalid_payload, no_service, channel_is_archived.
	if q := strings.Join(strings.Fields(strings.ToValidUTF8(string(quote), "")), " "); q != "" {
		err = fmt.Errorf("answered %s: %s", resp.Status, q)
	}
	return resp.StatusCode >= 500, err
}

// scrub returns err's text without the endpoint's URL: http.Client's errors
// quote it whole, and a Slack webhook's path is its credential.
func (e endpoint) scrub(err error) string {
	msg := err.Error()
	var ue *url.Error
	for u := error(err); errors.As(u, &ue); u = ue.Err {
		// Set by a redirect, the URL may be one the endpoint chose.
		if ue.URL != "" {
			msg = strings.ReplaceAll(msg, ue.URL, e.name)
		}
	}
	for _, s := range e.secret {
		if s == e.raw || strings.Contains(s, "://") {
			msg = strings.ReplaceAll(msg, s, e.name)
		} else {
			msg = strings.ReplaceAll(msg, s, "…")
		}
	}
	return msg
}

// webhookMessage is the JSON webhook's document, version 1. Fields are only
// ever added to a version; a change of meaning gets a new version.
type webhookMessage struct {
	Version         int       `json:"version"`
	Cluster         string    `json:"cluster,omitempty"`
	DryRun          bool      `json:"dryRun"`
	DurationSeconds float64   `json:"durationSeconds"`
	Namespaces      int       `json:"namespaces"`
	Workloads       int       `json:"workloads"`
	Images          int       `json:"images"`
	Baselined       int       `json:"baselined"`
	Restarts        []Restart `json:"restarts"`
	Waiting         []Restart `json:"waiting,omitempty"`
	Failures        []Failure `json:"failures"`
}

func encodeWebhook(r Report) ([]byte, error) {
	m := webhookMessage{
		Version:         1,
		Cluster:         r.Cluster,
		DryRun:          r.DryRun,
		DurationSeconds: r.Duration.Seconds(),
		Namespaces:      r.Namespaces,
		Workloads:       r.Workloads,
		Images:          r.Images,
		Baselined:       r.Baselined,
		// Empty lists rather than null, for consumers that iterate.
		Restarts: append([]Restart{}, r.Restarts...),
		Waiting:  r.Waiting,
		Failures: append([]Failure{}, r.Failures...),
	}
	return marshal(m)
}

// slackMessage is an incoming-webhook message. Text is what notifications
// and Slack-compatible chats without blocks show; Blocks hold the same lines.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// encodeSlack renders r as Slack blocks: a title, then each non-empty list
// of restarts, waits and failures (split into sections Slack accepts), and
// the run's figures as context.
func encodeSlack(r Report) ([]byte, error) {
	var blocks []slackBlock
	section := func(text string) {
		blocks = append(blocks, slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: text}})
	}
	section(slackTitle(r))
	for _, lines := range [][]string{slackRestarts(r.Restarts), slackWaiting(r.Waiting), slackFailures(r.Failures)} {
		if len(lines) == 0 {
			continue // sections would make an empty one
		}
		for _, s := range sections(lines) {
			section(s)
		}
	}
	stats := fmt.Sprintf("%s in %s · %s · %d baselined · %s",
		plural(r.Workloads, "workload"), plural(r.Namespaces, "namespace"),
		plural(r.Images, "image"), r.Baselined, r.Duration.Round(time.Millisecond))
	blocks = append(blocks, slackBlock{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: stats}}})
	return marshal(slackMessage{Text: slackPlainText(blocks), Blocks: blocks})
}

// slackRestarts is the "Restarted" list, none when nothing restarted.
func slackRestarts(rs []Restart) []string {
	if len(rs) == 0 {
		return nil
	}
	lines := []string{"*Restarted*"}
	for _, x := range rs[:min(len(rs), maxListed)] {
		line := fmt.Sprintf("• %s %s container %s %s: %s → %s",
			esc(x.Kind), code(x.Namespace+"/"+x.Name), code(x.Container), code(clip(x.Image)),
			code(shortDigest(x.From)), code(shortDigest(x.To)))
		if x.Change != "" {
			line += " (" + esc(clip(x.Change)) + ")"
		}
		lines = append(lines, line)
	}
	return append(lines, more(len(rs))...)
}

// slackWaiting is the "Waiting" list, none when nothing waits.
func slackWaiting(ws []Restart) []string {
	if len(ws) == 0 {
		return nil
	}
	lines := []string{"*Waiting*"}
	for _, x := range ws[:min(len(ws), maxListed)] {
		lines = append(lines, fmt.Sprintf("• %s %s container %s %s: %s → %s: %s",
			esc(x.Kind), code(x.Namespace+"/"+x.Name), code(x.Container), code(clip(x.Image)),
			code(shortDigest(x.From)), code(shortDigest(x.To)), esc(clip(x.Pending))))
	}
	return append(lines, more(len(ws))...)
}

// slackFailures is the "Failed" list, none when nothing failed.
func slackFailures(fs []Failure) []string {
	if len(fs) == 0 {
		return nil
	}
	lines := []string{"*Failed*"}
	for _, x := range fs[:min(len(fs), maxListed)] {
		what := "lookup " + code(clip(x.Image))
		if x.Name != "" {
			what = fmt.Sprintf("%s %s %s", esc(x.Kind), code(x.Namespace+"/"+x.Name), code(clip(x.Image)))
		}
		lines = append(lines, fmt.Sprintf("• %s: %s", what, esc(clip(x.Error))))
	}
	return append(lines, more(len(fs))...)
}

// slackPlainText is the blocks' text, one line per block, for the message's
// text: what notifications and chats without blocks show.
func slackPlainText(blocks []slackBlock) string {
	texts := make([]string, 0, len(blocks))
	for _, b := range blocks {
		if b.Text != nil {
			texts = append(texts, b.Text.Text)
		}
		for _, t := range b.Elements {
			texts = append(texts, t.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// marshal is json.Marshal without its HTML escaping: the documents go to
// webhooks, not into web pages, and "<" reads better than "\u003c".
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func slackTitle(r Report) string {
	title := "*urunner*"
	if r.Cluster != "" {
		title += " on " + code(r.Cluster)
	}
	var parts []string
	if len(r.Restarts) > 0 {
		workloads := map[[3]string]bool{}
		for _, x := range r.Restarts {
			workloads[[3]string{x.Namespace, x.Kind, x.Name}] = true
		}
		s := "restarted " + plural(len(workloads), "workload")
		if len(r.Restarts) != len(workloads) {
			s += " (" + plural(len(r.Restarts), "container") + ")"
		}
		parts = append(parts, s)
	}
	if len(r.Waiting) > 0 {
		parts = append(parts, plural(len(r.Waiting), "move")+" waiting")
	}
	if len(r.Failures) > 0 {
		parts = append(parts, plural(len(r.Failures), "failure"))
	}
	return title + ": " + strings.Join(parts, ", ")
}

func more(n int) []string {
	if n <= maxListed {
		return nil
	}
	return []string{fmt.Sprintf("…and %d more", n-maxListed)}
}

// sections joins lines into as few texts as Slack's section limit allows.
func sections(lines []string) []string {
	var out []string
	var b strings.Builder
	for _, l := range lines {
		if b.Len() > 0 && b.Len()+1+len(l) > maxSection {
			out = append(out, b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	return append(out, b.String())
}

// shortDigest is a digest's first 12 hex characters, as docker and
// kubectl show image IDs: enough to tell two apart at a glance.
func shortDigest(d string) string {
	if i := strings.LastIndexByte(d, ':'); i >= 0 {
		d = d[i+1:]
	}
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// esc escapes the three characters Slack's mrkdwn gives a meaning to
// (https://api.slack.com/reference/surfaces/formatting#escaping).
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// code is s as inline code; a backtick inside would end it early.
func code(s string) string {
	return "`" + esc(strings.ReplaceAll(s, "`", "'")) + "`"
}

func clip(s string) string {
	if utf8.RuneCountInString(s) <= maxField {
		return s
	}
	return string([]rune(s)[:maxField-1]) + "…"
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
