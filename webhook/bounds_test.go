package webhook

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A captured signed request is taken once: sent again, within the
// signature's window or after it, it is refused.
func TestGenericReplayIsRefused(t *testing.T) {
	rec := &recorder{}
	h := testHandler(rec)
	sig := Signature(testConfig.GenericKey, time.Now(), []byte(genericBody))
	req := request{path: "/hooks/generic", body: genericBody, headers: map[string]string{signatureHeader: sig}}
	if w := do(h, req); w.Code != http.StatusAccepted {
		t.Fatalf("first delivery %d %s", w.Code, w.Body)
	}
	w := do(h, req)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "replayed") {
		t.Errorf("replay answered %d %s, want 401 saying it is a replay", w.Code, w.Body)
	}
	if len(rec.got()) != 1 {
		t.Errorf("%d pushes, want 1", len(rec.got()))
	}
}

// The signature's timestamp must be within 5 minutes of the receiver's
// clock, and the old unstamped form is refused with how to send the new
// one; both before a byte of the body is read.
func TestGenericSignatureFormAndAge(t *testing.T) {
	old := "sha256=" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, header, want string
	}{
		{"old unstamped form", old, "no longer accepted; send t=<unix seconds>,sha256=<hex HMAC-SHA256 of"},
		{"six minutes old", Signature(testConfig.GenericKey, time.Now().Add(-6*time.Minute), []byte(genericBody)), "X-Urunner-Signature: timestamp t="},
		{"six minutes ahead", Signature(testConfig.GenericKey, time.Now().Add(6*time.Minute), []byte(genericBody)), "more than 5m0s"},
		{"timestamp not a number", "t=now,sha256=" + strings.Repeat("ab", 32), "unauthenticated"},
		{"timestamp altered", strings.Replace(Signature(testConfig.GenericKey, time.Now(), []byte(genericBody)), "t="+strconv.FormatInt(time.Now().Unix(), 10), "t="+strconv.FormatInt(time.Now().Unix()-1, 10), 1), "unauthenticated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			body := &countingReader{r: strings.NewReader(genericBody)}
			r := httptest.NewRequest(http.MethodPost, "/hooks/generic", body)
			r.Header.Set(signatureHeader, tc.header)
			w := httptest.NewRecorder()
			testHandler(rec).ServeHTTP(w, r)
			if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("answered %d %s, want 401 containing %q", w.Code, w.Body, tc.want)
			}
			if tc.want != "unauthenticated" && body.n != 0 {
				t.Errorf("read %d bytes of the body before refusing", body.n)
			}
			if len(rec.got()) != 0 {
				t.Errorf("pushed %v", rec.got())
			}
		})
	}
}

// blockingBody is an upload that sends a few bytes and then stalls until
// released, as a slow unauthenticated sender's would.
type blockingBody struct {
	sent    bool
	release <-chan struct{}
	reading *atomic.Int64
	peak    *atomic.Int64
	bytes   *atomic.Int64
}

func (b *blockingBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		n := b.reading.Add(1)
		for {
			if pk := b.peak.Load(); n <= pk || b.peak.CompareAndSwap(pk, n) {
				break
			}
		}
		p[0] = '{'
		b.bytes.Add(1)
		return 1, nil
	}
	<-b.release
	b.reading.Add(-1)
	return 0, io.ErrUnexpectedEOF
}

