package testground

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
)

// DistributionOptions configures StartDistribution.
type DistributionOptions struct {
	// BinDir holds docker-registry (hack/tools.sh registry); empty means
	// the same default as ClusterOptions.BinDir.
	BinDir string
	// Endpoints are the registry's notification endpoints.
	Endpoints []NotifyEndpoint
	// AccessLog logs every request, so that ManifestHeads and
	// AccessCounts can count them.
	AccessLog bool
	// Logins maps user to password, written bcrypt-hashed to an htpasswd
	// file (distribution's htpasswd auth): requests without credentials are
	// answered 401 with a Basic challenge, as a private registry does.
	Logins map[string]string
	// TLS serves HTTPS with a self-signed CA certificate for 127.0.0.1,
	// whose PEM is Distribution.CAPEM (a client's caFile).
	TLS bool
}

// NotifyEndpoint is one entry of the registry's notifications.endpoints,
// with the meaning distribution's configuration reference gives each
// field. Zero Timeout, Threshold and Backoff take 2s, 3 and 1s.
type NotifyEndpoint struct {
	Name          string
	URL           string
	Headers       map[string][]string
	Timeout       time.Duration
	Threshold     int
	Backoff       time.Duration
	IgnoreActions []string // e.g. "pull"
}

// Distribution is the CNCF distribution registry 2.8 (Debian's
// docker-registry) running as a child process on a loopback port, with
// filesystem storage in a temporary directory, anonymous or with htpasswd
// logins, over HTTP or HTTPS: the real registry whose notifications the
// webhook receiver is tested with, and whose requests the benchmark counts.
type Distribution struct {
	// Host is "127.0.0.1:PORT", the registry part of image references.
	Host string
	// LogPath is the registry's log, kept until Close.
	LogPath string
	// CAPEM is the certificate clients must trust when TLS is on.
	CAPEM []byte

	dir    string
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	helper *regclient.RegClient
}

// StartDistribution writes a configuration, starts docker-registry and
// returns once it answers /v2/. Close stops it.
func StartDistribution(ctx context.Context, opts DistributionOptions) (d *Distribution, err error) {
	binDir, err := resolveBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(binDir, "docker-registry")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("docker-registry is missing from %s: run hack/tools.sh registry", binDir)
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	d = &Distribution{Host: "127.0.0.1:" + strconv.Itoa(ports[0]), done: make(chan struct{})}
	d.dir, err = os.MkdirTemp("", "urunner-distribution-")
	if err != nil {
		return nil, fmt.Errorf("distribution dir: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.Close())
			d = nil
		}
	}()
	sec, err := d.writeSecurity(opts)
	if err != nil {
		return d, err
	}
	conf, err := distributionConfig(d.Host, filepath.Join(d.dir, "storage"), opts.Endpoints, opts.AccessLog, sec)
	if err != nil {
		return d, err
	}
	confPath := filepath.Join(d.dir, "config.yml")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return d, fmt.Errorf("write distribution config: %w", err)
	}
	d.LogPath = filepath.Join(d.dir, "registry.log")
	logFile, err := os.Create(d.LogPath)
	if err != nil {
		return d, err
	}
	defer logFile.Close()
	d.cmd = exec.Command(bin, "serve", confPath)
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	// Should the test binary die, the kernel ends the registry too.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return d, fmt.Errorf("start docker-registry: %w", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	p := &process{name: "docker-registry", logPath: d.LogPath, cmd: d.cmd, done: d.done}
	tr := &http.Transport{Proxy: nil}
	scheme := "http"
	hostConf := config.Host{Name: d.Host, TLS: config.TLSDisabled}
	if opts.TLS {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(d.CAPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		scheme = "https"
		hostConf.TLS, hostConf.RegCert = config.TLSEnabled, string(d.CAPEM)
	}
	if len(opts.Logins) > 0 {
		// Any login will do: every user may push and pull.
		user := slices.Sorted(maps.Keys(opts.Logins))[0]
		hostConf.User, hostConf.Pass = user, opts.Logins[user]
	}
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()
	if err := p.poll(ctx, 30*time.Second, func(ctx context.Context) error {
		return pingRegistry(ctx, client, scheme+"://"+d.Host+"/v2/", hostConf.User, hostConf.Pass)
	}); err != nil {
		return d, p.failure(fmt.Errorf("wait for docker-registry: %w", err))
	}
	d.helper = regclient.New(regclient.WithConfigHost(hostConf), regclient.WithUserAgent(helperUserAgent))
	return d, nil
}

