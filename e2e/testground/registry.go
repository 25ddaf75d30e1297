package testground

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/olareg/olareg"
	olaregconfig "github.com/olareg/olareg/config"
	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	v1 "github.com/regclient/regclient/types/oci/v1"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
	"golang.org/x/crypto/bcrypt"
)

// RegistryOptions configures StartRegistry.
type RegistryOptions struct {
	// Logins maps user to password. Nil serves anonymous access for
	// everything; otherwise olareg's own basic auth answers with 401 and a
	// WWW-Authenticate challenge, as a real private registry does.
	Logins map[string]string
	// AllowAnonymousRead lets requests without credentials pull when Logins
	// is set.
	AllowAnonymousRead bool
	// Latency is slept before every counted request is served, fault or not.
	Latency time.Duration
	// TLS serves HTTPS with a self-signed certificate for 127.0.0.1, whose
	// PEM is Registry.CAPEM.
	TLS bool
	// TokenLogins maps user to password, as Logins does, but through the
	// Docker token flow: olareg answers 401 with
	// `WWW-Authenticate: Bearer realm="<scheme>://Host/token",service=...,scope=...`
	// and its /token endpoint (counted as "GET token") issues a token for
	// valid basic credentials, as GitLab's /jwt/auth and ACR's
	// /oauth2/token do. AllowAnonymousRead applies too. Set Logins or
	// TokenLogins, not both.
	TokenLogins map[string]string
	// TokenService is the service the challenge names and /token requires;
	// empty for Host. GitLab's is "container_registry", ACR's the registry
	// host.
	TokenService string
	// RealmHost, with TokenLogins, names the token service by this host
	// and the registry's port instead of 127.0.0.1 (use "localhost"): a
	// token realm on another host than the registry, as registries behind
	// a CDN or with a separate auth service have. The TLS certificate
	// covers localhost too.
	RealmHost string
	// NoReferrers serves no OCI 1.1 referrers API, as registries that
	// predate it: /v2/<repo>/referrers/<digest> answers 404 (what the
	// distribution spec tells clients to take as "unsupported"; olareg's
	// own switch answers 405, which clients take as a failure) and a
	// manifest with a subject is stored without the OCI-Subject header, so
	// clients keep referrers in the sha256-<hex> tag instead.
	NoReferrers bool
	// Extra serves requests whose path starts with a key (the longest key
	// wins) instead of olareg: the other endpoints of a registry's
	// ecosystem, such as ACR's POST /oauth2/exchange. They are counted
	// ("POST other"), delayed and faulted like any request.
	Extra map[string]http.Handler
	// RateLimit, when set, limits pulls as Docker Hub does: every manifest
	// request's answer carries RateLimit-Limit and RateLimit-Remaining
	// ("100;w=21600"), each counted manifest GET (a pull) takes one from
	// what remains and HEADs take nothing, and once nothing remains a
	// manifest GET is answered 429 with a Retry-After of the window.
	RateLimit *RateLimit
}

// RateLimit is a pull limit per window (Docker Hub's anonymous one is 100
// per 6 hours).
type RateLimit struct {
	Limit  int
	Window time.Duration
}

// Registry is an in-process OCI registry (olareg, memory storage) served on
// a loopback port, behind a middleware that counts requests and can delay
// or fail them.
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry part of image references.
	Host string
	// CAPEM is the PEM certificate clients must trust when TLS is on.
	CAPEM []byte

	olareg  *olareg.Server
	srv     *http.Server
	served  chan error
	latency time.Duration
	extra   map[string]http.Handler
	// noReferrers answers the referrers API with 404.
	noReferrers bool
	// rateLimit is RegistryOptions.RateLimit; remaining what is left of it.
	rateLimit *RateLimit
	remaining int
	// authDir holds olareg's users file when TokenLogins is set.
	authDir string
	// helperUA marks the requests of the Registry's own helper client so
	// the middleware lets them through uncounted. It carries a random
	// token so that no client under test can send it by accident.
	helperUA string
	helper   *regclient.RegClient

	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	requests map[string]int
	users    map[string]map[string]bool // user → repositories asked
	fault    func(w http.ResponseWriter, req *http.Request) bool
}

