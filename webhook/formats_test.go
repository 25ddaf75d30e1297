package webhook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustHosts(t *testing.T, s string) hostRewrite {
	t.Helper()
	h, err := parseHostRewrite(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Every documented or recorded payload turns into the references a
// workload names, canonical as urunner resolves them.
func TestFixturesGiveThePushedReferences(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		parse      func([]byte) (notice, error)
		refs       []string
		ignored    int
		ids        int
	}{
		{"distribution push recorded from the real registry", "distribution-push.json",
			func(b []byte) (notice, error) { return parseDistribution(b, hostRewrite{}) },
			[]string{"127.0.0.1:45107/shop/web:latest"}, 0, 1},
		{"distribution host fixed for the endpoint", "distribution-push.json",
			func(b []byte) (notice, error) { return parseDistribution(b, mustHosts(t, "registry.example.com")) },
			[]string{"registry.example.com/shop/web:latest"}, 0, 1},
		{"gitlab registry sample, host mapped", "gitlab-push.json",
			func(b []byte) (notice, error) {
				return parseDistribution(b, mustHosts(t, "registry.test:5000=registry.gitlab.example.com"))
			},
			[]string{"registry.gitlab.example.com/root/test:latest"}, 0, 1},
		{"gitlab registry sample, unmapped host kept", "gitlab-push.json",
			func(b []byte) (notice, error) { return parseDistribution(b, mustHosts(t, "other:5000=x.example.com")) },
			[]string{"registry.test:5000/root/test:latest"}, 0, 1},
		{"harbor default push", "harbor-push-default.json",
			func(b []byte) (notice, error) { return parseHarbor(b, hostRewrite{}) },
			[]string{"hub.harbor.com/test-webhook/debian:latest"}, 0, 0},
		{"harbor cloudevents push by digest moves no tag", "harbor-push-cloudevents-digest.json",
			func(b []byte) (notice, error) { return parseHarbor(b, hostRewrite{}) },
			nil, 1, 1},
		{"harbor pull is not a push", "harbor-pull-default.json",
			func(b []byte) (notice, error) { return parseHarbor(b, hostRewrite{}) },
			nil, 1, 0},
		{"docker hub push", "dockerhub-push.json", parseDockerHub,
			[]string{"docker.io/svendowideit/testhook:latest"}, 0, 0},
		{"generic, docker hub name completed", "generic-push.json",
			func(b []byte) (notice, error) { return parseGeneric(b, hostRewrite{}) },
			[]string{"registry.example.com/shop/web:latest", "registry.example.com:5000/shop/api:1.2", "docker.io/library/nginx:1.27"}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tc.parse(fixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.refs, n.refs); diff != "" {
				t.Errorf("references (-want +got):\n%s", diff)
			}
			if n.ignored != tc.ignored || len(n.ids) != tc.ids {
				t.Errorf("ignored=%d ids=%d, want %d and %d", n.ignored, len(n.ids), tc.ignored, tc.ids)
			}
		})
	}
}

// What the real registry also sends, beside a tag push, needs no run.
func TestDistributionIgnoresWhatMovesNoTag(t *testing.T) {
	body := `{"events":[
	 {"id":"1","action":"push","target":{"mediaType":"application/octet-stream","digest":"sha256:aa","repository":"shop/web"},"request":{"host":"r.example.com"}},
	 {"id":"2","action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","repository":"shop/web"},"request":{"host":"r.example.com"}},
	 {"id":"3","action":"pull","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","repository":"shop/web","tag":"latest"},"request":{"host":"r.example.com"}},
	 {"id":"4","action":"delete","target":{"digest":"sha256:bb","repository":"shop/web","tag":"old"},"request":{"host":"r.example.com"}},
	 {"id":"5","action":"push","target":{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:cc","repository":"shop/web","tag":"latest"},"request":{"host":"r.example.com"}}
	]}`
	n, err := parseDistribution([]byte(body), hostRewrite{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"r.example.com/shop/web:latest"}, n.refs); diff != "" {
		t.Errorf("references (-want +got):\n%s", diff)
	}
	if n.ignored != 4 {
		t.Errorf("ignored %d events, want 4 (a blob, a manifest by digest, a pull, a delete)", n.ignored)
	}
}

