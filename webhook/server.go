package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
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
		eps = append(eps, endpoint{"distribution", "/hooks/distribution", bearerAuth{c.DistributionToken},
			func(b []byte) (notice, error) { return parseDistribution(b, dist) }})
	}
	if c.GitLabToken != "" {
		// GitLab's container registry is a fork of distribution and sends
		// the same envelope; its documented secret is the bare header.
		eps = append(eps, endpoint{"gitlab", "/hooks/gitlab", headerAuth{c.GitLabToken},
			func(b []byte) (notice, error) { return parseDistribution(b, gitlab) }})
	}
	if c.HarborAuth != "" {
		eps = append(eps, endpoint{"harbor", "/hooks/harbor", headerAuth{c.HarborAuth},
			func(b []byte) (notice, error) { return parseHarbor(b, harbor) }})
	}
	if c.DockerHubToken != "" {
		eps = append(eps, endpoint{"dockerhub", "/hooks/dockerhub/{token}", pathAuth{c.DockerHubToken}, parseDockerHub})
	}
	if c.GenericKey != "" {
		eps = append(eps, endpoint{"generic", "/hooks/generic", hmacAuth{c.GenericKey},
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
	log     *slog.Logger
	seen    *idSet
}

// answer is the JSON body of every response.
type answer struct {
	Accepted  []string `json:"accepted,omitempty"`
	Ignored   int      `json:"ignored,omitempty"`
	Duplicate bool     `json:"duplicate,omitempty"`
	Error     string   `json:"error,omitempty"`
}

func (s *server) handler(eps []endpoint) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, answer{}) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready() {
			reply(w, http.StatusServiceUnavailable, answer{Error: "the Jobs informer has not synced"})
			return
		}
		reply(w, http.StatusOK, answer{})
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

// hook serves one endpoint.
func (s *server) hook(ep endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := s.log.With("endpoint", ep.name, "remote", r.RemoteAddr)
		if !ep.auth.needsBody() {
			if err := ep.auth.check(r, nil); err != nil {
				unauthorized(w, ep, log)
				return
			}
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				log.Warn("notification refused: too large", "limit", s.maxBody)
				reply(w, http.StatusRequestEntityTooLarge, answer{Error: "body larger than URUNNER_CONF_WEBHOOK_MAX_BODY_BYTES"})
				return
			}
			reply(w, http.StatusBadRequest, answer{Error: "read body: " + err.Error()})
			return
		}
		if ep.auth.needsBody() {
			if err := ep.auth.check(r, body); err != nil {
				unauthorized(w, ep, log)
				return
			}
		}
		n, err := ep.parse(body)
		if err != nil {
			log.Warn("notification refused: malformed", "err", err)
			reply(w, http.StatusBadRequest, answer{Error: err.Error()})
			return
		}
		if len(n.ids) > 0 && s.seen.all(n.ids) {
			log.Debug("notification delivered again: already taken", "ids", n.ids)
			reply(w, http.StatusOK, answer{Duplicate: true})
			return
		}
		if len(n.refs) == 0 {
			log.Debug("notification without a pushed tag", "ignored", n.ignored)
			reply(w, http.StatusOK, answer{Ignored: n.ignored})
			return
		}
		if err := s.push.Push(r.Context(), n.refs); err != nil {
			reply(w, http.StatusServiceUnavailable, answer{Error: "the receiver is stopping"})
			return
		}
		s.seen.add(n.ids)
		log.Info("push accepted", "references", n.refs, "ignored", n.ignored)
		reply(w, http.StatusAccepted, answer{Accepted: n.refs, Ignored: n.ignored})
	})
}

func unauthorized(w http.ResponseWriter, ep endpoint, log *slog.Logger) {
	log.Warn("notification refused: unauthenticated")
	if _, ok := ep.auth.(bearerAuth); ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="urunner webhook"`)
	}
	reply(w, http.StatusUnauthorized, answer{Error: "unauthenticated"})
}

func reply(w http.ResponseWriter, code int, a answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(a)
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