// StartRegistry starts a registry on a free 127.0.0.1 port. Close it when
// done.
func StartRegistry(opts RegistryOptions) (*Registry, error) {
	if opts.Logins != nil && opts.TokenLogins != nil {
		return nil, errors.New("start registry: set Logins or TokenLogins, not both")
	}
	token := make([]byte, 8)
	if _, err := rand.Read(token); err != nil {
		return nil, fmt.Errorf("generate helper marker: %w", err)
	}
	r := &Registry{
		served:      make(chan error, 1),
		latency:     opts.Latency,
		noReferrers: opts.NoReferrers,
		extra:       opts.Extra,
		rateLimit:   opts.RateLimit,
		helperUA:    "urunner-testground-helper/" + hex.EncodeToString(token),
		requests:    map[string]int{},
		users:       map[string]map[string]bool{},
	}

	// Listen first: the token realm names the address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for registry: %w", err)
	}
	r.Host = ln.Addr().String()
	if r.rateLimit != nil {
		r.remaining = r.rateLimit.Limit
	}
	r.srv = &http.Server{
		Handler:           http.HandlerFunc(r.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
	}
	hostConf := config.Host{Name: r.Host, TLS: config.TLSDisabled}
	scheme := "http"
	if opts.TLS {
		certPEM, cert, err := selfSignedCert()
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		r.CAPEM = certPEM
		r.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, r.srv.TLSConfig)
		hostConf.TLS = config.TLSEnabled
		hostConf.RegCert = string(certPEM)
		scheme = "https"
	}

	yes := true
	conf := olaregconfig.Config{
		Storage: olaregconfig.ConfigStorage{StoreType: olaregconfig.StoreMem},
		API:     olaregconfig.ConfigAPI{DeleteEnabled: &yes},
	}
	if opts.NoReferrers {
		no := false
		conf.API.Referrer.Enabled = &no
	}
	logins := opts.Logins
	switch {
	case opts.Logins != nil:
		// From a file, not NewAuthBasicStatic: that one hashes at bcrypt's
		// default cost, and olareg checks the hash on every request.
		file, err := r.writeAuthFile(opts.Logins, opts.AllowAnonymousRead)
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("configure registry logins: %w", err)
		}
		conf.Auth = olaregconfig.NewAuthBasicFile(file)
	case opts.TokenLogins != nil:
		logins = opts.TokenLogins
		service := opts.TokenService
		if service == "" {
			service = r.Host
		}
		file, err := r.writeAuthFile(opts.TokenLogins, opts.AllowAnonymousRead)
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("configure registry token logins: %w", err)
		}
		realm := r.Host
		if opts.RealmHost != "" {
			_, port, _ := net.SplitHostPort(r.Host)
			realm = net.JoinHostPort(opts.RealmHost, port)
		}
		conf.Auth = olaregconfig.NewAuthTokenOpaque(file,
			olaregconfig.WithAuthRealm(scheme+"://"+realm+"/token"),
			olaregconfig.WithAuthService(service))
	}
	r.olareg = olareg.New(conf)

	if len(logins) > 0 {
		// Any login will do: every user has full access.
		user := slices.Sorted(maps.Keys(logins))[0]
		hostConf.User, hostConf.Pass = user, logins[user]
	}
	r.helper = regclient.New(
		regclient.WithConfigHost(hostConf),
		regclient.WithUserAgent(r.helperUA),
	)

	go func() { r.served <- r.srv.Serve(ln) }()
	return r, nil
}

// writeAuthFile writes olareg's users and ACL file into a new r.authDir
// (removed by Close): every user may read, write and delete everywhere,
// and anonymous users may read when allowed.
func (r *Registry) writeAuthFile(logins map[string]string, allowAnonymousRead bool) (string, error) {
	dir, err := os.MkdirTemp("", "urunner-testground-auth-")
	if err != nil {
		return "", err
	}
	file, err := writeAuthFileIn(dir, logins, allowAnonymousRead)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	r.authDir = dir
	return file, nil
}