// helperUserAgent marks the requests of the Distribution's own helper
// (PushImage), which AccessCounts leaves out.
const helperUserAgent = "urunner-testground-distribution-helper"

// security is where the registry finds its TLS pair and htpasswd file;
// empty fields leave the feature off.
type security struct {
	cert, key, htpasswd string
}

// writeSecurity writes the TLS pair and the htpasswd file opts ask for
// into the registry's directory.
func (d *Distribution) writeSecurity(opts DistributionOptions) (security, error) {
	var sec security
	if opts.TLS {
		certPEM, keyPEM, err := selfSignedPEM()
		if err != nil {
			return sec, err
		}
		d.CAPEM = certPEM
		sec.cert, sec.key = filepath.Join(d.dir, "tls.crt"), filepath.Join(d.dir, "tls.key")
		if err := os.WriteFile(sec.cert, certPEM, 0o600); err != nil {
			return sec, fmt.Errorf("write distribution certificate: %w", err)
		}
		if err := os.WriteFile(sec.key, keyPEM, 0o600); err != nil {
			return sec, fmt.Errorf("write distribution key: %w", err)
		}
	}
	if len(opts.Logins) > 0 {
		b, err := htpasswd(opts.Logins)
		if err != nil {
			return sec, err
		}
		sec.htpasswd = filepath.Join(d.dir, "htpasswd")
		if err := os.WriteFile(sec.htpasswd, b, 0o600); err != nil {
			return sec, fmt.Errorf("write htpasswd: %w", err)
		}
	}
	return sec, nil
}

// htpasswd returns the lines of an htpasswd file: distribution reads bcrypt
// hashes only (what `htpasswd -B` writes).
func htpasswd(logins map[string]string) ([]byte, error) {
	var b bytes.Buffer
	for _, user := range slices.Sorted(maps.Keys(logins)) {
		if user == "" || strings.ContainsAny(user, ":\n") {
			return nil, fmt.Errorf("htpasswd user %q: want a name without colon or newline", user)
		}
		// The lowest cost bcrypt allows: every authenticated request checks
		// the hash, and a benchmark measures the client, not bcrypt.
		hash, err := bcrypt.GenerateFromPassword([]byte(logins[user]), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("hash the password of %s: %w", user, err)
		}
		fmt.Fprintf(&b, "%s:%s\n", user, hash)
	}
	return b.Bytes(), nil
}

