package webhook

import (
	"errors"
	"fmt"
	"strings"

	"github.com/regclient/regclient/types/ref"
)

// canonical returns the reference urunner looks up for a pushed tag:
// registry/repository:tag, with Docker Hub names completed (docker.io,
// library/) exactly as a workload's image is, so that the run can match it.
// A reference without a tag, or pinned by digest, is an error: a push by
// digest moves no tag.
func canonical(s string) (string, error) {
	r, err := ref.New(s)
	if err != nil {
		return "", fmt.Errorf("not an image reference: %w", err)
	}
	if r.Scheme != "reg" {
		return "", fmt.Errorf("not a registry image reference (scheme %s)", r.Scheme)
	}
	if r.Digest != "" {
		return "", errors.New("names a digest, not a tag")
	}
	// ref.New gives "latest" to a reference without a tag; a notification
	// always names the tag it moved, so the input must have one.
	if !hasTag(s) {
		return "", errors.New("has no tag")
	}
	return r.Registry + "/" + r.Repository + ":" + r.Tag, nil
}

// hasTag reports whether the reference names a tag after its last path
// element (a port's colon is in the host, before the first slash).
func hasTag(s string) bool {
	last := s[strings.LastIndex(s, "/")+1:]
	return strings.Contains(last, ":")
}

// hostRewrite turns the registry host a notification names into the host
// the cluster's workloads name. Registries name themselves as their
// pushers reached them (distribution's request.host is the pusher's Host
// header; Harbor's resource_url its external URL), which may not be how
// pods pull: "registry:5000" inside a CI network, "registry.example.com"
// in the cluster.
type hostRewrite struct {
	fixed string            // every reference gets this host
	hosts map[string]string // from → to; unmapped hosts are kept
}

// parseHostRewrite reads "HOST" (fix the host of every reference) or
// "FROM=TO,FROM2=TO2" (map some hosts). Empty means no rewrite.
func parseHostRewrite(s string) (hostRewrite, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return hostRewrite{}, nil
	}
	if !strings.Contains(s, "=") {
		h, err := normalizeHost(s)
		if err != nil {
			return hostRewrite{}, err
		}
		return hostRewrite{fixed: h}, nil
	}
	hr := hostRewrite{hosts: map[string]string{}}
	for _, pair := range strings.Split(s, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return hostRewrite{}, fmt.Errorf("%q: want FROM=TO", pair)
		}
		f, err := normalizeHost(from)
		if err != nil {
			return hostRewrite{}, err
		}
		t, err := normalizeHost(to)
		if err != nil {
			return hostRewrite{}, err
		}
		hr.hosts[f] = t
	}
	return hr, nil
}

// apply returns host as the cluster names it.
func (hr hostRewrite) apply(host string) string {
	if hr.fixed != "" {
		return hr.fixed
	}
	if h, err := normalizeHost(host); err == nil {
		host = h
	}
	if to, ok := hr.hosts[host]; ok {
		return to
	}
	return host
}

// normalizeHost returns the registry name images use for host[:port]
// ("index.docker.io" is "docker.io").
func normalizeHost(host string) (string, error) {
	host = strings.TrimSpace(host)
	r, err := ref.New(host + "/probe")
	if host == "" || strings.Contains(host, "/") || err != nil || (r.Repository != "probe" && r.Repository != "library/probe") {
		return "", fmt.Errorf("%q is not a registry host[:port]", host)
	}
	return r.Registry, nil
}