// A notification that cannot be read as a whole is refused with the
// field at fault named; an event or reference within it that cannot be
// read is skipped, naming its field, and never fails the others.
func TestMalformedNotificationsNameTheField(t *testing.T) {
	dist := func(b string) (notice, error) { return parseDistribution([]byte(b), hostRewrite{}) }
	harbor := func(b string) (notice, error) { return parseHarbor([]byte(b), hostRewrite{}) }
	hub := func(b string) (notice, error) { return parseDockerHub([]byte(b)) }
	generic := func(b string) (notice, error) { return parseGeneric([]byte(b), hostRewrite{}) }
	const skipped, refused = true, false
	for _, tc := range []struct {
		name  string
		parse func(string) (notice, error)
		body  string
		item  bool // skipped as one item, not refused as a whole
		want  string
	}{
		{"not JSON", dist, `{"events": [`, refused, "body: not a JSON document"},
		{"two documents", dist, `{"events": []} {}`, refused, "body: data after the JSON document"},
		{"no events", dist, `{"foo": 1}`, refused, "events: missing"},
		{"events not a list", dist, `{"events": {}}`, refused, "events: want"},
		{"tag push without repository", dist, `{"events":[{"action":"push","target":{"tag":"latest"},"request":{"host":"r.example.com"}}]}`, skipped, "events[0].target.repository: missing"},
		{"tag push without host", dist, `{"events":[{"action":"push","target":{"tag":"latest","repository":"a/b"}}]}`, skipped, "events[0].request.host: missing"},
		{"bad repository", dist, `{"events":[{"action":"push","target":{"tag":"latest","repository":"A B"},"request":{"host":"r.example.com"}}]}`, skipped, "events[0].target"},
		{"harbor without type", harbor, `{"event_data": {}}`, refused, "type: missing"},
		{"harbor push without event_data", harbor, `{"type": "PUSH_ARTIFACT"}`, refused, "event_data: missing"},
		{"harbor cloudevent without data", harbor, `{"specversion":"1.0","type":"harbor.artifact.pushed"}`, refused, "data: missing"},
		{"harbor resource without url", harbor, `{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"tag":"v1"}]}}`, skipped, "event_data.resources[0].resource_url"},
		{"docker hub without repository", hub, `{"push_data": {"tag": "x"}}`, refused, "repository.repo_name: missing"},
		{"docker hub without push_data", hub, `{"repository": {"repo_name": "a/b"}}`, refused, "push_data: missing"},
		{"generic without references", generic, `{}`, refused, "references: missing"},
		{"generic empty", generic, `{"references": []}`, refused, "references: empty"},
		{"generic without host", generic, `{"references": ["nginx:latest"]}`, skipped, "references[0]"},
		{"generic by digest", generic, `{"references": ["r.example.com/a@sha256:` + strings.Repeat("a", 64) + `"]}`, skipped, "references[0]"},
		{"generic without tag", generic, `{"references": ["r.example.com/a/b"]}`, skipped, "references[0]: \"r.example.com/a/b\" has no tag"},
		{"generic reference not a string", generic, `{"references": [1]}`, refused, "references"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tc.parse(tc.body)
			if tc.item {
				if err != nil || len(n.skipped) != 1 || !strings.Contains(n.skipped[0].Error(), tc.want) {
					t.Errorf("error %v, skipped %v; want no error and one skipped item containing %q", err, n.skipped, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestHostRewrite(t *testing.T) {
	for _, tc := range []struct {
		spec, host, want string
	}{
		{"", "registry:5000", "registry:5000"},
		{"", "index.docker.io", "docker.io"},
		{"registry.example.com", "anything:5000", "registry.example.com"},
		{"registry:5000=registry.example.com, localhost=harbor.example.com:8443", "localhost", "harbor.example.com:8443"},
		{"registry:5000=registry.example.com", "other.example.com", "other.example.com"},
	} {
		if got := mustHosts(t, tc.spec).apply(tc.host); got != tc.want {
			t.Errorf("%q applied to %q = %q, want %q", tc.spec, tc.host, got, tc.want)
		}
	}
	for _, bad := range []string{"a=b=c", "registry", "x.example.com=", "http://r.example.com"} {
		if _, err := parseHostRewrite(bad); err == nil {
			t.Errorf("parseHostRewrite(%q) accepted", bad)
		}
	}
}

// One event that cannot be read is skipped and named; the others of its
// envelope are taken (a refused envelope would be re-sent forever and
// hold up every later one).
func TestOneUnreadableEventDoesNotHoldTheOthers(t *testing.T) {
	body := `{"events":[
	 {"id":"1","action":"push","target":{"repository":"shop/web","tag":"v1"},"request":{"host":"r.example.com"}},
	 {"id":"2","action":"push","target":{"repository":"shop/` + strings.Repeat("x", 300) + `","tag":"v1"},"request":{"host":"r.example.com"}},
	 {"id":"3","action":"push","target":{"repository":"shop/api","tag":"bad tag"},"request":{"host":"r.example.com"}},
	 {"id":"4","action":"push","target":{"repository":"shop/api","tag":"v2"},"request":{"host":"not a host"}},
	 {"id":"5","action":"push","target":{"repository":"shop/api","tag":"v3"},"request":{"host":"R.Example.COM"}}
	]}`
	n, err := parseDistribution([]byte(body), hostRewrite{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"r.example.com/shop/web:v1", "r.example.com/shop/api:v3"}, n.refs); diff != "" {
		t.Errorf("references (-want +got):\n%s", diff)
	}
	var got []string
	for _, e := range n.skipped {
		got = append(got, e.Error()[:strings.Index(e.Error(), ":")])
	}
	if diff := cmp.Diff([]string{"events[1].target", "events[2].target", "events[3].target"}, got); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
}

// References are checked as the distribution spec defines them; what no
// registry could hold never becomes a pushed reference.
func TestReferencesFollowTheDistributionGrammar(t *testing.T) {
	long := strings.Repeat("a", 250)
	for _, tc := range []struct {
		name, host, repo, tag string
		want                  string // "" when refused
	}{
		{"plain", "r.example.com", "shop/web", "v1.2_3-x", "r.example.com/shop/web:v1.2_3-x"},
		{"host with port, upper case", "Registry.Example.com:5000", "shop/web", "latest", "registry.example.com:5000/shop/web:latest"},
		{"docker hub official image", "docker.io", "library/nginx", "1.27", "docker.io/library/nginx:1.27"},
		{"separators", "r.example.com", "a.b_c__d-e---f/g", "x", "r.example.com/a.b_c__d-e---f/g:x"},
		{"name of 255 characters", "r.example.com", "a/" + long[:255-len("r.example.com/a/")], "x", "r.example.com/a/" + long[:255-len("r.example.com/a/")] + ":x"},
		{"name of 256 characters", "r.example.com", "a/" + long[:256-len("r.example.com/a/")], "x", ""},
		{"300 KB repository", "r.example.com", strings.Repeat("abcdefghij/", 30000) + "x", "v1", ""},
		{"upper-case repository", "r.example.com", "Shop/web", "v1", ""},
		{"empty component", "r.example.com", "shop//web", "v1", ""},
		{"component ending in a separator", "r.example.com", "shop-/web", "v1", ""},
		{"tag of 128 characters", "r.example.com", "a", "t" + strings.Repeat("1", 127), "r.example.com/a:t" + strings.Repeat("1", 127)},
		{"tag of 129 characters", "r.example.com", "a", "t" + strings.Repeat("1", 128), ""},
		{"tag starting with a dot", "r.example.com", "a", ".x", ""},
		{"host with a path", "r.example.com/x", "a", "v1", ""},
		{"host with a space", "r example", "a", "v1", ""},
		{"host with a user", "u@r.example.com", "a", "v1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pushedRef(tc.host, tc.repo, tc.tag)
			if tc.want == "" {
				if err == nil {
					t.Errorf("accepted as %.100q", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// A signature's or attestation's tag starts no run of its own: its push
// re-runs its subject, named by digest.
func TestSignatureTagsNameTheirSubject(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	subject := "r.example.com/shop/web@sha256:" + hex
	for _, tc := range []struct {
		tag, want string
	}{
		{"sha256-" + hex + ".sig", subject},
		{"sha256-" + hex + ".att", subject},
		{"sha256-" + hex + ".sbom", subject},
		{"sha256-" + hex, subject}, // the referrers tag schema's index
		{"sha256-" + hex[:63] + ".sig", "r.example.com/shop/web:sha256-" + hex[:63] + ".sig"},
		{"sha256-" + hex + ".other", "r.example.com/shop/web:sha256-" + hex + ".other"},
		{"v1.sig", "r.example.com/shop/web:v1.sig"},
	} {
		got, err := pushedRef("r.example.com", "shop/web", tc.tag)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.tag, got, err, tc.want)
		}
	}
	// Through a format, with the host mapped.
	body := `{"events":[{"action":"push","target":{"repository":"shop/web","tag":"sha256-` + hex + `.sig"},"request":{"host":"CI-Registry:5000"}}]}`
	n, err := parseDistribution([]byte(body), mustHosts(t, "ci-registry:5000=r.example.com"))
	if err != nil || len(n.refs) != 1 || n.refs[0] != subject {
		t.Errorf("distribution: %v, %v; want [%s]", n.refs, err, subject)
	}
}

// Host mappings are matched without regard to case, as DNS names are.
func TestHostRewriteIgnoresCase(t *testing.T) {
	hr := mustHosts(t, "Registry:5000=Registry.Example.com")
	for _, host := range []string{"registry:5000", "REGISTRY:5000", "Registry:5000"} {
		if got := hr.apply(host); got != "registry.example.com" {
			t.Errorf("apply(%q) = %q, want registry.example.com", host, got)
		}
	}
}
