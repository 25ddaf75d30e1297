package registry

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/regclient/regclient/types/ref"
)

// ErrNotRegistry is returned for an image that does not name a registry
// repository, such as an ocidir:// path.
var ErrNotRegistry = errors.New("not a registry image reference")

// ParseImage parses a container image as Kubernetes would pull it: Docker
// Hub names gain docker.io and library/, a missing tag means latest.
func ParseImage(image string) (ref.Ref, error) {
	r, err := ref.New(image)
	if err != nil {
		return ref.Ref{}, fmt.Errorf("parse image %q: %w", image, err)
	}
	if r.Scheme != "reg" {
		return ref.Ref{}, fmt.Errorf("parse image %q: %w (scheme %s)", image, ErrNotRegistry, r.Scheme)
	}
	return r, nil
}

// Pinned reports whether r names a digest: its content can never change, so
// it is never looked up.
func Pinned(r ref.Ref) bool { return r.Digest != "" }

// Key is the canonical name of a tag, registry/repository:tag, under which
// a lookup is deduplicated and remembered.
func Key(r ref.Ref) string { return r.Registry + "/" + r.Repository + ":" + r.Tag }

// NormalizeHost returns the registry name images use for host, so that
// "index.docker.io" and "docker.io" name the same registry.
func NormalizeHost(host string) (string, error) {
	r, err := ref.New(host + "/probe")
	if err != nil || r.Repository != "probe" && r.Repository != "library/probe" {
		return "", fmt.Errorf("%q is not a registry host[:port]", host)
	}
	return r.Registry, nil
}

// ServerHost returns the registry name of a pull secret's server entry,
// which may be a URL ("https://index.docker.io/v1/") or a bare host; ""
// when it names no registry.
func ServerHost(server string) string {
	s := server
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	s, _, _ = strings.Cut(s, "/")
	h, err := NormalizeHost(s)
	if err != nil {
		return ""
	}
	return h
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// validDigest reports whether d is a digest urunner can compare and store.
// Anything else from a registry is treated as a failed lookup.
func validDigest(d string) bool {
	return digestRE.MatchString(strings.TrimSpace(d)) && d == strings.TrimSpace(d)
}

// Image is a container image as urunner tracks it.
type Image struct {
	// Ref is the reference looked up: registry, repository and tag.
	Ref ref.Ref
	// Named is its canonical name, registry/repository:tag (see Key), or
	// registry/repository for an image pinned by digest alone.
	Named string
	// Digest is the digest the image string pins, if any.
	Digest string
	// Match is Named as a pushed reference is compared with it (see
	// MatchName): host in lower case, Docker Hub's names completed after.
	Match string
}

// Canonical parses image once, as Kubernetes pulls it, so that every
// spelling of one image ("app", "docker.io/library/app:latest") has one
// name, one lookup and one credential scope.
func Canonical(image string) (Image, error) {
	r, err := ParseImage(image)
	if err != nil {
		return Image{}, err
	}
	im := Image{Digest: r.Digest}
	r.Digest = ""
	im.Ref = r
	if r.Tag == "" {
		im.Named = r.Registry + "/" + r.Repository
	} else {
		im.Named = Key(r)
	}
	im.Match = im.Named
	// A registry in upper case is the image's first element, as spelled.
	if lower := strings.ToLower(r.Registry); lower != r.Registry && strings.HasPrefix(image, r.Registry) {
		if folded, err := Canonical(lower + image[len(r.Registry):]); err == nil {
			im.Match = folded.Named
		}
	}
	return im, nil
}

// MatchName returns the name under which a canonical reference with a tag
// (a lookup's Key, a stored reference) and a pushed reference are
// compared, to restrict a pushed run to what was pushed: the canonical
// name of its spelling with the registry host in lower case, host names
// being compared without regard to case as DNS does. Docker Hub's names
// are completed after folding, so "Docker.IO/nginx" matches a push of
// docker.io/library/nginx. The lookup itself keeps the host as spelled:
// watched registries and their credentials are configured by it.
func MatchName(name string) string {
	host, _, ok := strings.Cut(name, "/")
	if !ok || strings.ToLower(host) == host {
		return name // canonical names are their own match: no parse
	}
	if im, err := Canonical(name); err == nil {
		return im.Match
	}
	return strings.ToLower(host) + name[len(host):]
}
