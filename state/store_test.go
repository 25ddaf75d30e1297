package state

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// memConfigMaps keeps ConfigMaps in memory with the API server's
// resourceVersion preconditions, to test Save's merge loop without a
// cluster; the e2e tests prove the same on the real API server.
type memConfigMaps struct {
	mu     sync.Mutex
	rv     int
	items  map[string]*ConfigMap
	before func() // runs before each write, e.g. a concurrent writer
}

func (m *memConfigMaps) Get(_ context.Context, ns, name string) (*ConfigMap, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cm, ok := m.items[ns+"/"+name]
	if !ok {
		return nil, fmt.Errorf("configmap %s: %w", name, ErrNotFound)
	}
	return copyCM(cm), nil
}

func (m *memConfigMaps) Create(ctx context.Context, cm *ConfigMap) (*ConfigMap, error) {
	m.hook()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.items[cm.Namespace+"/"+cm.Name]; ok {
		return nil, ErrAlreadyExists
	}
	return m.put(cm), nil
}

func (m *memConfigMaps) Update(ctx context.Context, cm *ConfigMap) (*ConfigMap, error) {
	m.hook()
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.items[cm.Namespace+"/"+cm.Name]
	if !ok {
		return nil, ErrNotFound
	}
	if cm.ResourceVersion != cur.ResourceVersion {
		return nil, ErrConflict
	}
	return m.put(cm), nil
}

func (m *memConfigMaps) hook() {
	if f := m.before; f != nil {
		m.before = nil
		f()
	}
}

func (m *memConfigMaps) put(cm *ConfigMap) *ConfigMap {
	m.rv++
	c := copyCM(cm)
	c.ResourceVersion = strconv.Itoa(m.rv)
	if m.items == nil {
		m.items = map[string]*ConfigMap{}
	}
	m.items[cm.Namespace+"/"+cm.Name] = c
	return copyCM(c)
}

func copyCM(cm *ConfigMap) *ConfigMap {
	c := *cm
	c.Labels, c.Annotations, c.Data, c.BinaryData = maps.Clone(cm.Labels), maps.Clone(cm.Annotations), maps.Clone(cm.Data), maps.Clone(cm.BinaryData)
	return &c
}

func TestSaveMergesAConcurrentWriterPerReference(t *testing.T) {
	ctx := t.Context()
	cms := &memConfigMaps{}
	st := NewStore(cms, "urunner", "state")
	first, _ := st.Load(ctx)
	if err := st.Save(ctx, first, State{Refs: map[string]Ref{"r/a:1": {Digest: d1, Checked: t0}}}, nil, t0); err != nil {
		t.Fatal(err)
	}
	ours, _ := st.Load(ctx)
	// Another run writes between our load and our save.
	cms.before = func() {
		other, _ := st.Load(ctx)
		next := other.State.Clone()
		next.Refs["r/b:1"] = Ref{Digest: d3, Checked: t1}
		if err := st.Save(ctx, other, next, []byte(`{"by":"other"}`), t1); err != nil {
			t.Error(err)
		}
	}
	next := ours.State.Clone()
	next.Refs["r/a:1"] = Ref{Digest: d2, Checked: t1}
	if err := st.Save(ctx, ours, next, []byte(`{"by":"us"}`), t1); err != nil {
		t.Fatal(err)
	}
	got, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Ref{"r/a:1": {Digest: d2, Checked: t1}, "r/b:1": {Digest: d3, Checked: t1}}
	if diff := cmp.Diff(want, got.State.Refs); diff != "" {
		t.Errorf("stored references (-want +got):\n%s", diff)
	}
}

func TestSaveKeepsTheConfigMapsLabelsAnnotationsAndOtherKeys(t *testing.T) {
	ctx := t.Context()
	cms := &memConfigMaps{}
	_, _ = cms.Create(ctx, &ConfigMap{Namespace: "urunner", Name: "state",
		Labels:      map[string]string{"app.kubernetes.io/managed-by": "Helm", "team": "platform"},
		Annotations: map[string]string{"helm.sh/resource-policy": "keep"},
		Data:        map[string]string{"README": "urunner's memory"},
	})
	st := NewStore(cms, "urunner", "state")
	snap, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, snap, State{Refs: map[string]Ref{"r/a:1": {Digest: d1}}}, []byte("{}"), t0); err != nil {
		t.Fatal(err)
	}
	cm, _ := cms.Get(ctx, "urunner", "state")
	wantLabels := map[string]string{"app.kubernetes.io/managed-by": "Helm", "team": "platform", "app.kubernetes.io/name": "urunner", "app.kubernetes.io/component": "state"}
	if diff := cmp.Diff(wantLabels, cm.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"helm.sh/resource-policy": "keep"}, cm.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	if cm.Data["README"] != "urunner's memory" || cm.Data[ReportKey] != "{}" {
		t.Errorf("data = %v, want the README kept beside the report", cm.Data)
	}
}

