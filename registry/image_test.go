package registry

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseImageNormalisesAsKubernetesPulls(t *testing.T) {
	for _, tc := range []struct {
		image   string
		wantKey string
		pinned  bool
	}{
		{"nginx", "docker.io/library/nginx:latest", false},
		{"nginx:1.27", "docker.io/library/nginx:1.27", false},
		{"library/nginx:1.27", "docker.io/library/nginx:1.27", false},
		{"index.docker.io/library/nginx", "docker.io/library/nginx:latest", false},
		{"registry-1.docker.io/bitnami/redis:7", "docker.io/bitnami/redis:7", false},
		{"host:5000/a/b/c:tag", "host:5000/a/b/c:tag", false},
		{"host:5000/a/b/c", "host:5000/a/b/c:latest", false},
		{"localhost/app", "localhost/app:latest", false},
		{"ghcr.io/org/app:main", "ghcr.io/org/app:main", false},
		{"nginx@" + digest, "", true},
		{"host:5000/app:1.0@" + digest, "", true},
	} {
		t.Run(tc.image, func(t *testing.T) {
			r, err := ParseImage(tc.image)
			if err != nil {
				t.Fatal(err)
			}
			if got := Pinned(r); got != tc.pinned {
				t.Errorf("Pinned = %v, want %v", got, tc.pinned)
			}
			if tc.pinned {
				return
			}
			if got := Key(r); got != tc.wantKey {
				t.Errorf("Key = %q, want %q", got, tc.wantKey)
			}
		})
	}
}

func TestParseImageRejects(t *testing.T) {
	for _, tc := range []struct {
		image  string
		scheme bool // rejected as a non-registry scheme
	}{
		{"ocidir://images/app:1", true},
		{"ocifile://app.tar", true},
		{"team/App", false},
		{"", false},
		{"host:5000/app:bad tag", false},
	} {
		t.Run(tc.image, func(t *testing.T) {
			_, err := ParseImage(tc.image)
			if err == nil {
				t.Fatalf("ParseImage(%q) succeeded", tc.image)
			}
			if got := errors.Is(err, ErrNotRegistry); got != tc.scheme {
				t.Errorf("errors.Is(%v, ErrNotRegistry) = %v, want %v", err, got, tc.scheme)
			}
			if !strings.Contains(err.Error(), tc.image) {
				t.Errorf("error %q does not name the image", err)
			}
		})
	}
}

func TestNormalizeHost(t *testing.T) {
	for host, want := range map[string]string{
		"registry.example.com:5000": "registry.example.com:5000",
		"index.docker.io":           "docker.io",
		"registry-1.docker.io":      "docker.io",
		"docker.io":                 "docker.io",
		"127.0.0.1:5000":            "127.0.0.1:5000",
	} {
		got, err := NormalizeHost(host)
		if err != nil {
			t.Errorf("NormalizeHost(%q): %v", host, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("NormalizeHost(%q) (-want +got):\n%s", host, diff)
		}
	}
	for _, bad := range []string{"", "a b", "host/path", "http://x"} {
		if got, err := NormalizeHost(bad); err == nil {
			t.Errorf("NormalizeHost(%q) = %q, want an error", bad, got)
		}
	}
}

func TestValidDigest(t *testing.T) {
	for d, want := range map[string]bool{
		digest:                       true,
		"":                           false,
		"sha256:abc":                 false,
		"sha512:" + digest[7:]:       false,
		" " + digest:                 false,
		strings.ToUpper(digest):      false,
		digest[:len(digest)-1] + "g": false,
	} {
		if got := validDigest(d); got != want {
			t.Errorf("validDigest(%q) = %v, want %v", d, got, want)
		}
	}
}

// FuzzParseImage checks that any image string either parses into a
// reference whose Key parses back to itself, or is rejected with an error
// naming it: never a panic, never a key urunner could not look up again.
func FuzzParseImage(f *testing.F) {
	for _, s := range []string{"nginx", "host:5000/a/b:c", "a@" + digest, "ocidir://x", "localhost/x", "UPPER", "", "Docker.IO/x", "Index.Docker.IO/library/x:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, image string) {
		r, err := ParseImage(image)
		if err != nil {
			return
		}
		if Pinned(r) {
			return
		}
		k := Key(r)
		again, err := ParseImage(k)
		if err != nil {
			t.Fatalf("Key(%q) = %q does not parse: %v", image, k, err)
		}
		if Key(again) != k {
			t.Fatalf("Key not stable: %q → %q → %q", image, k, Key(again))
		}
		// The receiver sends Match; the run reads it back with Canonical.
		im, err := Canonical(image)
		if err != nil {
			t.Fatalf("Canonical(%q): %v, but it parses", image, err)
		}
		back, err := Canonical(im.Match)
		if err != nil || back.Match != im.Match {
			t.Fatalf("Match not stable: %q → %q → %q, %v", image, im.Match, back.Match, err)
		}
	})
}

// Canonical keeps the lookup as spelled and gives the name a pushed
// reference is compared under: host in lower case, then Docker Hub's
// names completed. MatchName gives the same name for a lookup's key.
func TestCanonicalMatch(t *testing.T) {
	for image, want := range map[string]struct{ named, match string }{
		"nginx":                                {"docker.io/library/nginx:latest", "docker.io/library/nginx:latest"},
		"Registry.Example.com:5000/app:1":      {"Registry.Example.com:5000/app:1", "registry.example.com:5000/app:1"},
		"Docker.IO/nginx":                      {"Docker.IO/nginx:latest", "docker.io/library/nginx:latest"},
		"REGISTRY-1.DOCKER.IO/bitnami/redis:7": {"REGISTRY-1.DOCKER.IO/bitnami/redis:7", "docker.io/bitnami/redis:7"},
		"LOCALHOST/app":                        {"LOCALHOST/app:latest", "localhost/app:latest"},
		"R.Example.com/app@" + digest:          {"R.Example.com/app", "r.example.com/app"},
		"R.Example.com/app:v1@" + digest:       {"R.Example.com/app:v1", "r.example.com/app:v1"},
	} {
		im, err := Canonical(image)
		if err != nil {
			t.Fatalf("Canonical(%q): %v", image, err)
		}
		if im.Named != want.named || im.Match != want.match {
			t.Errorf("Canonical(%q): Named %q, Match %q; want %q, %q", image, im.Named, im.Match, want.named, want.match)
		}
		if im.Ref.Tag == "" {
			continue
		}
		if got := MatchName(Key(im.Ref)); got != want.match {
			t.Errorf("MatchName(%q) = %q, want %q", Key(im.Ref), got, want.match)
		}
	}
}