func writeAuthFileIn(dir string, logins map[string]string, allowAnonymousRead bool) (string, error) {
	type user struct {
		Cred string `json:"cred"`
	}
	type acl struct {
		Repo      string   `json:"repo"`
		Access    []string `json:"access"`
		Members   []string `json:"members,omitempty"`
		Anonymous bool     `json:"anonymous,omitempty"`
	}
	doc := struct {
		Users map[string]user `json:"users"`
		ACLs  []acl           `json:"acls"`
	}{Users: map[string]user{}}
	for name, pass := range logins {
		// The lowest cost bcrypt allows, as htpasswd does for distribution:
		// olareg checks the hash on every basic-auth request and every
		// token request, which at the default cost took most of a
		// registry test's time under the race detector. What is checked
		// (which password opens which door) is the same at any cost.
		hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
		if err != nil {
			return "", fmt.Errorf("hash password of %s: %w", name, err)
		}
		doc.Users[name] = user{string(hash)}
	}
	doc.ACLs = append(doc.ACLs, acl{Repo: "*", Access: []string{"read", "write", "delete"}, Members: slices.Sorted(maps.Keys(logins))})
	if allowAnonymousRead {
		doc.ACLs = append(doc.ACLs, acl{Repo: "*", Access: []string{"read"}, Anonymous: true})
	}
	// JSON is YAML, which olareg reads.
	b, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	file := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return "", err
	}
	return file, nil
}

// Close stops the server, waiting briefly for requests in flight, and
// frees the stored content. Closing again returns the first result, so a
// test may close a registry to simulate an outage and still clean up.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.close() })
	return r.closeErr
}

func (r *Registry) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		// Shutdown waits for in-flight requests (a long Latency), and
		// net/http counts a connection accepted but not yet used as busy
		// for 5 s: a client that dialled ahead leaves such connections.
		// Neither may keep a test waiting, nor fail it.
		_ = r.srv.Close()
	}
	errServe := <-r.served
	if errors.Is(errServe, http.ErrServerClosed) {
		errServe = nil
	} else if errServe != nil {
		errServe = fmt.Errorf("serve registry %s: %w", r.Host, errServe)
	}
	errStore := r.olareg.Close()
	if errStore != nil {
		errStore = fmt.Errorf("close registry store: %w", errStore)
	}
	var errAuth error
	if r.authDir != "" {
		errAuth = os.RemoveAll(r.authDir)
	}
	return errors.Join(errServe, errStore, errAuth)
}

// serveHTTP counts, delays and possibly faults a request before handing it
// to olareg. Requests from the Registry's own helpers skip all three.
func (r *Registry) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Header.Get("User-Agent") == r.helperUA {
		r.olareg.ServeHTTP(w, req)
		return
	}
	r.mu.Lock()
	r.requests[req.Method+" "+requestKind(req.URL.Path)]++
	if user, _, ok := req.BasicAuth(); ok && strings.HasPrefix(req.URL.Path, "/v2/") {
		if r.users[user] == nil {
			r.users[user] = map[string]bool{}
		}
		r.users[user][repository(req.URL.Path)] = true
	}
	fault := r.fault
	limited := r.limitRate(w, req)
	r.mu.Unlock()

	if r.latency > 0 {
		t := time.NewTimer(r.latency)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			return
		}
	}
	if limited {
		w.Header().Set("Retry-After", strconv.Itoa(int(r.rateLimit.Window/time.Second)))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}`))
		return
	}
	if fault != nil && fault(w, req) {
		return
	}
	if r.noReferrers && strings.Contains(req.URL.Path, "/referrers/") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errors":[{"code":"NAME_UNKNOWN","message":"referrers API not supported"}]}`))
		return
	}
	if h := r.extraHandler(req.URL.Path); h != nil {
		h.ServeHTTP(w, req)
		return
	}
	r.olareg.ServeHTTP(w, req)
}

