package state

import (
	"bytes"
	"cmp"
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

// Version is the document format this urunner writes. It reads versions 1
// and 2 (memory keyed by workload, before urunner 0.3) and 3 (quarantines
// kept per reference) and migrates them;
// a document of a later version is refused rather than rewritten, so that
// a downgrade never destroys what a newer urunner stored.
const Version = 4

// DataKey is the ConfigMap binaryData key holding the document. ConfigMap
// keys may not contain '/', ':' or '@', which is why image references live
// inside the document and not in the keys.
const DataKey = "state.json.gz"

// ErrCorrupt marks a stored document that cannot be read. urunner never
// overwrites such a document: it stops and asks a human.
var ErrCorrupt = errors.New("state document is corrupt")

// document is the stored form, version 4:
//
//	{"version":4,"listedAt":1764028800,"lastSuccess":1764028790,
//	 "clusterWorkloads":100000,"countedAt":1764028800,
//	 "refs":{"registry.example.com/shop/web:latest":{
//	    "digest":"sha256:…","seen":1764028800,"checked":1764028800,
//	    "base":"sha256:…",                                  (when not digest)
//	    "children":{"sha256:…":{"linux/amd64":"sha256:…"}}, (indexes, URUNNER_CONF_PLATFORMS)
//	    "failing":1764028800,"error":"…",                   (failed lookups)
//	    "except":{"shop/Deployment/web/app":                (held, paused, failed workloads)
//	        {"runs":"sha256:…","record":"sha256:…"}},
//	    "rings":{"0":1764028800},                           (rings: healthy on digest since)
//	    "ringMembers":{"0":["shop-canary"],"1":["shop"]}}}, (rings known to follow it: their namespaces)
//	 "quarantines":{"sha256:…":{                            (verified rollouts that failed)
//	    "why":"rollout failed in …","at":1764028800,
//	    "refs":["registry.example.com/shop/web:latest"],
//	    "failed":{"shop":1764028800},                       (namespace → latest failure)
//	    "lifted":{"team":1764029000},                       (namespace → lift applied)
//	    "liftedAll":1764029100}},                           (kubectl urunner lift)
//	 "capSince":1764028800123456789,                        (the last full run's start, in ns)
//	 "restarts":{"1764028800123456789":3}}                  (restarts the cap counts, by run start in ns)
//
// Times are Unix seconds, but for the run starts of the cap's window
// (nanoseconds, which tell runs apart). A steady state holds one digest
// per reference and nothing per workload: 10,000 references take about
// 400 KB, whatever the number of workloads (see BENCHMARKS.md).
//
// Versions 1 and 2 held one entry per workload and container in
// "images"/"workloads" (and v2 "restarted"/"platforms"); they are read by
// migrate. Version 3 is version 4 with each reference's quarantines in its
// own "quarantine" (digest → why); they move to "quarantines" on read.
type document struct {
	Version     int                      `json:"version"`
	ListedAt    int64                    `json:"listedAt,omitempty"`
	LastSuccess int64                    `json:"lastSuccess,omitempty"`
	Cluster     int                      `json:"clusterWorkloads,omitempty"`
	CountedAt   int64                    `json:"countedAt,omitempty"`
	Refs        map[string]refDoc        `json:"refs,omitempty"`
	Quarantines map[string]quarantineDoc `json:"quarantines,omitempty"`
	CapSince    int64                    `json:"capSince,omitempty"`
	Restarts    map[string]int           `json:"restarts,omitempty"`

	// Versions 1 and 2.
	Images    []string                     `json:"images,omitempty"`
	Workloads map[string]map[string]int    `json:"workloads,omitempty"`
	Restarted map[string]int64             `json:"restarted,omitempty"`
	Platforms map[string]map[string]string `json:"platforms,omitempty"`
}

type exceptionDoc struct {
	Runs   string `json:"runs"`
	Record string `json:"record,omitempty"`
}

type quarantineDoc struct {
	Why       string           `json:"why,omitempty"`
	At        int64            `json:"at"`
	Refs      []string         `json:"refs,omitempty"`
	Failed    map[string]int64 `json:"failed,omitempty"`
	Lifted    map[string]int64 `json:"lifted,omitempty"`
	LiftedAll int64            `json:"liftedAll,omitempty"`
}

type refDoc struct {
	Digest   string                       `json:"digest,omitempty"`
	Seen     int64                        `json:"seen,omitempty"`
	Checked  int64                        `json:"checked,omitempty"`
	Base     string                       `json:"base,omitempty"`
	Children map[string]map[string]string `json:"children,omitempty"`
	Failing  int64                        `json:"failing,omitempty"`
	Error    string                       `json:"error,omitempty"`
	Except   map[string]exceptionDoc      `json:"except,omitempty"`
	// Version 3 only: moved to document.Quarantines on read.
	Quarantine map[string]string `json:"quarantine,omitempty"`
	Rings      map[string]int64  `json:"rings,omitempty"`
	// RingMembers are the rings known to follow the reference, with their
	// namespaces (a version 3 document may carry them too).
	RingMembers map[string][]string `json:"ringMembers,omitempty"`
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// unixNano is t in Unix nanoseconds, 0 for the zero time: the times that
// tell runs apart, which whole seconds would not.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// Encode returns the compressed document for s. Times keep whole seconds.
func Encode(s State) ([]byte, error) {
	doc := document{Version: Version, ListedAt: unix(s.ListedAt), LastSuccess: unix(s.LastSuccess),
		Cluster: s.Workloads, CountedAt: unix(s.CountedAt), Refs: make(map[string]refDoc, len(s.Refs)),
		CapSince: unixNano(s.CapSince)}
	for at, n := range s.Restarts {
		if doc.Restarts == nil {
			doc.Restarts = make(map[string]int, len(s.Restarts))
		}
		doc.Restarts[strconv.FormatInt(at, 10)] = n
	}
	for k, r := range s.Refs {
		doc.Refs[k] = refDocOf(r)
	}
	doc.Quarantines = quarantineDocs(s.Quarantines)
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return compress(raw)
}

// refDocOf is the stored form of one reference. The base is left out when
// it is the digest, the common case, which keeps a steady state small.
func refDocOf(r Ref) refDoc {
	base := r.Base
	if base == r.Digest {
		base = ""
	}
	rd := refDoc{
		Digest: r.Digest, Seen: unix(r.Seen), Checked: unix(r.Checked), Base: base,
		Children: r.Children, Failing: unix(r.Failing), Error: r.Error,
	}
	if len(r.Rings) > 0 {
		rd.Rings = make(map[string]int64, len(r.Rings))
		for ring, at := range r.Rings {
			rd.Rings[strconv.Itoa(ring)] = unix(at)
		}
	}
	if len(r.RingMembers) > 0 {
		rd.RingMembers = make(map[string][]string, len(r.RingMembers))
		for ring, nss := range r.RingMembers {
			rd.RingMembers[strconv.Itoa(ring)] = slices.Sorted(slices.Values(nss))
		}
	}
	if len(r.Except) > 0 {
		rd.Except = make(map[string]exceptionDoc, len(r.Except))
		for c, e := range r.Except {
			rd.Except[c] = exceptionDoc{Runs: e.Runs, Record: e.Record}
		}
	}
	return rd
}

// compress gzips the encoded document.
func compress(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	// Digests do not compress; references and container names do, and the
	// best level buys a tenth of the ConfigMap for milliseconds.
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

// Decode reads a compressed document of any version this urunner reads.
// Every error wraps ErrCorrupt.
func Decode(data []byte) (State, error) {
	s, _, err := decode(data)
	return s, err
}

// decode also returns the document's version.
func decode(data []byte) (State, int, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return State{}, 0, fmt.Errorf("%w: not gzip: %v", ErrCorrupt, err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxDecoded+1))
	if err != nil {
		return State{}, 0, fmt.Errorf("%w: decompress: %v", ErrCorrupt, err)
	}
	if len(raw) > maxDecoded {
		return State{}, 0, fmt.Errorf("%w: larger than %d bytes uncompressed", ErrCorrupt, maxDecoded)
	}
	return decodeJSON(raw)
}

// DecodeJSON reads an uncompressed document. Every error wraps ErrCorrupt.
func DecodeJSON(raw []byte) (State, error) {
	s, _, err := decodeJSON(raw)
	return s, err
}

// decodeJSON parses raw once, whatever its version.
func decodeJSON(raw []byte) (State, int, error) {
	var doc document
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return State{}, 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	switch doc.Version {
	case 0:
		return State{}, 0, fmt.Errorf("%w: no version", ErrCorrupt)
	case 1, 2:
		if doc.Refs != nil || doc.ListedAt != 0 || doc.LastSuccess != 0 || doc.Cluster != 0 || doc.CountedAt != 0 ||
			doc.CapSince != 0 || doc.Restarts != nil {
			return State{}, 0, fmt.Errorf("%w: version %d with version %d fields", ErrCorrupt, doc.Version, Version)
		}
		s, err := migrate(doc)
		return s, doc.Version, err
	case 3, Version:
		if doc.Images != nil || doc.Workloads != nil || doc.Restarted != nil || doc.Platforms != nil {
			return State{}, 0, fmt.Errorf("%w: version %d with version 1 or 2 fields", ErrCorrupt, doc.Version)
		}
		s, err := fromDocument(doc)
		return s, doc.Version, err
	default:
		return State{}, 0, fmt.Errorf("%w: version %d, this urunner reads versions 1 to %d", ErrCorrupt, doc.Version, Version)
	}
}

// ref is the in-memory form of one reference's record, in the canonical
// form Encode writes (so that a save and a load change nothing).
func (d refDoc) ref() Ref {
	r := Ref{
		Digest: d.Digest, Seen: fromUnix(d.Seen), Checked: fromUnix(d.Checked), Base: d.Base,
		Children: d.Children, Failing: fromUnix(d.Failing), Error: BoundError(d.Error),
	}
	for rs, at := range d.Rings {
		ring, _ := strconv.Atoi(rs)
		if r.Rings == nil {
			r.Rings = map[int]time.Time{}
		}
		r.Rings[ring] = fromUnix(at)
	}
	for rs, nss := range d.RingMembers {
		ring, _ := strconv.Atoi(rs)
		if r.RingMembers == nil {
			r.RingMembers = map[int][]string{}
		}
		// Sorted as Encode writes them, so a document written by hand
		// or by an older urunner compares equal after a save and a load.
		r.RingMembers[ring] = slices.Sorted(slices.Values(nss))
	}
	for c, e := range d.Except {
		if r.Except == nil {
			r.Except = make(map[string]Exception, len(d.Except))
		}
		r.Except[c] = Exception{Runs: e.Runs, Record: e.Record}
	}
	if r.Base == r.Digest {
		r.Base = ""
	}
	if len(r.Except) == 0 {
		r.Except = nil
	}
	if len(r.Children) == 0 {
		r.Children = nil
	}
	return r
}

func fromDocument(doc document) (State, error) {
	if doc.ListedAt < 0 || doc.LastSuccess < 0 {
		return State{}, fmt.Errorf("%w: negative time", ErrCorrupt)
	}
	if doc.Cluster < 0 || doc.CountedAt < 0 {
		return State{}, fmt.Errorf("%w: negative count", ErrCorrupt)
	}
	s := State{ListedAt: fromUnix(doc.ListedAt), LastSuccess: fromUnix(doc.LastSuccess),
		Workloads: doc.Cluster, CountedAt: fromUnix(doc.CountedAt), Refs: make(map[string]Ref, len(doc.Refs))}
	if err := readRestarts(&s, doc); err != nil {
		return State{}, err
	}
	for k, d := range doc.Refs {
		if err := d.validate(k); err != nil {
			return State{}, err
		}
		if err := migrateQuarantine(doc.Version, k, d, &s); err != nil {
			return State{}, err
		}
		s.Refs[k] = d.ref()
	}
	if err := s.readQuarantines(doc.Version, doc.Quarantines); err != nil {
		return State{}, err
	}
	s.viewQuarantines()
	return s, nil
}

// readRestarts reads what the restart cap counts.
func readRestarts(s *State, doc document) error {
	if doc.CapSince < 0 {
		return fmt.Errorf("%w: negative capSince", ErrCorrupt)
	}
	if doc.CapSince != 0 {
		s.CapSince = time.Unix(0, doc.CapSince).UTC()
	}
	for k, n := range doc.Restarts {
		at, err := strconv.ParseInt(k, 10, 64)
		if err != nil || at <= 0 || strconv.FormatInt(at, 10) != k || n <= 0 || n > MaxRunRestarts {
			return fmt.Errorf("%w: restarts[%q] = %d is not run start (Unix ns) → restarts", ErrCorrupt, k, n)
		}
		if s.Restarts == nil {
			s.Restarts = make(map[int64]int, len(doc.Restarts))
		}
		s.Restarts[at] = n
	}
	BoundRestarts(s.Restarts)
	return nil
}

// validRefKey reports whether k can be a reference's key:
// registry/repository:tag.
func validRefKey(k string) bool {
	return k != "" && !strings.ContainsAny(k, " \t\n@") && strings.Contains(k, "/") && strings.Contains(k, ":")
}

func (d refDoc) validate(k string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: refs[%q]: %s", ErrCorrupt, k, fmt.Sprintf(format, args...))
	}
	if !validRefKey(k) {
		return bad("not registry/repository:tag")
	}
	for name, v := range map[string]string{"digest": d.Digest, "base": d.Base} {
		if v != "" && !digestRE.MatchString(v) {
			return bad("%s %q is not a sha256 digest", name, v)
		}
	}
	if d.Digest == "" && d.Base != "" {
		return bad("base without digest")
	}
	if d.Seen < 0 || d.Checked < 0 || d.Failing < 0 {
		return bad("negative time")
	}
	for dg, ps := range d.Children {
		if !digestRE.MatchString(dg) {
			return bad("children of %q, not a sha256 digest", dg)
		}
		for p, c := range ps {
			if !digestRE.MatchString(c) || strings.Count(p, "/") < 1 {
				return bad("children[%s][%q] = %q is not platform → sha256 digest", dg, p, c)
			}
		}
	}
	for rs, at := range d.Rings {
		if n, err := strconv.Atoi(rs); err != nil || n < 0 || strconv.Itoa(n) != rs || at <= 0 {
			return bad("rings[%q] = %d is not ring → time", rs, at)
		}
	}
	for rs, nss := range d.RingMembers {
		if n, err := strconv.Atoi(rs); err != nil || n < 0 || strconv.Itoa(n) != rs || len(nss) == 0 || slices.Contains(nss, "") {
			return bad("ringMembers[%q] = %q is not ring → namespaces", rs, nss)
		}
	}
	for c, e := range d.Except {
		if parts := strings.Split(c, "/"); len(parts) != 4 || slices.Contains(parts, "") {
			return bad("except key %q is not namespace/Kind/name/container", c)
		}
		if !digestRE.MatchString(e.Runs) || e.Record != "" && !digestRE.MatchString(e.Record) {
			return bad("except[%q] = %+v is not sha256 digests", c, e)
		}
	}
	return nil
}

// migrate turns a version 1 or 2 document (one entry per workload and
// container) into references: each reference's base is the digest most of
// its containers had, and every container that had another becomes an
// exception, so that every workload is believed to run exactly what the
// old document said. Restart times are dropped: cooldowns read the
// workload's own restartedAt annotation now.
func migrate(doc document) (State, error) {
	images, err := legacyImages(doc)
	if err != nil {
		return State{}, err
	}
	if err := checkLegacyPlatforms(doc, len(images)); err != nil {
		return State{}, err
	}
	if err := checkLegacyRestarted(doc); err != nil {
		return State{}, err
	}
	byRef, children, err := legacyContainers(doc, images)
	if err != nil {
		return State{}, err
	}
	return State{Refs: refsOfLegacy(byRef, children)}, nil
}

// legacyImage is one entry of a version 1 or 2 document's images, split
// at its '@'.
type legacyImage struct{ ref, digest string }

// legacyImages splits the images of a version 1 or 2 document.
func legacyImages(doc document) ([]legacyImage, error) {
	images := make([]legacyImage, len(doc.Images))
	for i, img := range doc.Images {
		at := strings.LastIndexByte(img, '@')
		if at <= 0 || !digestRE.MatchString(img[at+1:]) {
			return nil, fmt.Errorf("%w: images[%d] %q is not image@sha256:digest", ErrCorrupt, i, img)
		}
		images[i] = legacyImage{img[:at], img[at+1:]}
	}
	return images, nil
}

// checkLegacyPlatforms checks that a version 2 document's platforms name
// images it has and map platforms to digests.
func checkLegacyPlatforms(doc document, nImages int) error {
	for is, ps := range doc.Platforms {
		var i int
		if _, err := fmt.Sscan(is, &i); err != nil || i < 0 || i >= nImages || fmt.Sprint(i) != is {
			return fmt.Errorf("%w: platforms names image %q of %d", ErrCorrupt, is, nImages)
		}
		for p, d := range ps {
			if !digestRE.MatchString(d) || strings.Count(p, "/") < 1 {
				return fmt.Errorf("%w: platforms[%s][%q] = %q is not platform → sha256 digest", ErrCorrupt, is, p, d)
			}
		}
	}
	return nil
}

// checkLegacyRestarted checks that a version 2 document's restart times
// name workloads it has, at positive times. The times themselves are
// dropped (see migrate).
func checkLegacyRestarted(doc document) error {
	for ks := range doc.Restarted {
		if _, ok := doc.Workloads[ks]; !ok {
			return fmt.Errorf("%w: restarted names workload %q, which has no containers", ErrCorrupt, ks)
		}
		if doc.Restarted[ks] <= 0 {
			return fmt.Errorf("%w: workload %q restarted at %d", ErrCorrupt, ks, doc.Restarted[ks])
		}
	}
	return nil
}

// legacyContainers groups a version 1 or 2 document's containers by
// reference and by the digest they had (byRef: ref → digest → containers),
// with the platform children of each (ref → digest → platform → digest).
func legacyContainers(doc document, images []legacyImage) (map[string]map[string][]string, map[string]map[string]map[string]string, error) {
	byRef := map[string]map[string][]string{}
	children := map[string]map[string]map[string]string{}
	for ks, cs := range doc.Workloads {
		if parts := strings.Split(ks, "/"); len(parts) != 3 || slices.Contains(parts, "") {
			return nil, nil, fmt.Errorf("%w: workload key %q is not namespace/Kind/name", ErrCorrupt, ks)
		}
		for name, i := range cs {
			if name == "" || strings.Contains(name, "/") {
				return nil, nil, fmt.Errorf("%w: workload %q has a container with no valid name", ErrCorrupt, ks)
			}
			if i < 0 || i >= len(images) {
				return nil, nil, fmt.Errorf("%w: workload %q container %q refers to image %d of %d", ErrCorrupt, ks, name, i, len(images))
			}
			img := images[i]
			if !validRefKey(img.ref) {
				// Not a reference this version can key by: forgotten, so
				// its containers are first seen again (a baseline, never
				// a restart).
				continue
			}
			if byRef[img.ref] == nil {
				byRef[img.ref] = map[string][]string{}
			}
			byRef[img.ref][img.digest] = append(byRef[img.ref][img.digest], ks+"/"+name)
			if ps, ok := doc.Platforms[fmt.Sprint(i)]; ok {
				if children[img.ref] == nil {
					children[img.ref] = map[string]map[string]string{}
				}
				children[img.ref][img.digest] = maps.Clone(ps)
			}
		}
	}
	return byRef, children, nil
}

// refsOfLegacy makes each reference's base the digest most of its
// containers had and every other container an exception.
func refsOfLegacy(byRef map[string]map[string][]string, children map[string]map[string]map[string]string) map[string]Ref {
	refs := make(map[string]Ref, len(byRef))
	for ref, digests := range byRef {
		// The most common digest is the base; ties go to the smaller
		// digest, so that migration is deterministic.
		base := slices.MaxFunc(slices.Sorted(maps.Keys(digests)), func(a, b string) int {
			return cmp.Or(cmp.Compare(len(digests[a]), len(digests[b])), strings.Compare(b, a))
		})
		r := Ref{Digest: base, Children: children[ref]}
		for d, cs := range digests {
			if d == base {
				continue
			}
			if r.Except == nil {
				r.Except = map[string]Exception{}
			}
			for _, c := range cs {
				r.Except[c] = Exception{Runs: d}
			}
		}
		refs[ref] = r
	}
	return refs
}