func TestSaveRefusesAStateOverTheLimitAndKeepsTheStoredOne(t *testing.T) {
	ctx := t.Context()
	cms := &memConfigMaps{}
	st := NewStore(cms, "urunner", "state")
	snap, _ := st.Load(ctx)
	if err := st.Save(ctx, snap, State{Refs: map[string]Ref{"r/a:1": {Digest: d1}}}, nil, t0); err != nil {
		t.Fatal(err)
	}
	st.MaxBytes = 100
	big := State{Refs: map[string]Ref{}}
	for i := range 50 {
		big.Refs[fmt.Sprintf("r/a%d:1", i)] = Ref{Digest: d2}
	}
	err := st.Save(ctx, snap, big, nil, t1)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Save = %v, want ErrTooLarge", err)
	}
	st.MaxBytes = MaxConfigMapBytes
	got, _ := st.Load(ctx)
	if diff := cmp.Diff(map[string]Ref{"r/a:1": {Digest: d1}}, got.State.Refs); diff != "" {
		t.Errorf("stored state changed (-want +got):\n%s", diff)
	}
}

func TestLoadMigratesAnOlderDocumentWithTheLastRunsStart(t *testing.T) {
	ctx := t.Context()
	cms := &memConfigMaps{}
	raw := `{"version":2,"images":["r/a:1@` + d1 + `"],"workloads":{"n/Deployment/x":{"c":0}}}`
	var data strings.Builder
	zw := gzipWriter(&data)
	_, _ = zw.Write([]byte(raw))
	_ = zw.Close()
	_, _ = cms.Create(ctx, &ConfigMap{Namespace: "urunner", Name: "state",
		BinaryData: map[string][]byte{DataKey: []byte(data.String())},
		Data:       map[string]string{ReportKey: `{"version":1,"started":"2026-11-24T22:00:00Z"}`},
	})
	snap, err := NewStore(cms, "urunner", "state").Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Migrated != 2 || !snap.State.ListedAt.Equal(t0) {
		t.Errorf("Migrated = %d, ListedAt = %v; want 2 and %v", snap.Migrated, snap.State.ListedAt, t0)
	}
	// The belief compares a workload's creation with when its reference
	// was last looked up: the old run's start.
	if got := snap.State.Refs["r/a:1"]; !got.Checked.Equal(t0) || got.Digest != d1 {
		t.Errorf("migrated r/a:1 = %+v, want digest %s checked at %v", got, d1, t0)
	}
}

func gzipWriter(w *strings.Builder) *gzip.Writer { return gzip.NewWriter(w) }

// A version 3 document has its own listing time: migrating its quarantines
// must not replace it with the report's start.
func TestLoadMigratesAVersion3DocumentKeepingItsListingTime(t *testing.T) {
	ctx := t.Context()
	cms := &memConfigMaps{}
	raw := `{"version":3,"listedAt":` + strconv.FormatInt(t1.Unix(), 10) + `,"refs":{"r/a:1":{"digest":"` + d1 + `","checked":1,"quarantine":{"` + d1 + `":"rollout failed"}}}}`
	var data strings.Builder
	zw := gzipWriter(&data)
	_, _ = zw.Write([]byte(raw))
	_ = zw.Close()
	_, _ = cms.Create(ctx, &ConfigMap{Namespace: "urunner", Name: "state",
		BinaryData: map[string][]byte{DataKey: []byte(data.String())},
		Data:       map[string]string{ReportKey: `{"version":1,"started":"2026-11-24T22:00:00Z"}`},
	})
	snap, err := NewStore(cms, "urunner", "state").Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Migrated != 3 || !snap.State.ListedAt.Equal(t1) {
		t.Errorf("Migrated = %d, ListedAt = %v; want 3 and %v", snap.Migrated, snap.State.ListedAt, t1)
	}
	if q := snap.State.Quarantines[d1]; q.Why != "rollout failed" || !slices.Equal(q.Refs, []string{"r/a:1"}) {
		t.Errorf("quarantine of %s = %+v, want migrated from r/a:1", d1, q)
	}
}
