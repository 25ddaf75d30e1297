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
)

// restartedAt is when sample's web was last restarted.
var restartedAt = time.Date(2026, 11, 24, 22, 0, 0, 0, time.UTC)

func sample() State {
	return State{
		{"shop", "Deployment", "web"}: {
			"app":     {Image: "registry.example.com:5000/shop/web:latest", Digest: d1, Restarted: restartedAt},
			"migrate": {Image: "registry.example.com:5000/shop/web:latest", Digest: d1, Restarted: restartedAt},
			"proxy":   {Image: "docker.io/library/nginx:1.27", Digest: d2, Restarted: restartedAt, Platforms: map[string]string{"linux/amd64": d1}},
		},
		{"shop", "Deployment", "worker"}: {
			"app": {Image: "registry.example.com:5000/shop/web:latest", Digest: d2},
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
func TestEncodeMatchesGoldenV2(t *testing.T) {
	data, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	got := gunzip(t, data)
	golden := filepath.Join("testdata", "v2.json")
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

func TestDecodeGoldenV2(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "v2.json"))
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

// A version 1 document, written by urunner before cooldowns, still reads:
// the same entries, with no restart times.
func TestDecodeVersion1(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	for _, cs := range want {
		for n, e := range cs {
			e.Restarted, e.Platforms = time.Time{}, nil
			cs[n] = e
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded v1 state (-want +got):\n%s", diff)
	}
}

func TestEncodeInternsEachImageOnce(t *testing.T) {
	data, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	raw := string(gunzip(t, data))
	if n := strings.Count(raw, "shop/web:latest@"+d1); n != 1 {
		t.Errorf("image@digest stored %d times, want once:\n%s", n, raw)
	}
}

func TestRoundTrip(t *testing.T) {
	for name, s := range map[string]State{
		"empty":  {},
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

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"not JSON", `{"version":1,`, "unexpected end"},
		{"no version", `{"images":[],"workloads":{}}`, "no version"},
		{"a newer version is refused, not rewritten", `{"version":3,"images":[],"workloads":{}}`, "version 3"},
		{"platforms of an unknown image", `{"version":2,"images":[],"workloads":{},"platforms":{"0":{"linux/amd64":"` + d1 + `"}}}`, "platforms names image"},
		{"platform digest malformed", `{"version":2,"images":["a/b:c@` + d1 + `"],"workloads":{},"platforms":{"0":{"linux/amd64":"x"}}}`, "not platform"},
		{"restart time of an unknown workload", `{"version":2,"images":[],"workloads":{},"restarted":{"a/b/c":5}}`, "has no containers"},
		{"unknown field", `{"version":1,"images":[],"workloads":{},"extra":1}`, "unknown field"},
		{"image without digest", `{"version":1,"images":["a/b:c"],"workloads":{}}`, "not image@sha256"},
		{"short digest", `{"version":1,"images":["a/b:c@sha256:12"],"workloads":{}}`, "not image@sha256"},
		{"index out of range", `{"version":1,"images":[],"workloads":{"ns/Deployment/x":{"app":0}}}`, "refers to image 0 of 0"},
		{"bad key", `{"version":1,"images":[],"workloads":{"ns/x":{}}}`, "not namespace/Kind/name"},
		{"empty container name", `{"version":1,"images":["a/b:c@` + d1 + `"],"workloads":{"ns/Deployment/x":{"":0}}}`, "no name"},
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
	if _, err := Decode([]byte(`{"version":1}`)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Decode(plain JSON) = %v, want ErrCorrupt", err)
	}
}

func FuzzDecode(f *testing.F) {
	golden, err := os.ReadFile(filepath.Join("testdata", "v2.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add([]byte(`{"version":1,"images":[],"workloads":{}}`))
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
