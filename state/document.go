package state

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Version is the document format this urunner reads and writes. A document
// of another version is refused rather than rewritten, so that a downgrade
// never destroys what a newer urunner stored.
const Version = 2

// DataKey is the ConfigMap binaryData key holding the document. ConfigMap
// keys may not contain '/', ':' or '@', which is why image references live
// inside the document and not in the keys.
const DataKey = "state.json.gz"

// Document is the stored form of a State, version 2:
//
//	{"version":2,
//	 "images":["registry.example.com/team/app:latest@sha256:…", …],
//	 "workloads":{"namespace/Deployment/name":{"container":0, …}, …},
//	 "restarted":{"namespace/Deployment/name":1764028800, …},
//	 "platforms":{"0":{"linux/amd64":"sha256:…"}, …}}
//
// Each distinct image@digest is stored once and containers refer to it by
// index: thousands of workloads share a few hundred images, and interning
// keeps the ConfigMap far below its 1 MiB limit (see BENCHMARKS.md).
// "restarted" is when urunner last restarted a workload (Unix seconds), for
// cooldowns. "platforms" holds, for an image that is a multi-platform index
// (by its position in "images"), the child manifest digests of the
// platforms urunner watches, for platform-aware restarts. Version 1 is the
// same without "restarted" and "platforms"; it is read, and rewritten as
// version 2.
type Document struct {
	Version   int                          `json:"version"`
	Images    []string                     `json:"images"`
	Workloads map[string]map[string]int    `json:"workloads"`
	Restarted map[string]int64             `json:"restarted,omitempty"`
	Platforms map[string]map[string]string `json:"platforms,omitempty"`
}

// ErrCorrupt marks a stored document that cannot be read. urunner never
// overwrites such a document: it stops and asks a human.
var ErrCorrupt = errors.New("state document is corrupt")

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Encode returns the compressed document for s.
func Encode(s State) ([]byte, error) {
	doc := Document{Version: Version, Workloads: make(map[string]map[string]int, len(s))}
	index := map[string]int{}
	for _, k := range s.Keys() {
		cs := s[k]
		if len(cs) == 0 {
			continue
		}
		refs := make(map[string]int, len(cs))
		names := slices.Sorted(maps.Keys(cs))
		var last int64
		for _, name := range names {
			e := cs[name]
			if !e.Restarted.IsZero() {
				last = max(last, e.Restarted.Unix())
			}
			img := e.Image + "@" + e.Digest
			i, ok := index[img]
			if !ok {
				i = len(doc.Images)
				index[img] = i
				doc.Images = append(doc.Images, img)
			}
			if len(e.Platforms) > 0 {
				if doc.Platforms == nil {
					doc.Platforms = map[string]map[string]string{}
				}
				doc.Platforms[strconv.Itoa(i)] = e.Platforms
			}
			refs[name] = i
		}
		doc.Workloads[k.String()] = refs
		if last > 0 {
			if doc.Restarted == nil {
				doc.Restarted = map[string]int64{}
			}
			doc.Restarted[k.String()] = last
		}
	}
	if doc.Images == nil {
		doc.Images = []string{}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	var buf bytes.Buffer
	// Digests do not compress; the rest (names, indexes) does, and the
	// best level buys about a tenth of the ConfigMap for milliseconds.
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("compress state: %w", err)
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, fmt.Errorf("compress state: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress state: %w", err)
	}
	return buf.Bytes(), nil
}

// maxDecoded bounds decompression, so that a hostile or broken ConfigMap
// cannot make urunner allocate without limit.
const maxDecoded = 64 << 20

// Decode reads a compressed document. Every error wraps ErrCorrupt.
func Decode(data []byte) (State, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: not gzip: %v", ErrCorrupt, err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxDecoded+1))
	if err != nil {
		return nil, fmt.Errorf("%w: decompress: %v", ErrCorrupt, err)
	}
	if len(raw) > maxDecoded {
		return nil, fmt.Errorf("%w: larger than %d bytes uncompressed", ErrCorrupt, maxDecoded)
	}
	return DecodeJSON(raw)
}

// DecodeJSON reads an uncompressed document. Every error wraps ErrCorrupt.
func DecodeJSON(raw []byte) (State, error) {
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if probe.Version == nil {
		return nil, fmt.Errorf("%w: no version", ErrCorrupt)
	}
	if *probe.Version != 1 && *probe.Version != Version {
		return nil, fmt.Errorf("%w: version %d, this urunner reads versions 1 and %d", ErrCorrupt, *probe.Version, Version)
	}
	var doc Document
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	type split struct{ image, digest string }
	images := make([]split, len(doc.Images))
	for i, img := range doc.Images {
		at := strings.LastIndexByte(img, '@')
		if at <= 0 || !digestRE.MatchString(img[at+1:]) {
			return nil, fmt.Errorf("%w: images[%d] %q is not image@sha256:digest", ErrCorrupt, i, img)
		}
		images[i] = split{img[:at], img[at+1:]}
	}
	platforms := map[int]map[string]string{}
	for is, ps := range doc.Platforms {
		i, err := strconv.Atoi(is)
		if err != nil || i < 0 || i >= len(images) {
			return nil, fmt.Errorf("%w: platforms names image %q of %d", ErrCorrupt, is, len(images))
		}
		for p, d := range ps {
			if !digestRE.MatchString(d) || strings.Count(p, "/") < 1 {
				return nil, fmt.Errorf("%w: platforms[%s][%q] = %q is not platform → sha256 digest", ErrCorrupt, is, p, d)
			}
		}
		platforms[i] = ps
	}
	s := make(State, len(doc.Workloads))
	for ks, cs := range doc.Workloads {
		k, err := parseKey(ks)
		if err != nil {
			return nil, err
		}
		if len(cs) == 0 {
			continue
		}
		m := make(map[string]Entry, len(cs))
		for name, i := range cs {
			if name == "" {
				return nil, fmt.Errorf("%w: workload %q has a container with no name", ErrCorrupt, ks)
			}
			if i < 0 || i >= len(images) {
				return nil, fmt.Errorf("%w: workload %q container %q refers to image %d of %d", ErrCorrupt, ks, name, i, len(images))
			}
			m[name] = Entry{Image: images[i].image, Digest: images[i].digest, Platforms: platforms[i]}
		}
		if at, ok := doc.Restarted[ks]; ok {
			if at <= 0 {
				return nil, fmt.Errorf("%w: workload %q restarted at %d", ErrCorrupt, ks, at)
			}
			for name, e := range m {
				e.Restarted = time.Unix(at, 0).UTC()
				m[name] = e
			}
		}
		s[k] = m
	}
	for ks := range doc.Restarted {
		if _, ok := doc.Workloads[ks]; !ok {
			return nil, fmt.Errorf("%w: restarted names workload %q, which has no containers", ErrCorrupt, ks)
		}
	}
	return s, nil
}

func parseKey(s string) (Key, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return Key{}, fmt.Errorf("%w: workload key %q is not namespace/Kind/name", ErrCorrupt, s)
	}
	return Key{Namespace: parts[0], Kind: parts[1], Name: parts[2]}, nil
}
