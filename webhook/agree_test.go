package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/urunner/urunner/registry"
)

// A push finds its workloads only if the receiver and the run give one
// image the same name, however each spells it: the receiver sends what a
// notification's host, repository and tag become (URUNNER_CONF_REFERENCES),
// and the run restricts its lookups to the workloads whose image has that
// name. Each row is a workload's image and a push of it, spelled
// differently, and the one name both must come to.
func TestReceiverAndResolverAgree(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	type push struct{ host, repo, tag string }
	for name, tc := range map[string]struct {
		image string // as a workload's container names it
		push  push   // as a notification names it
		want  string // the name both give; "" when they must differ
	}{
		// Docker Hub: shorthand, library/, and its three host names.
		"official image by its short name":        {"nginx", push{"docker.io", "library/nginx", "latest"}, "docker.io/library/nginx:latest"},
		"library/ spelled out, pushed without it": {"library/nginx:1.27", push{"docker.io", "nginx", "1.27"}, "docker.io/library/nginx:1.27"},
		"docker.io without library/":              {"docker.io/nginx:1.27", push{"index.docker.io", "library/nginx", "1.27"}, "docker.io/library/nginx:1.27"},
		"index.docker.io, Hub's legacy name":      {"index.docker.io/library/nginx", push{"docker.io", "nginx", "latest"}, "docker.io/library/nginx:latest"},
		"registry-1.docker.io, Hub's API host":    {"registry-1.docker.io/library/nginx:1.27", push{"registry-1.docker.io", "nginx", "1.27"}, "docker.io/library/nginx:1.27"},
		"a user's repository on Hub":              {"user/app:v1", push{"docker.io", "user/app", "v1"}, "docker.io/user/app:v1"},
		"Hub's name in upper case in the image":   {"Docker.IO/nginx", push{"docker.io", "library/nginx", "latest"}, "docker.io/library/nginx:latest"},
		"Hub's legacy name in upper case":         {"Index.Docker.IO/library/nginx:1.27", push{"INDEX.DOCKER.IO", "library/nginx", "1.27"}, "docker.io/library/nginx:1.27"},
		"Hub's name in upper case in the push":    {"nginx:1.27", push{"Docker.IO", "nginx", "1.27"}, "docker.io/library/nginx:1.27"},
		"a user's repository is not library/":     {"user/nginx", push{"docker.io", "library/nginx", "latest"}, ""},
		"an official image is not a user's":       {"nginx", push{"docker.io", "nginx/nginx", "latest"}, ""},
		"a private registry is not Hub":           {"registry.example.com/nginx", push{"docker.io", "library/nginx", "latest"}, ""},
		// Ports: part of the host.
		"localhost with a port":            {"localhost:5000/app", push{"localhost:5000", "app", "latest"}, "localhost:5000/app:latest"},
		"localhost without a port":         {"localhost/app:v1", push{"localhost", "app", "v1"}, "localhost/app:v1"},
		"a short host with a port":         {"registry:5000/shop/web:v1", push{"registry:5000", "shop/web", "v1"}, "registry:5000/shop/web:v1"},
		"an IP address with a port":        {"10.0.0.1:5000/app:v1", push{"10.0.0.1:5000", "app", "v1"}, "10.0.0.1:5000/app:v1"},
		"another port is another registry": {"localhost:5000/app", push{"localhost:5001", "app", "latest"}, ""},
		"no port is another registry":      {"localhost:5000/app", push{"localhost", "app", "latest"}, ""},
		// Case: hosts compare without regard to it.
		"upper-case host in the image":     {"Registry.Example.com/app:1", push{"registry.example.com", "app", "1"}, "registry.example.com/app:1"},
		"upper-case host in the push":      {"registry.example.com:5000/app:1", push{"REGISTRY.EXAMPLE.COM:5000", "app", "1"}, "registry.example.com:5000/app:1"},
		"upper-case localhost with a port": {"LOCALHOST:5000/app", push{"localhost:5000", "app", "latest"}, "localhost:5000/app:latest"},
		"tags compare with their case":     {"registry.example.com/app:V1", push{"registry.example.com", "app", "v1"}, ""},
		// Registries with paths.
		"a registry with a path":              {"ghcr.io/org/team/app:v2", push{"ghcr.io", "org/team/app", "v2"}, "ghcr.io/org/team/app:v2"},
		"a deep path behind a port":           {"registry.example.com:5000/a/b/c/d:x", push{"registry.example.com:5000", "a/b/c/d", "x"}, "registry.example.com:5000/a/b/c/d:x"},
		"a parent path is another repository": {"ghcr.io/org/team/app", push{"ghcr.io", "org/team", "latest"}, ""},
		// Tags: latest by default.
		"no tag is latest":          {"ghcr.io/org/app", push{"ghcr.io", "org/app", "latest"}, "ghcr.io/org/app:latest"},
		"no tag is not another tag": {"ghcr.io/org/app", push{"ghcr.io", "org/app", "v1"}, ""},
		// Digests: a tag beside a digest is looked up by the tag; an image
		// pinned by digest alone is named, with its digest, by the push of
		// its signature or attestation.
		"tag and digest: looked up by its tag":     {"r.example.com/app:v1@sha256:" + hex, push{"r.example.com", "app", "v1"}, "r.example.com/app:v1"},
		"Hub tag and digest":                       {"nginx:1.27@sha256:" + hex, push{"docker.io", "library/nginx", "1.27"}, "docker.io/library/nginx:1.27"},
		"digest alone: its signature's push":       {"r.example.com/app@sha256:" + hex, push{"r.example.com", "app", "sha256-" + hex + ".sig"}, "r.example.com/app@sha256:" + hex},
		"Hub digest alone: its attestation's push": {"nginx@sha256:" + hex, push{"Docker.IO", "library/nginx", "sha256-" + hex + ".att"}, "docker.io/library/nginx@sha256:" + hex},
		"upper-case host, digest alone":            {"R.Example.com/app@sha256:" + hex, push{"r.example.com", "app", "sha256-" + hex + ".sig"}, "r.example.com/app@sha256:" + hex},
		"another digest's signature is not it":     {"r.example.com/app@sha256:" + hex, push{"r.example.com", "app", "sha256-" + strings.Repeat("f", 64) + ".sig"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			resolver := resolverName(t, tc.image)
			for path, receiver := range receiverNames(t, tc.push.host, tc.push.repo, tc.push.tag) {
				if tc.want == "" {
					if receiver == resolver {
						t.Errorf("%s: a push of %s/%s:%s and the image %q both give %q; want them apart", path, tc.push.host, tc.push.repo, tc.push.tag, tc.image, receiver)
					}
					continue
				}
				if receiver != tc.want || resolver != tc.want {
					t.Errorf("%s: receiver gives %q, resolver %q; want both %q", path, receiver, resolver, tc.want)
				}
			}
		})
	}
}

