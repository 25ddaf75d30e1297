package kube

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestDigestOf(t *testing.T) {
	const (
		d   = "sha256:2d4b9258ee3c5ea6e3d0a14c8f1f3bd4e4b0d1c9e1f1b6c1a1d1e1f1a1b1c1d1"
		d5  = "sha512:" + "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34"
		hex = "2d4b9258ee3c5ea6e3d0a14c8f1f3bd4e4b0d1c9e1f1b6c1a1d1e1f1a1b1c1d1"
	)
	for _, tc := range []struct {
		name, imageID, want string
	}{
		{"docker through cri-dockerd reports docker-pullable", "docker-pullable://registry.example.com/team/app@" + d, d},
		{"a plain repository digest", "registry.example.com/team/app@" + d, d},
		{"a registry with a port", "localhost:5000/team/app@" + d, d},
		{"containerd reports the index digest the tag resolved to", "docker.io/library/nginx@" + d, d},
		{"a sha512 digest", "registry.example.com/team/app@" + d5, d5},
		{"a tag and a digest", "registry.example.com/team/app:1.2@" + d, d},
		{"a bare config digest cannot be compared", d, ""},
		{"docker's config digest of a local image cannot be compared", "docker://" + d, ""},
		{"empty while the image is pulled", "", ""},
		{"a tag only", "registry.example.com/team/app:latest", ""},
		{"a truncated digest", "registry.example.com/team/app@sha256:2d4b92", ""},
		{"upper-case hex", "registry.example.com/team/app@sha256:" + strings.ToUpper(hex), ""},
		{"an unknown algorithm", "registry.example.com/team/app@md5:" + hex[:32], ""},
		{"a digest with no repository", "@" + d, ""},
		{"garbage", "not an image id", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DigestOf(tc.imageID); got != tc.want {
				t.Errorf("DigestOf(%q) = %q, want %q", tc.imageID, got, tc.want)
			}
		})
	}
}

func FuzzDigestOf(f *testing.F) {
	for _, s := range []string{
		"docker-pullable://r.example.com/a@sha256:2d4b9258ee3c5ea6e3d0a14c8f1f3bd4e4b0d1c9e1f1b6c1a1d1e1f1a1b1c1d1",
		"sha256:2d4b9258ee3c5ea6e3d0a14c8f1f3bd4e4b0d1c9e1f1b6c1a1d1e1f1a1b1c1d1",
		"a@b@sha256:", "://@", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, imageID string) {
		got := DigestOf(imageID)
		if got == "" {
			return
		}
		if err := digest.Digest(got).Validate(); err != nil {
			t.Fatalf("DigestOf(%q) = %q, not a valid digest: %v", imageID, got, err)
		}
		if !strings.HasSuffix(imageID, "@"+got) {
			t.Fatalf("DigestOf(%q) = %q, not the digest after the last @", imageID, got)
		}
	})
}
