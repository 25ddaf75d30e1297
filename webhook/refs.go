package webhook

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/urunner/urunner/registry"
)

// The grammar of the distribution spec, which registries enforce on push:
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests
var (
	// pathComponent is one element of a repository name.
	pathComponent = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$`)
	// tagPattern is a tag: at most 128 characters.
	tagPattern = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	// hostPattern is a DNS name or IPv4 address with an optional port.
	hostPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?$`)
)

// maxNameLen is the distribution spec's limit on registry host, "/" and
// repository name together, which clients impose and registries assume.
const maxNameLen = 255

// validName checks host/repository:tag against the distribution spec's
// grammar, before anything is parsed further: a reference no registry can
// hold (a 300 KB repository path) must never reach a Job.
func validName(host, repo, tag string) error {
	switch {
	case len(host) > 253 || !hostPattern.MatchString(strings.ToLower(host)):
		return fmt.Errorf("host %.64q is not a registry host[:port]", host)
	case repo == "":
		return errors.New("repository is empty")
	case len(host)+1+len(repo) > maxNameLen:
		return fmt.Errorf("host and repository are %d characters, more than the %d the distribution spec allows", len(host)+1+len(repo), maxNameLen)
	case !tagPattern.MatchString(tag):
		return fmt.Errorf("tag %.140q is not a tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})", tag)
	}
	for _, c := range strings.Split(repo, "/") {
		if !pathComponent.MatchString(c) {
			return fmt.Errorf("repository %q: component %q is not [a-z0-9]+ separated by ., _, __ or -", repo, c)
		}
	}
	return nil
}

// pushedRef returns the reference urunner looks up for a push of tag to
// host/repo, after checking each part: registry/repository:tag as the run
// matches a workload's image (registry.Canonical's Match: host in lower
// case, docker.io and library/ completed); or, for a signature or
// attestation tag, its subject (see subjectOf).
func pushedRef(host, repo, tag string) (string, error) {
	if err := validName(host, repo, tag); err != nil {
		return "", err
	}
	r, err := canonical(host + "/" + repo + ":" + tag)
	if err != nil {
		return "", err
	}
	if s, ok := subjectOf(r); ok {
		return s, nil
	}
	return r, nil
}

// splitRef cuts host/repository:tag into its parts; a reference without a
// tag, or pinned by digest, is an error: a push by digest moves no tag.
func splitRef(s string) (host, repo, tag string, err error) {
	host, rest, ok := strings.Cut(s, "/")
	if !ok || rest == "" {
		return "", "", "", errors.New("want host/repository:tag")
	}
	if strings.Contains(rest, "@") {
		return "", "", "", errors.New("names a digest, not a tag")
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 || i < strings.LastIndex(rest, "/") {
		return "", "", "", errors.New("has no tag")
	}
	return host, rest[:i], rest[i+1:], nil
}

// canonical returns the name a pushed tag is matched under, the one the
// run gives a workload's image of any spelling (registry.Canonical):
// registry/repository:tag, host in lower case, Docker Hub's names
// completed. A reference without a tag, or pinned by digest, is an error:
// a push by digest moves no tag.
func canonical(s string) (string, error) {
	im, err := registry.Canonical(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("not an image reference: %w", err)
	case im.Digest != "":
		return "", errors.New("names a digest, not a tag")
	// A missing tag means latest to a workload; a notification always
	// names the tag it moved, so the input must have one.
	case !hasTag(s):
		return "", errors.New("has no tag")
	}
	return im.Match, nil
}

// hasTag reports whether the reference names a tag after its last path
// element (a port's colon is in the host, before the first slash).
func hasTag(s string) bool {
	last := s[strings.LastIndex(s, "/")+1:]
	return strings.Contains(last, ":")
}

// signatureTag is a tag cosign and the OCI referrers tag fallback write
// beside an image: sha256-<digest hex>, optionally .sig, .att or .sbom.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#referrers-tag-schema
var signatureTag = regexp.MustCompile(`^sha256-([a-f0-9]{64})(\.sig|\.att|\.sbom)?$`)

// subjectOf reports whether the canonical reference r is a signature's or
// attestation's tag, and returns then its subject, registry/repository@
// sha256:<hex>. Such a push moves no tag a workload runs; it may make the
// subject's digest verifiable, so its run is the subject's references'.
func subjectOf(r string) (string, bool) {
	i := strings.LastIndex(r, ":")
	m := signatureTag.FindStringSubmatch(r[i+1:])
	if m == nil {
		return "", false
	}
	return r[:i] + "@sha256:" + m[1], true
}

// isSubject reports whether a pushed reference is a subject digest.
func isSubject(r string) bool { return strings.Contains(r, "@sha256:") }

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

// apply returns host as the cluster names it. Host names are compared
// without regard to case, as DNS does.
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
// ("index.docker.io" is "docker.io"), in lower case.
func normalizeHost(host string) (string, error) {
	host = strings.ToLower(strings.TrimSpace(host))
	if host == "" || strings.Contains(host, "/") {
		return "", fmt.Errorf("%q is not a registry host[:port]", host)
	}
	return registry.NormalizeHost(host)
}
