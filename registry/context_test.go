package registry

import "testing"

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