// limitRate takes a manifest GET from what remains of the rate limit and
// sets the rate limit headers of a manifest request's answer, as Docker Hub
// does; it reports whether the request is over the limit. r.mu is held.
func (r *Registry) limitRate(w http.ResponseWriter, req *http.Request) bool {
	if r.rateLimit == nil || requestKind(req.URL.Path) != "manifest" {
		return false
	}
	over := false
	if req.Method == http.MethodGet {
		over = r.remaining == 0
		r.remaining = max(r.remaining-1, 0)
	}
	w.Header().Set("RateLimit-Limit", fmt.Sprintf("%d;w=%d", r.rateLimit.Limit, int(r.rateLimit.Window/time.Second)))
	w.Header().Set("RateLimit-Remaining", fmt.Sprintf("%d;w=%d", r.remaining, int(r.rateLimit.Window/time.Second)))
	return over
}

// RateLimitRemaining returns what remains of RegistryOptions.RateLimit.
func (r *Registry) RateLimitRemaining() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.remaining
}

// SetRateLimitRemaining sets what remains of RegistryOptions.RateLimit, as
// if other clients had spent the rest of the window (or it had started
// anew).
func (r *Registry) SetRateLimitRemaining(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.remaining = n
}

// extraHandler returns the Extra handler with the longest prefix of path,
// or nil.
func (r *Registry) extraHandler(path string) http.Handler {
	best := ""
	for prefix := range r.extra {
		if strings.HasPrefix(path, prefix) && len(prefix) > len(best) {
			best = prefix
		}
	}
	if best == "" {
		return nil
	}
	return r.extra[best]
}

// requestKind names the distribution API endpoint of a request path.
func requestKind(path string) string {
	switch {
	case path == "/v2" || path == "/v2/":
		return "ping"
	case path == "/token":
		return "token"
	case !strings.HasPrefix(path, "/v2/"):
		return "other"
	case strings.Contains(path, "/manifests/"):
		return "manifest"
	// Upload paths also contain "/blobs/", so they are checked first.
	case strings.Contains(path, "/blobs/uploads/"):
		return "upload"
	case strings.Contains(path, "/blobs/"):
		return "blob"
	case strings.HasSuffix(path, "/tags/list"):
		return "tags"
	default:
		return "other"
	}
}

// Requests returns a snapshot of the counted requests keyed "METHOD kind",
// kind being one of manifest, blob, upload, tags, ping, token or other. An
// authentication challenge answered with a retry counts twice.
func (r *Registry) Requests() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.requests)
}

// Users returns, for each user that sent basic credentials (Logins), the
// repositories it asked for.
func (r *Registry) Users() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for u, repos := range r.users {
		out[u] = slices.Sorted(maps.Keys(repos))
	}
	return out
}

// repository returns the repository of a /v2/<name>/(manifests|blobs|tags)/...
// path, "" for others.
func repository(path string) string {
	rest := strings.TrimPrefix(path, "/v2/")
	for _, sep := range []string{"/manifests/", "/blobs/", "/tags/"} {
		if i := strings.LastIndex(rest, sep); i > 0 {
			return rest[:i]
		}
	}
	return ""
}

// ResetRequests sets all request counts to zero.
func (r *Registry) ResetRequests() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.requests)
	clear(r.users)
}

// SetFault installs f in front of olareg for counted requests: when f
// returns true it has answered the request and olareg is not called. Nil
// removes the fault.
func (r *Registry) SetFault(f func(w http.ResponseWriter, req *http.Request) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fault = f
}

// PushImage pushes a tiny linux/amd64 OCI image whose single layer is
// derived from seed and tags it repoTag (e.g. "team/app:latest", relative
// to Host). The same seed gives the same digest, a different seed a
// different one. It returns the manifest digest.
func (r *Registry) PushImage(ctx context.Context, repoTag string, seed string) (string, error) {
	rf, err := r.ref(repoTag)
	if err != nil {
		return "", err
	}
	desc, err := r.pushImage(ctx, rf, seed, platform.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		return "", fmt.Errorf("push image %s: %w", rf.CommonName(), err)
	}
	return desc.Digest.String(), nil
}

