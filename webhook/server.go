package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// pusher takes the pushed references of an accepted notification.
type pusher interface {
	Push(ctx context.Context, refs []string) error
}

// endpoint is one notification format at one path.
type endpoint struct {
	name  string // "distribution": served at /hooks/distribution
	path  string // mux pattern
	auth  authenticator
	parse func(body []byte) (notice, error)
}

// endpoints returns the endpoints whose secret c sets.
func (c Config) endpoints() []endpoint {
	dist, _ := parseHostRewrite(c.DistributionHost) // validated by Config.validate
	gitlab, _ := parseHostRewrite(c.GitLabHost)
	harbor, _ := parseHostRewrite(c.HarborHost)
	generic, _ := parseHostRewrite(c.GenericHost)
	var eps []endpoint
	if c.DistributionToken != "" {
		eps = append(eps, endpoint{"distribution", "/hooks/distribution", bearerAuth{secret: c.DistributionToken},
			func(b []byte) (notice, error) { return parseDistribution(b, dist) }})
	}
	if c.GitLabToken != "" {
		// GitLab's container registry is a fork of distribution and sends
		// the same envelope; its documented secret is the bare header.
		eps = append(eps, endpoint{"gitlab", "/hooks/gitlab", headerAuth{secret: c.GitLabToken},
			func(b []byte) (notice, error) { return parseDistribution(b, gitlab) }})
	}
	if c.HarborAuth != "" {
		eps = append(eps, endpoint{"harbor", "/hooks/harbor", headerAuth{secret: c.HarborAuth},
			func(b []byte) (notice, error) { return parseHarbor(b, harbor) }})
	}
	if c.DockerHubToken != "" {
		eps = append(eps, endpoint{"dockerhub", "/hooks/dockerhub/{token}", pathAuth{secret: c.DockerHubToken}, parseDockerHub})
	}
	if c.GenericKey != "" {
		eps = append(eps, endpoint{"generic", "/hooks/generic", &hmacAuth{key: c.GenericKey, now: time.Now, seen: newReplays()},
			func(b []byte) (notice, error) { return parseGeneric(b, generic) }})
	}
	return eps
}

// server answers notifications: authenticate, bound, parse, hand the
// references to the trigger. Nothing is changed before all of that passed.
type server struct {
	maxBody int64
	push    pusher
	ready   func() bool
	// suspended reports whether the CronJob is suspended: pushed
	// references are then dropped (nil: never).
	suspended func() bool
	log       *slog.Logger
	seen      *idSet
	// reads bounds the bodies read before their sender is authenticated
	// (a signature over the body); nil: unbounded, for tests.
	reads chan struct{}
}

// Bounds on what an unauthenticated sender can make the receiver do: a
// signed body is read before it can be checked, so at most
// maxUnauthenticatedReads of them are read at once, each at most
// maxSignedBody bytes (1000 references fit) within signedReadTimeout.
const (
	maxUnauthenticatedReads = 4
	maxSignedBody           = 128 << 10
	signedReadTimeout       = 5 * time.Second
)

