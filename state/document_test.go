package state

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	d3 = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
)

var (
	t0 = time.Date(2026, 11, 24, 22, 0, 0, 0, time.UTC)
	t1 = t0.Add(5 * time.Minute)
)

func sample() State {
	return State{
		ListedAt:    t1,
		LastSuccess: t0,
		CapSince:    t0,
		Restarts:    map[int64]int{t0.UnixNano() + 123: 2, t1.UnixNano(): 1},
		Refs: map[string]Ref{
			"registry.example.com:5000/shop/web:latest": {
				Digest: d2, Seen: t1, Checked: t1, Base: d1,
				Except: map[string]Exception{"shop/Deployment/worker/app": {Runs: d2}, "shop/Deployment/api/app": {Runs: d1, Record: d3}},
			},
			"docker.io/library/nginx:1.27": {
				Digest: d2, Seen: t0, Checked: t1,
				Children:    map[string]map[string]string{d2: {"linux/amd64": d1}},
				Rings:       map[int]time.Time{0: t1},
				RingMembers: map[int][]string{0: {"edge"}, 1: {"shop", "shop-eu"}},
			},
			"registry.example.com:5000/shop/gone:1": {
				Digest: d3, Seen: t0, Checked: t1, Failing: t0, Error: "resolve registry.example.com:5000/shop/gone:1: not found",
			},
		},
		Quarantines: map[string]Quarantine{
			d3: {
				// The tag moved on from it; still held, under any tag.
				Why: "rollout failed in shop/deployment/web: progress deadline exceeded", At: t0,
				Refs:   []string{"registry.example.com:5000/shop/web:latest", "registry.example.com:5000/shop/web:v2"},
				Failed: map[string]time.Time{"shop": t0}, Lifted: map[string]time.Time{"team": t1},
			},
			d1: {Why: "rollout failed in old/deployment/api: ImagePullBackOff", At: t0, LiftedAll: t1},
		},
	}
}

func gunzip(t *testing.T, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// The golden file pins the stored format: changing it breaks every
// installed urunner's memory, so it needs a new Version and a migration.
func TestEncodeMatchesGoldenV4(t *testing.T) {
	data, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	got := gunzip(t, data)
	golden := filepath.Join("testdata", "v4.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("encoded document differs from %s (-want +got):\n%s", golden, diff)
	}
}

func TestDecodeGoldenV4(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "v4.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sample(), got); diff != "" {
		t.Errorf("decoded state (-want +got):\n%s", diff)
	}
}

// Documents of urunner before 0.3 (one entry per workload and container)
// migrate so that every workload is believed to run exactly what they said:
// the most common digest of a reference becomes its base, the others
// exceptions; restart times are dropped (cooldowns read the workload's own
// restartedAt annotation).
func TestDecodeMigratesWorkloadDocuments(t *testing.T) {
	web := "registry.example.com:5000/shop/web:latest"
	nginx := "docker.io/library/nginx:1.27"
	for _, tc := range []struct {
		file string
		want State
	}{
		{"v2.json", State{Refs: map[string]Ref{
			// web/app and web/migrate had d1, worker/app d2.
			web:   {Digest: d1, Except: map[string]Exception{"shop/Deployment/worker/app": {Runs: d2}}},
			nginx: {Digest: d2, Children: map[string]map[string]string{d2: {"linux/amd64": d1}}},
		}}},
		{"v1.json", State{Refs: map[string]Ref{
			web:   {Digest: d1, Except: map[string]Exception{"shop/Deployment/worker/app": {Runs: d2}}},
			nginx: {Digest: d2},
		}}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeJSON(raw)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("migrated state (-want +got):\n%s", diff)
			}
		})
	}
}