// receiverNames returns what a push of host/repo:tag becomes, by path
// through the receiver (the name itself, and a distribution envelope
// carrying it), as the run reads it back from URUNNER_CONF_REFERENCES
// (config.go, Config.references): a tag's name, or a subject's name and
// digest.
func receiverNames(t *testing.T, host, repo, tag string) map[string]string {
	t.Helper()
	direct, err := pushedRef(host, repo, tag)
	if err != nil {
		t.Fatalf("pushedRef(%q, %q, %q): %v", host, repo, tag, err)
	}
	body, err := json.Marshal(map[string]any{"events": []any{map[string]any{
		"action":  "push",
		"target":  map[string]string{"repository": repo, "tag": tag},
		"request": map[string]string{"host": host},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := parseDistribution(body, hostRewrite{})
	if err != nil || len(n.refs) != 1 {
		t.Fatalf("distribution envelope of %s/%s:%s: %v, %v", host, repo, tag, n.refs, err)
	}
	out := map[string]string{}
	for path, r := range map[string]string{"pushedRef": direct, "distribution": n.refs[0]} {
		im, err := registry.Canonical(r)
		if err != nil {
			t.Fatalf("%s: the run cannot read %q: %v", path, r, err)
		}
		out[path] = im.Match
		if im.Digest != "" {
			out[path] += "@" + im.Digest
		}
	}
	return out
}

// resolverName returns what the run makes of a workload's image
// (discover.go): the name of the tag it looks up, under which a pushed
// run keeps or drops the lookup; for an image pinned by digest alone, its
// name and digest, which a pushed subject names.
func resolverName(t *testing.T, image string) string {
	t.Helper()
	im, err := registry.Canonical(image)
	if err != nil {
		t.Fatalf("the run cannot read the image %q: %v", image, err)
	}
	if im.Ref.Tag == "" {
		return im.Match + "@" + im.Digest
	}
	return registry.MatchName(registry.Key(im.Ref))
}