// Many unauthenticated uploads at once to the signed endpoint: at most
// maxUnauthenticatedReads bodies are read at a time; the others are
// answered 503 at once, without a byte read.
func TestUnauthenticatedUploadsAreBounded(t *testing.T) {
	s := &server{maxBody: 1 << 20, push: &recorder{}, ready: func() bool { return true }, log: discardLog(), seen: newIDSet(4),
		reads: make(chan struct{}, maxUnauthenticatedReads)}
	h := s.handler(Config{GenericKey: testConfig.GenericKey}.endpoints())
	release := make(chan struct{})
	var reading, peak, read atomic.Int64
	const senders = 100
	codes := make(chan int, senders)
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest(http.MethodPost, "/hooks/generic", &blockingBody{release: release, reading: &reading, peak: &peak, bytes: &read})
			r.Header.Set(signatureHeader, Signature("a-guessed-key-1234567890", time.Now(), []byte("x")))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			codes <- w.Code
		}()
	}
	// Everyone over the bound is answered while the others still stall.
	busy := 0
	for busy < senders-maxUnauthenticatedReads {
		select {
		case c := <-codes:
			if c != http.StatusServiceUnavailable {
				t.Fatalf("a sender over the bound got %d, want 503", c)
			}
			busy++
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d senders answered 503 while %d bodies were being read", busy, reading.Load())
		}
	}
	if p := peak.Load(); p > maxUnauthenticatedReads {
		t.Errorf("%d bodies read at once, want at most %d", p, maxUnauthenticatedReads)
	}
	if n := read.Load(); n > maxUnauthenticatedReads {
		t.Errorf("%d bytes read from %d senders, want at most one from each of %d", n, senders, maxUnauthenticatedReads)
	}
	close(release)
	wg.Wait()
}

// A signed body is bounded below the general limit.
func TestSignedBodyLimitIsSmaller(t *testing.T) {
	big := `{"references":["registry.example.com/shop/web:latest"],"pad":"` + strings.Repeat("x", maxSignedBody) + `"}`
	s := &server{maxBody: 1 << 20, push: &recorder{}, ready: func() bool { return true }, log: discardLog(), seen: newIDSet(4)}
	h := s.handler(Config{GenericKey: testConfig.GenericKey}.endpoints())
	w := do(h, request{path: "/hooks/generic", body: big, headers: map[string]string{signatureHeader: Signature(testConfig.GenericKey, time.Now(), []byte(big))}})
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("a signed body of %d bytes answered %d, want 413", len(big), w.Code)
	}
}

// While the CronJob is suspended, pushed references are answered 200 and
// dropped; readiness stays 200 and says so.
func TestSuspendedCronJobTakesNoPush(t *testing.T) {
	var suspended atomic.Bool
	suspended.Store(true)
	rec := &recorder{}
	s := &server{maxBody: 4096, push: rec, ready: func() bool { return true }, suspended: suspended.Load, log: discardLog(), seen: newIDSet(4)}
	h := s.handler(testConfig.endpoints())
	req := request{path: "/hooks/distribution", body: string(fixture(t, "distribution-push.json")),
		headers: map[string]string{"Authorization": "Bearer " + testConfig.DistributionToken}}
	w := do(h, req)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"suspended":true`) || len(rec.got()) != 0 {
		t.Errorf("push while suspended: %d %s, %d pushes; want 200, suspended, none", w.Code, w.Body, len(rec.got()))
	}
	if w := do(h, request{method: "GET", path: "/readyz"}); w.Code != 200 || !strings.Contains(w.Body.String(), suspendedStatus) {
		t.Errorf("readyz while suspended: %d %s", w.Code, w.Body)
	}
	suspended.Store(false)
	if w := do(h, req); w.Code != http.StatusAccepted || len(rec.got()) != 1 {
		t.Errorf("push after resume: %d %s", w.Code, w.Body)
	}
}

// An envelope with an unreadable event is answered 2xx: the readable
// events are taken, the other is named in the answer.
func TestEnvelopeWithAnUnreadableEventIsAccepted(t *testing.T) {
	rec := &recorder{}
	body := `{"events":[
	 {"id":"1","action":"push","target":{"repository":"shop/` + strings.Repeat("x", 300) + `","tag":"v1"},"request":{"host":"r.example.com"}},
	 {"id":"2","action":"push","target":{"repository":"shop/web","tag":"v1"},"request":{"host":"r.example.com"}}]}`
	w := do(testHandler(rec), request{path: "/hooks/distribution", body: body,
		headers: map[string]string{"Authorization": "Bearer " + testConfig.DistributionToken}})
	if w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), `"skipped":["events[0].target:`) {
		t.Errorf("answered %d %s, want 202 naming events[0] skipped", w.Code, w.Body)
	}
	if got := rec.got(); len(got) != 1 || len(got[0]) != 1 || got[0][0] != "r.example.com/shop/web:v1" {
		t.Errorf("pushed %v", got)
	}
}