// PushIndex pushes one image per platform ("linux/arm64" -> seed), by
// digest, and an OCI index over them tagged repoTag. It returns the index
// digest and the child manifest digest of each platform.
func (r *Registry) PushIndex(ctx context.Context, repoTag string, platforms map[string]string) (string, map[string]string, error) {
	rf, err := r.ref(repoTag)
	if err != nil {
		return "", nil, err
	}
	if len(platforms) == 0 {
		return "", nil, fmt.Errorf("push index %s: no platforms", rf.CommonName())
	}
	children := make(map[string]string, len(platforms))
	descs := make([]descriptor.Descriptor, 0, len(platforms))
	// Sorted so that the same platforms and seeds give the same index digest.
	for _, name := range slices.Sorted(maps.Keys(platforms)) {
		plat, err := platform.Parse(name)
		if err != nil {
			return "", nil, fmt.Errorf("push index %s: platform %q: %w", rf.CommonName(), name, err)
		}
		desc, err := r.pushImage(ctx, rf.SetDigest(""), platforms[name], plat)
		if err != nil {
			return "", nil, fmt.Errorf("push index %s: platform %s: %w", rf.CommonName(), name, err)
		}
		desc.Platform = &plat
		descs = append(descs, desc)
		children[name] = desc.Digest.String()
	}
	idx, err := manifest.New(manifest.WithOrig(v1.Index{
		Versioned: v1.IndexSchemaVersion,
		MediaType: mediatype.OCI1ManifestList,
		Manifests: descs,
	}))
	if err != nil {
		return "", nil, fmt.Errorf("push index %s: build index: %w", rf.CommonName(), err)
	}
	if err := r.helper.ManifestPut(ctx, rf, idx); err != nil {
		return "", nil, fmt.Errorf("push index %s: %w", rf.CommonName(), err)
	}
	return idx.GetDescriptor().Digest.String(), children, nil
}

// DeleteTag removes the tag repoTag; the manifest it pointed to stays
// reachable by digest.
func (r *Registry) DeleteTag(ctx context.Context, repoTag string) error {
	rf, err := r.ref(repoTag)
	if err != nil {
		return err
	}
	if err := r.helper.TagDelete(ctx, rf); err != nil {
		return fmt.Errorf("delete tag %s: %w", rf.CommonName(), err)
	}
	return nil
}

func (r *Registry) ref(repoTag string) (ref.Ref, error) {
	rf, err := ref.New(r.Host + "/" + repoTag)
	if err != nil {
		return ref.Ref{}, fmt.Errorf("parse image reference %q: %w", repoTag, err)
	}
	if rf.Digest != "" {
		return ref.Ref{}, fmt.Errorf("image reference %q: want repo:tag, not a digest", repoTag)
	}
	return rf, nil
}

// pushImage pushes the config and layer blobs and the manifest. When rf
// has no digest the manifest is tagged with rf's tag, otherwise it is
// pushed by its own digest only.
func (r *Registry) pushImage(ctx context.Context, rf ref.Ref, seed string, plat platform.Platform) (descriptor.Descriptor, error) {
	return pushSeedImage(ctx, r.helper, rf, seed, plat, nil)
}

// PushLabeledImage pushes, as PushImage does, an image whose config
// carries labels (org.opencontainers.image.revision, …), and returns its
// digest.
func (r *Registry) PushLabeledImage(ctx context.Context, repoTag, seed string, labels map[string]string) (string, error) {
	rf, err := r.ref(repoTag)
	if err != nil {
		return "", err
	}
	d, err := pushImageWith(ctx, r.helper, rf, seed, platform.Platform{OS: "linux", Architecture: "amd64"}, labels, nil)
	return d.Digest.String(), err
}

// pushSeedImage pushes, with rc, the image pushImage describes.
// beforeManifest, when set, is called right before the manifest PUT.
func pushSeedImage(ctx context.Context, rc *regclient.RegClient, rf ref.Ref, seed string, plat platform.Platform, beforeManifest func()) (descriptor.Descriptor, error) {
	return pushImageWith(ctx, rc, rf, seed, plat, nil, beforeManifest)
}

