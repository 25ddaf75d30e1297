package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"
)

// MaxConfigMapBytes is the API server's limit on a ConfigMap's data
// (corev1.MaxSecretSize, which applies to ConfigMaps too).
const MaxConfigMapBytes = 1 << 20

// ReportKey is the ConfigMap data key of the last writing run's report,
// plain JSON so that `kubectl get` shows it.
const ReportKey = "last-run.json"

// ErrTooLarge marks a save refused because the document would not fit in
// the ConfigMap. The stored document is left as it was.
var ErrTooLarge = errors.New("state would exceed the ConfigMap size limit")

// Errors a ConfigMaps implementation returns for the API server's answers.
var (
	ErrNotFound      = errors.New("not found")
	ErrConflict      = errors.New("changed since read")
	ErrAlreadyExists = errors.New("already exists")
)

// ConfigMap is the part of a ConfigMap the Store reads and writes.
type ConfigMap struct {
	Namespace, Name, ResourceVersion string
	Labels, Annotations              map[string]string
	Data                             map[string]string
	BinaryData                       map[string][]byte
}

// ConfigMaps reads and writes ConfigMaps. Implementations return errors
// wrapping ErrNotFound, ErrConflict (a stale resourceVersion) and
// ErrAlreadyExists for those answers of the API server. Update and Create
// honour ResourceVersion as a precondition.
type ConfigMaps interface {
	Get(ctx context.Context, namespace, name string) (*ConfigMap, error)
	Create(ctx context.Context, cm *ConfigMap) (*ConfigMap, error)
	Update(ctx context.Context, cm *ConfigMap) (*ConfigMap, error)
}

// Store loads and saves the state in one ConfigMap.
type Store struct {
	client    ConfigMaps
	namespace string
	name      string
	// MaxBytes caps the ConfigMap's data; MaxConfigMapBytes by default.
	MaxBytes int
	// Retries bounds the writes tried on conflicts.
	Retries int
}

// NewStore returns a Store for the ConfigMap namespace/name.
func NewStore(client ConfigMaps, namespace, name string) *Store {
	return &Store{client: client, namespace: namespace, name: name, MaxBytes: MaxConfigMapBytes, Retries: 5}
}

// Snapshot is the state as read, with what is needed to write it back
// without overwriting someone else's update.
type Snapshot struct {
	State State
	// Exists is false when there was no ConfigMap: the first run.
	Exists bool
	// Migrated is the version of an older document read and migrated; 0
	// when the document was already current.
	Migrated int
	// ProvenanceErr is why the ProvenanceKey cache was dropped, if it was.
	ProvenanceErr error
	cm            *ConfigMap
}

// Name returns "namespace/name" of the ConfigMap, for messages.
func (s *Store) Name() string { return s.namespace + "/" + s.name }

// Namespace returns the ConfigMap's namespace.
func (s *Store) Namespace() string { return s.namespace }

// Load reads the state. A missing or empty ConfigMap is an empty state; a
// document that cannot be read is an error wrapping ErrCorrupt.
func (s *Store) Load(ctx context.Context) (*Snapshot, error) {
	cm, err := s.client.Get(ctx, s.namespace, s.name)
	if errors.Is(err, ErrNotFound) {
		return &Snapshot{State: State{Refs: map[string]Ref{}}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state ConfigMap %s: %w", s.Name(), err)
	}
	snap := &Snapshot{Exists: true, cm: cm, State: State{Refs: map[string]Ref{}}}
	data, ok := cm.BinaryData[DataKey]
	if !ok {
		// Created ahead, by an admin or the chart: the first run. Other
		// keys are kept when it is written.
		return snap, nil
	}
	st, version, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("state ConfigMap %s key %s: %w", s.Name(), DataKey, err)
	}
	if version < Version {
		snap.Migrated = version
	}
	if version < 3 {
		// Versions 1 and 2 have no listing time: the older urunner's last
		// run, which its report says started when, stands for it.
		carryListing(&st, reportStarted(cm.Data[ReportKey]))
	}
	// A cache that does not decode is dropped: the next save rewrites it.
	if pd, ok := cm.BinaryData[ProvenanceKey]; ok {
		st.Provenance, snap.ProvenanceErr = DecodeProvenance(pd)
		BoundProvenance(&st)
	}
	snap.State = st
	return snap, nil
}

