package state

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// ProvenanceKey is the ConfigMap binaryData key holding what change context
// read about digests (see Provenance), beside the document and not in it:
// it is a cache. An urunner that predates it reads only DataKey, whose
// decoder refuses unknown fields, and keeps the ConfigMap's other keys as
// they are; a cache entry names a digest, whose content never changes, so
// what such an urunner leaves behind is still true when a newer one reads
// it again. A key that does not decode is dropped, never a reason to stop.
const ProvenanceKey = "provenance.json.gz"

// Provenance is what an image's manifest and config say of where it comes
// from (org.opencontainers.image.revision, source, version, created), as
// change context read it; Read is when. It belongs to a digest, not to a
// tag: a digest names one manifest and one config.
type Provenance struct {
	Revision, Source, Version, Created string
	Read                               time.Time
}

// Bounds of the cache. A label is what anyone who can push writes; the
// cache must never crowd out the references, so it is bounded in bytes:
// 10,000 references take about 400 KB, and the cache at most MaxProvenanceBytes
// more, well within the ConfigMap's 1 MiB (and dropped first when a save
// would not fit: see Store.object).
const (
	maxProvenanceLabel = 256
	MaxProvenanceBytes = 256 << 10
)

// provenanceSize is what an entry costs in the stored JSON, about.
func provenanceSize(digest string, p Provenance) int {
	const overhead = 80 // the keys, quotes and the time
	return len(digest) + len(p.Revision) + len(p.Source) + len(p.Version) + len(p.Created) + overhead
}

// named returns the digests the references name: those they point at, their
// bases, and what their exceptions run. A move is from one of them.
func (s State) named() map[string]bool {
	out := map[string]bool{}
	for _, r := range s.Refs {
		for _, d := range []string{r.Digest, r.Base} {
			if d != "" {
				out[d] = true
			}
		}
		for _, e := range r.Except {
			out[e.Runs] = true
		}
	}
	return out
}

// BoundProvenance keeps only the provenance of digests a reference names
// (the next move of a tag is from one of them), and of those, past
// MaxProvenanceBytes, forgets the oldest read first.
func BoundProvenance(s *State) {
	named := s.named()
	size := 0
	for d, p := range s.Provenance {
		if !named[d] {
			delete(s.Provenance, d)
			continue
		}
		size += provenanceSize(d, p)
	}
	if size > MaxProvenanceBytes {
		order := slices.SortedFunc(maps.Keys(s.Provenance), func(a, b string) int {
			return cmp.Or(s.Provenance[a].Read.Compare(s.Provenance[b].Read), strings.Compare(a, b))
		})
		for _, d := range order {
			if size <= MaxProvenanceBytes {
				break
			}
			size -= provenanceSize(d, s.Provenance[d])
			delete(s.Provenance, d)
		}
	}
	if len(s.Provenance) == 0 {
		s.Provenance = nil
	}
}

// provenanceDoc is the stored form of ProvenanceKey:
//
//	{"sha256:…":{"revision":"3f2a1c4…","source":"https://github.com/org/app",
//	             "version":"1.2.0","created":"2026-12-06T10:00:00Z","read":1764028800}}
type provenanceDoc struct {
	Revision string `json:"revision,omitempty"`
	Source   string `json:"source,omitempty"`
	Version  string `json:"version,omitempty"`
	Created  string `json:"created,omitempty"`
	Read     int64  `json:"read"`
}

// EncodeProvenance returns the compressed form of ps; nil when empty.
func EncodeProvenance(ps map[string]Provenance) ([]byte, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	doc := make(map[string]provenanceDoc, len(ps))
	for d, p := range ps {
		doc[d] = provenanceDoc{Revision: p.Revision, Source: p.Source, Version: p.Version, Created: p.Created, Read: unix(p.Read)}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode provenance: %w", err)
	}
	return compress(raw)
}

// DecodeProvenance reads what EncodeProvenance wrote. Every error wraps
// ErrCorrupt; labels are cut to their bound, as change context reads them.
func DecodeProvenance(data []byte) (map[string]Provenance, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not gzip: %v", ErrCorrupt, ProvenanceKey, err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxDecoded+1))
	if err != nil || len(raw) > maxDecoded {
		return nil, fmt.Errorf("%w: %s: does not decompress within %d bytes", ErrCorrupt, ProvenanceKey, maxDecoded)
	}
	var doc map[string]provenanceDoc
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, ProvenanceKey, err)
	}
	out := make(map[string]Provenance, len(doc))
	for d, p := range doc {
		if !digestRE.MatchString(d) || p.Read < 0 {
			return nil, fmt.Errorf("%w: %s: %q is not a sha256 digest read at a time", ErrCorrupt, ProvenanceKey, d)
		}
		out[d] = Provenance{Revision: boundLabel(p.Revision), Source: boundLabel(p.Source), Version: boundLabel(p.Version),
			Created: boundLabel(p.Created), Read: fromUnix(p.Read)}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// boundLabel cuts a label to maxProvenanceLabel bytes on a rune boundary.
func boundLabel(s string) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= maxProvenanceLabel {
		return s
	}
	cut := maxProvenanceLabel - len("…")
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// mergeProvenance is the union of both writers' caches: an entry is true
// of its digest whoever read it; the later read is kept.
func mergeProvenance(out *State, ours State) {
	for d, p := range ours.Provenance {
		if t, ok := out.Provenance[d]; ok && !p.Read.After(t.Read) {
			continue
		}
		if out.Provenance == nil {
			out.Provenance = map[string]Provenance{}
		}
		out.Provenance[d] = p
	}
	BoundProvenance(out)
}