func pushImageWith(ctx context.Context, rc *regclient.RegClient, rf ref.Ref, seed string, plat platform.Platform, labels map[string]string, beforeManifest func()) (descriptor.Descriptor, error) {
	layer, diffID, err := seedLayer(seed)
	if err != nil {
		return descriptor.Descriptor{}, err
	}
	// No timestamps, so the digest depends on the seed and platform only.
	conf, err := json.Marshal(v1.Image{
		Platform: plat,
		// omitzero: without labels, the digests stay what they were.
		Config: v1.ImageConfig{Labels: labels},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	})
	if err != nil {
		return descriptor.Descriptor{}, fmt.Errorf("encode image config: %w", err)
	}
	confDesc := descriptor.Descriptor{MediaType: mediatype.OCI1ImageConfig, Digest: digest.FromBytes(conf), Size: int64(len(conf))}
	layerDesc := descriptor.Descriptor{MediaType: mediatype.OCI1LayerGzip, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	for _, b := range []struct {
		desc descriptor.Descriptor
		data []byte
	}{{confDesc, conf}, {layerDesc, layer}} {
		if _, err := rc.BlobPut(ctx, rf, b.desc, bytes.NewReader(b.data)); err != nil {
			return descriptor.Descriptor{}, fmt.Errorf("push blob %s: %w", b.desc.Digest, err)
		}
	}
	m, err := manifest.New(manifest.WithOrig(v1.Manifest{
		Versioned: v1.ManifestSchemaVersion,
		MediaType: mediatype.OCI1Manifest,
		Config:    confDesc,
		Layers:    []descriptor.Descriptor{layerDesc},
	}))
	if err != nil {
		return descriptor.Descriptor{}, fmt.Errorf("build manifest: %w", err)
	}
	desc := m.GetDescriptor()
	if rf.Tag == "" {
		rf = rf.SetDigest(desc.Digest.String())
	}
	if beforeManifest != nil {
		beforeManifest()
	}
	if err := rc.ManifestPut(ctx, rf, m); err != nil {
		return descriptor.Descriptor{}, fmt.Errorf("push manifest: %w", err)
	}
	return descriptor.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}, nil
}

// seedLayer returns a gzipped tar holding one file with seed as content,
// and the digest of the uncompressed tar (the config's diff ID). Fixed
// header fields keep it reproducible.
func seedLayer(seed string) (layer []byte, diffID digest.Digest, err error) {
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	if err := tw.WriteHeader(&tar.Header{
		Name:    "seed",
		Mode:    0o644,
		Size:    int64(len(seed)),
		ModTime: time.Unix(0, 0),
		Format:  tar.FormatPAX,
	}); err != nil {
		return nil, "", fmt.Errorf("write layer: %w", err)
	}
	if _, err := tw.Write([]byte(seed)); err != nil {
		return nil, "", fmt.Errorf("write layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, "", fmt.Errorf("write layer: %w", err)
	}
	var gzBuf bytes.Buffer
	gw := gzip.NewWriter(&gzBuf)
	if _, err := gw.Write(tarBuf.Bytes()); err != nil {
		return nil, "", fmt.Errorf("compress layer: %w", err)
	}
	if err := gw.Close(); err != nil {
		return nil, "", fmt.Errorf("compress layer: %w", err)
	}
	return gzBuf.Bytes(), digest.FromBytes(tarBuf.Bytes()), nil
}

// selfSignedCert makes a CA certificate that is also the serving
// certificate for 127.0.0.1, so clients can trust it as a root (regclient's
// RegCert) without a separate CA.
func selfSignedCert() ([]byte, tls.Certificate, error) {
	certPEM, keyPEM, err := selfSignedPEM()
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("load registry key pair: %w", err)
	}
	return certPEM, cert, nil
}

// selfSignedPEM is selfSignedCert's certificate and key as PEM, for a
// server that reads them from files.
func selfSignedPEM() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate registry key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("generate certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "urunner testground registry"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create registry certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode registry key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}