// blockedRuns is a cluster whose Job creation hangs until released, or
// fails always.
type blockedRuns struct {
	fakeRuns
	entered chan struct{}
	release chan struct{}
}

func (b *blockedRuns) Start(ctx context.Context, refs []string) (string, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeRuns.Start(ctx, refs)
}

// The answer to a notification never waits for a Job: with the trigger's
// Job creation hanging, the next notification is still answered 202.
func TestAnswerDoesNotWaitForAJob(t *testing.T) {
	runs := &blockedRuns{entered: make(chan struct{}, 1), release: make(chan struct{})}
	tr := newTrigger(runs, 0, 10, discardLog())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	t.Cleanup(func() { close(runs.release); cancel(); <-done })
	s := &server{maxBody: 4096, push: tr, ready: func() bool { return true }, log: discardLog(), seen: newIDSet(4)}
	h := s.handler(testConfig.endpoints())
	send := func(ref string) int {
		body := `{"references":["` + ref + `"]}`
		return do(h, request{path: "/hooks/generic", body: body,
			headers: map[string]string{signatureHeader: Signature(testConfig.GenericKey, time.Now(), []byte(body))}}).Code
	}
	if c := send("r.example.com/a:1"); c != http.StatusAccepted {
		t.Fatalf("first push %d", c)
	}
	<-runs.entered // the Job creation now hangs
	answered := make(chan int, 1)
	go func() { answered <- send("r.example.com/b:1") }()
	select {
	case c := <-answered:
		if c != http.StatusAccepted {
			t.Errorf("second push %d, want 202", c)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the second notification waited for the hanging Job creation")
	}
}

// A Job that cannot be created is tried maxStartAttempts times, then
// dropped; what was pushed meanwhile never joins it, and starts once the
// doomed batch is dropped.
func TestAFailingBatchIsDroppedAndHoldsNoOther(t *testing.T) {
	f := &failingRuns{bad: "r.example.com/doomed:1"}
	tr := newTrigger(f, 0, 10, discardLog())
	tr.retry = 100 * time.Millisecond // 1.5 s for the 5 attempts
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	push(t, tr, "r.example.com/doomed:1")
	waitFor(t, 10*time.Second, func() bool { return f.count() >= 1 })
	push(t, tr, "r.example.com/good:1") // while the doomed batch is retried
	waitFor(t, 10*time.Second, func() bool { return len(f.runs()) == 1 })
	if got := f.runs(); got[0][0] != "r.example.com/good:1" || len(got[0]) != 1 {
		t.Errorf("runs %v, want the good reference alone", got)
	}
	if n := f.count(); n != maxStartAttempts+1 {
		t.Errorf("%d Job creations, want %d for the doomed batch and 1", n, maxStartAttempts)
	}
	time.Sleep(500 * time.Millisecond) // the doomed batch is not tried again
	if n := f.count(); n != maxStartAttempts+1 {
		t.Errorf("%d Job creations after the drop, want %d", n, maxStartAttempts+1)
	}
}

// failingRuns fails every batch that holds bad.
type failingRuns struct {
	fakeRuns
	bad   string
	mu2   sync.Mutex
	tries int
}

func (f *failingRuns) Start(ctx context.Context, refs []string) (string, error) {
	f.mu2.Lock()
	f.tries++
	f.mu2.Unlock()
	for _, r := range refs {
		if r == f.bad {
			return "", errors.New("Job invalid: metadata.annotations: Too long")
		}
	}
	return f.fakeRuns.Start(ctx, refs)
}

func (f *failingRuns) count() int {
	f.mu2.Lock()
	defer f.mu2.Unlock()
	return f.tries
}