// A version 3 document kept quarantines per reference, forgotten when the
// tag moved on. They migrate into the top-level map, one per digest, with
// the references that failed with it, quarantined since the reference was
// last checked; the rest of the document reads as it did.
func TestDecodeMigratesV3Quarantines(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "v3-quarantine.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, version, err := decodeJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	web, api := "registry.example.com:5000/shop/web:latest", "registry.example.com:5000/shop/api:1"
	want := State{
		ListedAt: t1, LastSuccess: t0,
		// Quarantine in a reference is the view of the tag's own digest.
		Refs: map[string]Ref{
			web: {Digest: d2, Seen: t1, Checked: t1, Quarantine: map[string]string{d2: "rollout failed in shop/deployment/web: crash"}},
			api: {Digest: d2, Seen: t0, Checked: t0, Quarantine: map[string]string{d2: "rollout failed in shop/deployment/web: crash"}},
		},
		Quarantines: map[string]Quarantine{
			// Two references failed with d2: the later check's reason.
			d2: {Why: "rollout failed in shop/deployment/web: crash", At: t1, Refs: []string{api, web}},
			d3: {Why: "rollout failed in shop/deployment/api: ImagePullBackOff", At: t0, Refs: []string{api}},
		},
	}
	if version != 3 {
		t.Errorf("version = %d, want 3", version)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("migrated state (-want +got):\n%s", diff)
	}
}