// pingRegistry succeeds when GET /v2/ answers 200, with basic credentials
// when user is set.
func pingRegistry(ctx context.Context, client *http.Client, url, user, pass string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", helperUserAgent)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// distributionConfig is the registry's YAML configuration (as JSON, which
// YAML reads). The http secret is random, as the registry wants one.
func distributionConfig(addr, storage string, eps []NotifyEndpoint, accessLog bool, sec security) ([]byte, error) {
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	type endpoint struct {
		Name      string              `json:"name"`
		URL       string              `json:"url"`
		Headers   map[string][]string `json:"headers,omitempty"`
		Timeout   string              `json:"timeout"`
		Threshold int                 `json:"threshold"`
		Backoff   string              `json:"backoff"`
		Ignore    map[string][]string `json:"ignore,omitempty"`
	}
	var endpoints []endpoint
	for _, e := range eps {
		ep := endpoint{Name: e.Name, URL: e.URL, Headers: e.Headers, Timeout: "2s", Threshold: 3, Backoff: "1s"}
		if e.Timeout > 0 {
			ep.Timeout = e.Timeout.String()
		}
		if e.Threshold > 0 {
			ep.Threshold = e.Threshold
		}
		if e.Backoff > 0 {
			ep.Backoff = e.Backoff.String()
		}
		if len(e.IgnoreActions) > 0 {
			ep.Ignore = map[string][]string{"actions": e.IgnoreActions}
		}
		endpoints = append(endpoints, ep)
	}
	conf := map[string]any{
		"version": 0.1,
		"log":     map[string]any{"level": "info", "accesslog": map[string]any{"disabled": !accessLog}},
		"storage": map[string]any{
			"filesystem": map[string]any{"rootdirectory": storage},
			"delete":     map[string]any{"enabled": true},
		},
	}
	httpConf := map[string]any{"addr": addr, "secret": hex.EncodeToString(secret)}
	if sec.cert != "" {
		httpConf["tls"] = map[string]any{"certificate": sec.cert, "key": sec.key}
	}
	conf["http"] = httpConf
	if sec.htpasswd != "" {
		conf["auth"] = map[string]any{"htpasswd": map[string]any{"realm": "urunner-testground", "path": sec.htpasswd}}
	}
	if len(endpoints) > 0 {
		conf["notifications"] = map[string]any{"endpoints": endpoints}
	}
	return json.MarshalIndent(conf, "", "  ")
}

// Push is one image pushed to the Distribution.
type Push struct {
	Digest string
	// ManifestPut is when the tag's manifest PUT began: the push becomes
	// visible, and notified, from then on. Blobs were pushed before.
	ManifestPut time.Time
	// Done is when the manifest PUT returned.
	Done time.Time
}

// PushImage pushes the tiny image Registry.PushImage pushes (same seed,
// same digest) and tags it repoTag ("team/app:latest").
func (d *Distribution) PushImage(ctx context.Context, repoTag, seed string) (Push, error) {
	rf, err := ref.New(d.Host + "/" + repoTag)
	if err != nil || rf.Digest != "" {
		return Push{}, fmt.Errorf("image reference %q: want repo:tag", repoTag)
	}
	var p Push
	desc, err := pushSeedImage(ctx, d.helper, rf, seed, platform.Platform{OS: "linux", Architecture: "amd64"}, func() { p.ManifestPut = time.Now() })
	if err != nil {
		return Push{}, fmt.Errorf("push image %s: %w", rf.CommonName(), err)
	}
	p.Digest, p.Done = desc.Digest.String(), time.Now()
	return p, nil
}

// ManifestHeads counts the manifest HEAD requests the registry has
// served so far, from its access log (AccessLog must be on).
func (d *Distribution) ManifestHeads() (int, error) {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"HEAD /v2/`) && strings.Contains(line, "/manifests/") {
			n++
		}
	}
	return n, nil
}

// AccessCounts counts the requests of the registry's access log (AccessLog
// must be on) keyed "METHOD kind STATUS", kind as Registry.Requests names
// it: "HEAD manifest 401" is an authentication challenge, "HEAD manifest
// 200" a lookup. The requests of the Distribution's own helper (PushImage)
// are left out.
func (d *Distribution) AccessCounts() (map[string]int, error) {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		method, path, status, ua, ok := parseAccessLine(line)
		if !ok || ua == helperUserAgent {
			continue
		}
		out[method+" "+requestKind(path)+" "+status]++
	}
	return out, nil
}

// parseAccessLine reads a line of the combined log format of distribution's
// access log:
//
//	127.0.0.1 - - [29/Nov/2026:06:00:00 +0000] "HEAD /v2/a/manifests/v1 HTTP/1.1" 200 0 "" "urunner/dev"
func parseAccessLine(line string) (method, path, status, userAgent string, ok bool) {
	_, rest, found := strings.Cut(line, `] "`)
	if !found {
		return "", "", "", "", false
	}
	request, rest, found := strings.Cut(rest, `" `)
	if !found {
		return "", "", "", "", false
	}
	f := strings.Fields(request)
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/") {
		return "", "", "", "", false
	}
	status, rest, _ = strings.Cut(rest, " ")
	rest = strings.TrimRight(rest, " ")
	if strings.HasSuffix(rest, `"`) {
		if i := strings.LastIndex(rest[:len(rest)-1], `"`); i >= 0 {
			userAgent = rest[i+1 : len(rest)-1]
		}
	}
	path, _, _ = strings.Cut(f[1], "?")
	return f[0], path, status, userAgent, path != "" && len(status) == 3
}

// Close stops the registry (SIGTERM, then SIGKILL after 10 s), by the PID
// it started, and removes its directory.
func (d *Distribution) Close() error {
	var errs []error
	if d.cmd != nil && d.cmd.Process != nil {
		p := &process{name: "docker-registry", logPath: d.LogPath, cmd: d.cmd, done: d.done}
		errs = append(errs, p.stop(false))
	}
	errs = append(errs, os.RemoveAll(d.dir))
	return errors.Join(errs...)
}
