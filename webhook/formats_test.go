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

// A malformed notification is refused with the field at fault named.
func TestMalformedNotificationsNameTheField(t *testing.T) {
	dist := func(b string) error { _, err := parseDistribution([]byte(b), hostRewrite{}); return err }
	harbor := func(b string) error { _, err := parseHarbor([]byte(b), hostRewrite{}); return err }
	hub := func(b string) error { _, err := parseDockerHub([]byte(b)); return err }
	generic := func(b string) error { _, err := parseGeneric([]byte(b), hostRewrite{}); return err }
	for _, tc := range []struct {
		name  string
		parse func(string) error
		body  string
		want  string
	}{
		{"not JSON", dist, `{"events": [`, "body: not a JSON document"},
		{"two documents", dist, `{"events": []} {}`, "body: data after the JSON document"},
		{"no events", dist, `{"foo": 1}`, "events: missing"},
		{"events not a list", dist, `{"events": {}}`, "events: want"},
		{"tag push without repository", dist, `{"events":[{"action":"push","target":{"tag":"latest"},"request":{"host":"r.example.com"}}]}`, "events[0].target.repository: missing"},
		{"tag push without host", dist, `{"events":[{"action":"push","target":{"tag":"latest","repository":"a/b"}}]}`, "events[0].request.host: missing"},
		{"bad repository", dist, `{"events":[{"action":"push","target":{"tag":"latest","repository":"A B"},"request":{"host":"r.example.com"}}]}`, "events[0].target"},
		{"harbor without type", harbor, `{"event_data": {}}`, "type: missing"},
		{"harbor push without event_data", harbor, `{"type": "PUSH_ARTIFACT"}`, "event_data: missing"},
		{"harbor cloudevent without data", harbor, `{"specversion":"1.0","type":"harbor.artifact.pushed"}`, "data: missing"},
		{"harbor resource without url", harbor, `{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"tag":"v1"}]}}`, "event_data.resources[0].resource_url"},
		{"docker hub without repository", hub, `{"push_data": {"tag": "x"}}`, "repository.repo_name: missing"},
		{"docker hub without push_data", hub, `{"repository": {"repo_name": "a/b"}}`, "push_data: missing"},
		{"generic without references", generic, `{}`, "references: missing"},
		{"generic empty", generic, `{"references": []}`, "references: empty"},
		{"generic without host", generic, `{"references": ["nginx:latest"]}`, "references[0]"},
		{"generic by digest", generic, `{"references": ["r.example.com/a@sha256:` + strings.Repeat("a", 64) + `"]}`, "references[0]"},
		{"generic without tag", generic, `{"references": ["r.example.com/a/b"]}`, "references[0]: \"r.example.com/a/b\" has no tag"},
		{"generic reference not a string", generic, `{"references": [1]}`, "references"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse(tc.body)
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
