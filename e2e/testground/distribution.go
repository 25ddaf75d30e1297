package testground

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

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
	// AccessLog logs every request, so that ManifestHeads can count them.
	AccessLog bool
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
// filesystem storage in a temporary directory and no authentication: the
// real registry whose notifications the webhook receiver is tested with.
type Distribution struct {
	// Host is "127.0.0.1:PORT", the registry part of image references.
	Host string
	// LogPath is the registry's log, kept until Close.
	LogPath string

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
	conf, err := distributionConfig(d.Host, filepath.Join(d.dir, "storage"), opts.Endpoints, opts.AccessLog)
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
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	if err := p.poll(ctx, 30*time.Second, func(ctx context.Context) error {
		return checkHealth(ctx, client, "http://"+d.Host+"/v2/", "", nil)
	}); err != nil {
		return d, p.failure(fmt.Errorf("wait for docker-registry: %w", err))
	}
	d.helper = regclient.New(regclient.WithConfigHost(config.Host{Name: d.Host, TLS: config.TLSDisabled}))
	return d, nil
}

// distributionConfig is the registry's YAML configuration (as JSON, which
// YAML reads). The http secret is random, as the registry wants one.
func distributionConfig(addr, storage string, eps []NotifyEndpoint, accessLog bool) ([]byte, error) {
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
		"http": map[string]any{"addr": addr, "secret": hex.EncodeToString(secret)},
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