// carryListing gives a migrated state the time of the older urunner's last
// run, which versions 1 and 2 did not store (their run report says when it
// started): as the state's listing time and as when each reference was
// last looked up, which is what the belief compares a workload's creation
// with. A workload created since was not there to be seen: it is first
// seen, not believed to run the old document's digest and restarted.
func carryListing(s *State, at time.Time) {
	if at.IsZero() {
		return
	}
	s.ListedAt = at
	for k, r := range s.Refs {
		if r.Checked.IsZero() {
			r.Checked = at
			s.Refs[k] = r
		}
	}
}

// reportStarted returns the start time of a stored run report, zero if
// there is none.
func reportStarted(report string) time.Time {
	var r struct {
		Started time.Time `json:"started"`
	}
	if report == "" || json.Unmarshal([]byte(report), &r) != nil {
		return time.Time{}
	}
	return r.Started.UTC()
}

// Save writes next, the state this run computed at time at from the
// snapshot's, with the run's report (nil: leave the stored report). The
// write carries the snapshot's resourceVersion; when another writer got
// there first, Save reads their version, merges (see Merge) and tries
// again. The ConfigMap's labels, annotations and other keys are kept. On
// success snap holds what was written.
func (s *Store) Save(ctx context.Context, snap *Snapshot, next State, report []byte, at time.Time) error {
	prev, ours := snap.State, next
	for attempt := 0; ; attempt++ {
		cm, size, err := s.object(snap, next, report)
		if err != nil {
			return err
		}
		if size > s.MaxBytes {
			return fmt.Errorf("save state ConfigMap %s: %w: %d bytes for %d references, limit %d", s.Name(), ErrTooLarge, size, len(next.Refs), s.MaxBytes)
		}
		var saved *ConfigMap
		if snap.Exists {
			saved, err = s.client.Update(ctx, cm)
		} else {
			saved, err = s.client.Create(ctx, cm)
		}
		if err == nil {
			*snap = Snapshot{State: next, Exists: true, cm: saved}
			return nil
		}
		if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrAlreadyExists) {
			return fmt.Errorf("write state ConfigMap %s: %w", s.Name(), err)
		}
		if attempt+1 >= s.Retries {
			return fmt.Errorf("write state ConfigMap %s: still changing after %d attempts: %w", s.Name(), s.Retries, err)
		}
		fresh, lerr := s.Load(ctx)
		if lerr != nil {
			return lerr
		}
		next = Merge(prev, ours, fresh.State, at)
		*snap = *fresh
	}
}

// object builds the ConfigMap to write and the size of its data.
func (s *Store) object(snap *Snapshot, next State, report []byte) (*ConfigMap, int, error) {
	data, err := Encode(next)
	if err != nil {
		return nil, 0, err
	}
	cm := &ConfigMap{Namespace: s.namespace, Name: s.name}
	if snap.cm != nil {
		cm.ResourceVersion = snap.cm.ResourceVersion
		cm.Labels = maps.Clone(snap.cm.Labels)
		cm.Annotations = maps.Clone(snap.cm.Annotations)
		cm.Data = maps.Clone(snap.cm.Data)
		cm.BinaryData = maps.Clone(snap.cm.BinaryData)
	}
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	for k, v := range map[string]string{
		"app.kubernetes.io/name":       "urunner",
		"app.kubernetes.io/component":  "state",
		"app.kubernetes.io/managed-by": "urunner",
	} {
		if _, set := cm.Labels[k]; !set {
			cm.Labels[k] = v
		}
	}
	if cm.BinaryData == nil {
		cm.BinaryData = map[string][]byte{}
	}
	cm.BinaryData[DataKey] = data
	delete(cm.BinaryData, ProvenanceKey)
	if report != nil {
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[ReportKey] = string(report)
	}
	size := dataSize(cm)
	pd, err := EncodeProvenance(next.Provenance)
	if err != nil {
		return nil, 0, err
	}
	// The cache goes in only when it fits: it must never be why a save
	// is refused.
	if pd != nil && size+len(ProvenanceKey)+len(pd) <= s.MaxBytes {
		cm.BinaryData[ProvenanceKey] = pd
		size += len(ProvenanceKey) + len(pd)
	}
	return cm, size, nil
}

// dataSize is what the API server counts against MaxConfigMapBytes.
func dataSize(cm *ConfigMap) int {
	size := 0
	for k, v := range cm.Data {
		size += len(k) + len(v)
	}
	for k, v := range cm.BinaryData {
		size += len(k) + len(v)
	}
	return size
}