// answer is the JSON body of every response.
type answer struct {
	Status    string   `json:"status,omitempty"`
	Accepted  []string `json:"accepted,omitempty"`
	Ignored   int      `json:"ignored,omitempty"`
	Skipped   []string `json:"skipped,omitempty"`
	Duplicate bool     `json:"duplicate,omitempty"`
	Suspended bool     `json:"suspended,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// suspendedStatus is the readiness body while the CronJob is suspended.
// Readiness stays 200: a receiver out of its Service would make every
// registry re-send, and stall, its notification queue.
const suspendedStatus = "suspended: pushed runs are not started"

func (s *server) handler(eps []endpoint) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, answer{}) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case !s.ready():
			reply(w, http.StatusServiceUnavailable, answer{Error: "the Jobs informer has not synced"})
		case s.isSuspended():
			reply(w, http.StatusOK, answer{Status: suspendedStatus})
		default:
			reply(w, http.StatusOK, answer{Status: "ready"})
		}
	})
	for _, ep := range eps {
		mux.Handle("POST "+ep.path, s.hook(ep))
		mux.HandleFunc(ep.path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", http.MethodPost)
			reply(w, http.StatusMethodNotAllowed, answer{Error: "notifications are POSTed"})
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusNotFound, answer{Error: "no such endpoint (an endpoint is served only when its secret is configured)"})
	})
	return mux
}

func (s *server) isSuspended() bool { return s.suspended != nil && s.suspended() }

// hook serves one endpoint.
func (s *server) hook(ep endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := s.log.With("endpoint", ep.name, "remote", r.RemoteAddr)
		if err := ep.auth.before(r); err != nil {
			unauthorized(w, ep, log, err)
			return
		}
		body, ok := s.read(w, r, ep, log)
		if !ok {
			return
		}
		if err := ep.auth.after(r, body); err != nil {
			unauthorized(w, ep, log, err)
			return
		}
		n, err := ep.parse(body)
		if err != nil {
			log.Warn("notification refused: malformed", "err", err)
			reply(w, http.StatusBadRequest, answer{Error: err.Error()})
			return
		}
		s.take(w, n, ep, log)
	})
}

// read reads the body within its bounds, or answers why not. A body read
// before its sender is known waits for no one: over the bound of such
// reads at once, the request is answered 503 at once.
func (s *server) read(w http.ResponseWriter, r *http.Request, ep endpoint, log *slog.Logger) ([]byte, bool) {
	limit := s.maxBody
	if ep.auth.needsBody() {
		if s.reads != nil {
			select {
			case s.reads <- struct{}{}:
				defer func() { <-s.reads }()
			default:
				log.Warn("notification refused: too many unauthenticated bodies being read", "max", maxUnauthenticatedReads)
				w.Header().Set("Retry-After", "1")
				reply(w, http.StatusServiceUnavailable, answer{Error: "busy: retry"})
				return nil, false
			}
		}
		limit = min(limit, maxSignedBody)
		// Fails only where the connection cannot take a deadline
		// (httptest's recorder); the server's ReadTimeout stays then.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(signedReadTimeout))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			log.Warn("notification refused: too large", "limit", limit)
			reply(w, http.StatusRequestEntityTooLarge, answer{Error: fmt.Sprintf("body larger than %d bytes (URUNNER_CONF_WEBHOOK_MAX_BODY_BYTES; a signed body at most %d)", limit, maxSignedBody)})
			return nil, false
		}
		reply(w, http.StatusBadRequest, answer{Error: "read body: " + err.Error()})
		return nil, false
	}
	return body, true
}

// take hands a readable notice to the trigger, and answers at once: the
// Job is created later, never while the registry waits.
func (s *server) take(w http.ResponseWriter, n notice, ep endpoint, log *slog.Logger) {
	var skipped []string
	for _, err := range n.skipped {
		log.Warn("notification item skipped: unreadable", "err", err)
		skipped = append(skipped, err.Error())
	}
	if len(n.ids) > 0 && s.seen.all(n.ids) {
		log.Debug("notification delivered again: already taken", "ids", n.ids)
		reply(w, http.StatusOK, answer{Duplicate: true})
		return
	}
	if len(n.refs) == 0 {
		if ep.name == "generic" && len(skipped) > 0 {
			// A CI job, not a registry's queue: it is told its mistake.
			reply(w, http.StatusBadRequest, answer{Error: "no readable reference", Skipped: skipped})
			return
		}
		log.Debug("notification without a pushed tag", "ignored", n.ignored)
		reply(w, http.StatusOK, answer{Ignored: n.ignored, Skipped: skipped})
		return
	}
	if s.isSuspended() {
		log.Info("pushed references dropped: the CronJob is suspended; the next scheduled run after it is resumed catches up", "references", n.refs)
		reply(w, http.StatusOK, answer{Suspended: true, Ignored: n.ignored, Skipped: skipped})
		return
	}
	if err := s.push.Push(context.Background(), n.refs); err != nil {
		reply(w, http.StatusServiceUnavailable, answer{Error: "the receiver is stopping"})
		return
	}
	s.seen.add(n.ids)
	log.Info("push accepted", "references", n.refs, "ignored", n.ignored, "skipped", len(skipped))
	reply(w, http.StatusAccepted, answer{Accepted: n.refs, Ignored: n.ignored, Skipped: skipped})
}

func unauthorized(w http.ResponseWriter, ep endpoint, log *slog.Logger, err error) {
	msg := errUnauthenticated.Error()
	var ae *authError
	if errors.As(err, &ae) {
		msg = ae.msg
	}
	log.Warn("notification refused: unauthenticated", "reason", msg)
	if _, ok := ep.auth.(bearerAuth); ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="urunner webhook"`)
	}
	reply(w, http.StatusUnauthorized, answer{Error: msg})
}

func reply(w http.ResponseWriter, code int, a answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // read by people with curl: "<t>" as is
	_ = enc.Encode(a)
}

// idSet remembers the last event ids taken, so that an event the registry
// sends again (its first answer came after the endpoint's timeout) does
// not start a second run.
type idSet struct {
	mu   sync.Mutex
	ids  map[string]struct{}
	ring []string
	next int
}

func newIDSet(size int) *idSet {
	return &idSet{ids: map[string]struct{}{}, ring: make([]string, size)}
}

// all reports whether every id was taken before.
func (s *idSet) all(ids []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if _, ok := s.ids[id]; !ok {
			return false
		}
	}
	return true
}

func (s *idSet) add(ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if _, ok := s.ids[id]; ok {
			continue
		}
		delete(s.ids, s.ring[s.next])
		s.ring[s.next] = id
		s.ids[id] = struct{}{}
		s.next = (s.next + 1) % len(s.ring)
	}
}