func TestMigrationBreaksTiesDeterministically(t *testing.T) {
	doc := `{"version":2,"images":["r/a:1@` + d2 + `","r/a:1@` + d1 + `"],"workloads":{"n/Deployment/x":{"c":0},"n/Deployment/y":{"c":1}}}`
	for range 20 {
		got, err := DecodeJSON([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		want := Ref{Digest: d1, Except: map[string]Exception{"n/Deployment/x/c": {Runs: d2}}}
		if diff := cmp.Diff(want, got.Refs["r/a:1"]); diff != "" {
			t.Fatalf("tie (-want +got):\n%s", diff)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for name, s := range map[string]State{
		"empty":  {Refs: map[string]Ref{}},
		"sample": sample(),
	} {
		t.Run(name, func(t *testing.T) {
			data, err := Encode(s)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(s, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncodeOmitsABaseEqualToTheDigest(t *testing.T) {
	data, err := Encode(State{Refs: map[string]Ref{"r/a:1": {Digest: d1, Base: d1}}})
	if err != nil {
		t.Fatal(err)
	}
	if raw := string(gunzip(t, data)); strings.Contains(raw, "base") {
		t.Errorf("document stores a base equal to the digest: %s", raw)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"not JSON", `{"version":4,`, "unexpected"},
		{"no version", `{"refs":{}}`, "no version"},
		{"a newer version is refused, not rewritten", `{"version":5,"refs":{}}`, "version 5"},
		{"unknown field", `{"version":4,"refs":{},"extra":1}`, "unknown field"},
		{"old fields in a new document", `{"version":4,"images":[]}`, "version 1 or 2 fields"},
		{"new fields in an old document", `{"version":2,"refs":{}}`, "version 4 fields"},
		{"v3: top-level quarantines", `{"version":3,"quarantines":{"` + d1 + `":{"at":1}}}`, "version 4 field quarantines"},
		{"v4: a reference's quarantine", `{"version":4,"refs":{"r/a:1":{"digest":"` + d1 + `","quarantine":{"` + d1 + `":"x"}}}}`, "quarantines are top-level"},
		{"v3: bad quarantined digest", `{"version":3,"refs":{"r/a:1":{"digest":"` + d1 + `","quarantine":{"sha256:1":"x"}}}}`, "not a sha256 digest"},
		{"bad quarantine digest", `{"version":4,"quarantines":{"sha256:1":{"at":1}}}`, "not a sha256 digest"},
		{"quarantine of a bad reference", `{"version":4,"quarantines":{"` + d1 + `":{"at":1,"refs":["nginx"]}}}`, "not registry/repository:tag"},
		{"quarantine lifted in no namespace", `{"version":4,"quarantines":{"` + d1 + `":{"at":1,"lifted":{"":5}}}}`, "not namespace → time"},
		{"quarantine failed at no time", `{"version":4,"quarantines":{"` + d1 + `":{"at":1,"failed":{"shop":0}}}}`, "not namespace → time"},
		{"quarantine negative time", `{"version":4,"quarantines":{"` + d1 + `":{"at":-1}}}`, "not times"},
		{"reference without tag", `{"version":4,"refs":{"registry/app":{"digest":"` + d1 + `"}}}`, "not registry/repository:tag"},
		{"short digest", `{"version":4,"refs":{"r/a:1":{"digest":"sha256:12"}}}`, "not a sha256 digest"},
		{"base without digest", `{"version":4,"refs":{"r/a:1":{"base":"` + d1 + `"}}}`, "base without digest"},
		{"negative time", `{"version":4,"refs":{"r/a:1":{"digest":"` + d1 + `","seen":-1}}}`, "negative time"},
		{"bad exception key", `{"version":4,"refs":{"r/a:1":{"digest":"` + d1 + `","except":{"n/x":{"runs":"` + d1 + `"}}}}}`, "not namespace/Kind/name/container"},
		{"bad exception digest", `{"version":4,"refs":{"r/a:1":{"digest":"` + d1 + `","except":{"n/Deployment/x/c":{"runs":"x"}}}}}`, "not sha256 digests"},
		{"bad child", `{"version":4,"refs":{"r/a:1":{"digest":"` + d1 + `","children":{"` + d1 + `":{"linux":"` + d1 + `"}}}}}`, "not platform"},
		{"restarts keyed by no run start", `{"version":4,"restarts":{"yesterday":1}}`, "not run start"},
		{"no restarts in a run", `{"version":4,"restarts":{"1764028800000000000":0}}`, "not run start"},
		{"restart count of an old document", `{"version":2,"restarts":{"1764028800000000000":1}}`, "version 4 fields"},
		{"ring members of no ring", `{"version":4,"refs":{"r/a:1":{"digest":"` + d1 + `","ringMembers":{"x":["shop"]}}}}`, "not ring → namespaces"},
		{"a ring with no namespace", `{"version":4,"refs":{"r/a:1":{"digest":"` + d1 + `","ringMembers":{"0":[]}}}}`, "not ring → namespaces"},
		{"v2: platforms of an unknown image", `{"version":2,"images":[],"workloads":{},"platforms":{"0":{"linux/amd64":"` + d1 + `"}}}`, "platforms names image"},
		{"v2: restart time of an unknown workload", `{"version":2,"images":[],"workloads":{},"restarted":{"a/b/c":5}}`, "has no containers"},
		{"v1: image without digest", `{"version":1,"images":["a/b:c"],"workloads":{}}`, "not image@sha256"},
		{"v1: index out of range", `{"version":1,"images":[],"workloads":{"ns/Deployment/x":{"app":0}}}`, "refers to image 0 of 0"},
		{"v1: bad key", `{"version":1,"images":[],"workloads":{"ns/x":{}}}`, "not namespace/Kind/name"},
		{"v1: empty container name", `{"version":1,"images":["a/b:c@` + d1 + `"],"workloads":{"ns/Deployment/x":{"":0}}}`, "no valid name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeJSON([]byte(tc.doc))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeJSON(%s) = %v, want ErrCorrupt", tc.doc, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestDecodeRejectsNonGzip(t *testing.T) {
	if _, err := Decode([]byte(`{"version":3}`)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Decode(plain JSON) = %v, want ErrCorrupt", err)
	}
}

func TestDecodeRefusesADocumentOverTheDecompressionLimit(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(`{"version":3,"refs":{},"pad":"`))
	_, _ = zw.Write(bytes.Repeat([]byte("a"), maxDecoded))
	_ = zw.Close()
	_, err := Decode(buf.Bytes())
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Decode(huge) = %v, want ErrCorrupt saying it is too large", err)
	}
}

func TestBoundErrorKeepsValidUTF8(t *testing.T) {
	long := strings.Repeat("é", 300)
	got := BoundError(long)
	if len(got) > maxError {
		t.Errorf("len = %d, want ≤ %d", len(got), maxError)
	}
	if !strings.HasSuffix(got, "…") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("BoundError cut a rune or lost the ellipsis: %q", got)
	}
	if short := "not found"; BoundError(short) != short {
		t.Errorf("BoundError changed a short message")
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"v1.json", "v2.json", "v3.json", "v3-quarantine.json", "v4.json"} {
		golden, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(golden)
	}
	f.Add([]byte(`{"version":4,"refs":{}}`))
	f.Add([]byte(`{"version":1,"images":["a@sha256:0"],"workloads":{"a/b/c":{"x":-1}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := DecodeJSON(raw)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// Whatever decodes must survive a save and a load unchanged.
		data, err := Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Decode(data)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if diff := cmp.Diff(s, again); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	})
}
