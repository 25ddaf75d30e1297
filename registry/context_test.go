package registry

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestChangeSaysWhatAMoveChanged(t *testing.T) {
	gh := "https://github.com/acme/shop"
	for _, tc := range []struct {
		name     string
		from, to Provenance
		want     string
	}{
		{"nothing said", Provenance{}, Provenance{}, ""},
		{"revisions on GitHub get a compare link", Provenance{Revision: "3f2a1c4aaaaaaaaa", Source: gh}, Provenance{Revision: "9b7e02dbbbbbbbbb", Source: gh + ".git"},
			"revision 3f2a1c4aaaaa → 9b7e02dbbbbb (https://github.com/acme/shop/compare/3f2a1c4aaaaaaaaa...9b7e02dbbbbbbbbb)"},
		{"GitLab's compare path", Provenance{Revision: "aaa"}, Provenance{Revision: "bbb", Source: "https://gitlab.com/acme/shop"},
			"revision aaa → bbb (https://gitlab.com/acme/shop/-/compare/aaa...bbb)"},
		{"an unknown forge names the source", Provenance{Revision: "aaa"}, Provenance{Revision: "bbb", Source: "https://git.example.com/shop"},
			"revision aaa → bbb, source https://git.example.com/shop"},
		{"versions", Provenance{Version: "1.2"}, Provenance{Version: "1.3"}, "version 1.2 → 1.3"},
		{"only the new image says", Provenance{}, Provenance{Revision: "bbb", Version: "1.3"}, "revision ? → bbb, version ? → 1.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Change(tc.from, tc.to); got != tc.want {
				t.Errorf("Change = %q\nwant     %q", got, tc.want)
			}
		})
	}
}

// Labels are written by whoever pushes: a huge one must not make a huge
// Event, log line or report.
func TestWhatAnImageSaysIsBounded(t *testing.T) {
	huge := strings.Repeat("é", 1<<20) // two bytes a rune: a cut must not split one
	p := provenance(map[string]string{LabelRevision: huge, LabelSource: "https://git.example.com/" + huge,
		LabelVersion: huge, LabelCreated: huge})
	for name, v := range map[string]string{"revision": p.Revision, "source": p.Source, "version": p.Version, "created": p.Created} {
		if len(v) > MaxLabel || !utf8.ValidString(v) || !strings.HasSuffix(v, "…") {
			t.Errorf("%s: %d bytes, valid UTF-8 %v, ends %q; want at most %d, valid, cut with …", name, len(v), utf8.ValidString(v), v[max(0, len(v)-8):], MaxLabel)
		}
	}
	if got := provenance(map[string]string{LabelVersion: "1.2"}).Version; got != "1.2" {
		t.Errorf("a short label changed: %q", got)
	}
	ch := Change(Provenance{Version: huge, Revision: huge}, Provenance{Version: huge + "x", Revision: huge + "y", Source: huge})
	if len(ch) > MaxChange || !utf8.ValidString(ch) || !strings.HasSuffix(ch, "…") {
		t.Errorf("Change: %d bytes, valid UTF-8 %v; want at most %d, valid, cut with …", len(ch), utf8.ValidString(ch), MaxChange)
	}
}
