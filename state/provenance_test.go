package state

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const d4 = "sha256:4444444444444444444444444444444444444444444444444444444444444444"

func TestBoundProvenance(t *testing.T) {
	pv := func(rev string, at time.Time) Provenance { return Provenance{Revision: rev, Read: at} }
	big := func(at time.Time) Provenance {
		return Provenance{Revision: strings.Repeat("r", maxProvenanceLabel), Source: strings.Repeat("s", maxProvenanceLabel), Read: at}
	}
	manyRefs := map[string]Ref{}
	many := map[string]Provenance{}
	for i := range 600 {
		d := fmt.Sprintf("sha256:%064x", i)
		manyRefs[fmt.Sprintf("r/a%d:1", i)] = Ref{Digest: d}
		many[d] = big(t0.Add(time.Duration(i) * time.Second))
	}
	for _, tc := range []struct {
		name string
		s    State
		want []string // the digests kept
	}{
		{"the digest a tag points at is kept, for its next move",
			State{Refs: map[string]Ref{"r/a:1": {Digest: d1}}, Provenance: map[string]Provenance{d1: pv("a", t0)}},
			[]string{d1}},
		{"a base and what an exception runs are kept: a held move is from them",
			State{Refs: map[string]Ref{"r/a:1": {Digest: d2, Base: d1, Except: map[string]Exception{"ns/Deployment/w/c": {Runs: d3}}}},
				Provenance: map[string]Provenance{d1: pv("a", t0), d2: pv("b", t0), d3: pv("c", t0)}},
			[]string{d1, d2, d3}},
		{"a digest no reference names any more is forgotten",
			State{Refs: map[string]Ref{"r/a:1": {Digest: d2}}, Provenance: map[string]Provenance{d1: pv("a", t0), d2: pv("b", t1)}},
			[]string{d2}},
		{"a forgotten reference takes its digests' provenance with it",
			State{Refs: map[string]Ref{}, Provenance: map[string]Provenance{d4: pv("a", t0)}},
			nil},
		{"past the byte bound the oldest read go first",
			State{Refs: manyRefs, Provenance: many},
			func() []string {
				per := provenanceSize(fmt.Sprintf("sha256:%064x", 0), big(t0))
				keep := MaxProvenanceBytes / per
				var out []string
				for i := 600 - keep; i < 600; i++ {
					out = append(out, fmt.Sprintf("sha256:%064x", i))
				}
				return out
			}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s.Clone()
			BoundProvenance(&s)
			got := slices.Sorted(maps.Keys(s.Provenance))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProvenanceRoundTrip(t *testing.T) {
	ps := map[string]Provenance{
		d1: {Revision: "3f2a1c4", Source: "https://github.com/org/app", Version: "1.2.0", Created: "2026-12-06T10:00:00Z", Read: t0},
		d2: {Read: t1}, // the image says nothing: kept, so it is not read again
	}
	data, err := EncodeProvenance(ps)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeProvenance(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ps, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if empty, err := EncodeProvenance(nil); empty != nil || err != nil {
		t.Errorf("EncodeProvenance(nil) = %q, %v; want nothing stored", empty, err)
	}
}

func TestDecodeProvenanceRejects(t *testing.T) {
	for _, tc := range []struct{ name, raw string }{
		{"not a digest", `{"latest":{"read":1}}`},
		{"a negative time", `{"` + d1 + `":{"read":-1}}`},
		{"an unknown field", `{"` + d1 + `":{"read":1,"labels":{}}}`},
		{"not an object", `[]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := compress([]byte(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeProvenance(data); !errors.Is(err, ErrCorrupt) {
				t.Errorf("DecodeProvenance(%s) = %v, want ErrCorrupt", tc.raw, err)
			}
		})
	}
	if _, err := DecodeProvenance([]byte("plain")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("DecodeProvenance(not gzip) = %v, want ErrCorrupt", err)
	}
}

func TestDecodeProvenanceCutsLongLabels(t *testing.T) {
	data, err := compress([]byte(`{"` + d1 + `":{"revision":"` + strings.Repeat("é", 300) + `","read":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeProvenance(data)
	if err != nil {
		t.Fatal(err)
	}
	if r := got[d1].Revision; len(r) > maxProvenanceLabel || !strings.HasSuffix(r, "…") || strings.ContainsRune(r, '\uFFFD') {
		t.Errorf("revision of %d bytes, want at most %d, cut on a rune with an ellipsis", len(r), maxProvenanceLabel)
	}
}

// The cache lives beside the document: a document without it (any older
// urunner's) loads as before, the cache survives a save and a load, a cache
// that does not decode is dropped without stopping the run, and a cache
// that would not fit is left out rather than failing the save.
func TestStoreKeepsProvenanceBesideTheDocument(t *testing.T) {
	ctx := t.Context()
	cms := &memConfigMaps{}
	st := NewStore(cms, "urunner", "state")
	snap, _ := st.Load(ctx)
	next := State{Refs: map[string]Ref{"r/a:1": {Digest: d1}}}
	if err := st.Save(ctx, snap, next, nil, t0); err != nil {
		t.Fatal(err)
	}
	cm, _ := cms.Get(ctx, "urunner", "state")
	if _, ok := cm.BinaryData[ProvenanceKey]; ok {
		t.Errorf("an empty cache is stored under %s", ProvenanceKey)
	}
	loaded, err := st.Load(ctx)
	if err != nil || loaded.State.Provenance != nil {
		t.Fatalf("Load of a document without the cache = %v, %v; want no provenance", loaded.State.Provenance, err)
	}

	next.Provenance = map[string]Provenance{d1: {Revision: "abc", Read: t0}}
	if err := st.Save(ctx, loaded, next, nil, t1); err != nil {
		t.Fatal(err)
	}
	again, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(next, again.State); diff != "" {
		t.Errorf("state with its cache after a save and a load (-want +got):\n%s", diff)
	}
	cm, _ = cms.Get(ctx, "urunner", "state")
	if doc, err := Decode(cm.BinaryData[DataKey]); err != nil || doc.Provenance != nil {
		t.Errorf("the document itself = %v, %v; want it readable by Decode, without the cache", doc.Provenance, err)
	}

	cm.BinaryData[ProvenanceKey] = []byte("not gzip")
	if _, err := cms.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	broken, err := st.Load(ctx)
	if err != nil || broken.State.Provenance != nil || !errors.Is(broken.ProvenanceErr, ErrCorrupt) {
		t.Errorf("Load with a broken cache = %v, %v, ProvenanceErr %v; want the state without the cache", broken.State.Provenance, err, broken.ProvenanceErr)
	}

	st.MaxBytes = dataSize(cm) - len(cm.BinaryData[ProvenanceKey]) + 10
	if err := st.Save(ctx, broken, next, nil, t1); err != nil {
		t.Fatalf("Save with a cache that does not fit = %v, want the cache left out", err)
	}
	cm, _ = cms.Get(ctx, "urunner", "state")
	if _, ok := cm.BinaryData[ProvenanceKey]; ok {
		t.Errorf("a cache over the size limit was stored")
	}
}

func TestMergeKeepsBothWritersProvenance(t *testing.T) {
	refs := map[string]Ref{"r/a:1": {Digest: d2, Base: d1}}
	prev := State{Refs: refs}
	ours := State{Refs: refs, Provenance: map[string]Provenance{d1: {Revision: "a", Read: t1}, d2: {Revision: "b", Read: t1}}}
	theirs := State{Refs: refs, Provenance: map[string]Provenance{d1: {Revision: "a", Read: t0}, d3: {Revision: "c", Read: t1}}}
	got := Merge(prev, ours, theirs, t1).Provenance
	want := map[string]Provenance{d1: {Revision: "a", Read: t1}, d2: {Revision: "b", Read: t1}} // d3: no reference names it
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged provenance (-want +got):\n%s", diff)
	}
}

func FuzzDecodeProvenance(f *testing.F) {
	f.Add([]byte(`{"` + d1 + `":{"revision":"3f2a1c4","source":"https://github.com/org/app","read":1764028800}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"` + d1 + `":{"read":-1}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		data, err := compress(raw)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := DecodeProvenance(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// Whatever decodes must survive a save and a load unchanged.
		again, err := EncodeProvenance(ps)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]Provenance(nil)
		if again != nil {
			if got, err = DecodeProvenance(again); err != nil {
				t.Fatalf("re-decode: %v", err)
			}
		}
		if diff := cmp.Diff(ps, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	})
}
