package state

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/util/retry"
)

// MaxConfigMapBytes is the API server's limit on a ConfigMap's data
// (corev1.MaxSecretSize applies to ConfigMaps too).
const MaxConfigMapBytes = corev1.MaxSecretSize

// ReportKey is the ConfigMap data key of the last writing run's report,
// plain JSON so that `kubectl get` shows it.
const ReportKey = "last-run.json"

// ErrTooLarge marks a save refused because the document would not fit in
// the ConfigMap. The stored document is left as it was.
var ErrTooLarge = errors.New("state would exceed the ConfigMap size limit")

// Store loads and saves the state in one ConfigMap.
type Store struct {
	client    corev1client.ConfigMapsGetter
	namespace string
	name      string
	// MaxBytes caps the encoded document; MaxConfigMapBytes by default.
	MaxBytes int
}

// NewStore returns a Store for the ConfigMap namespace/name.
func NewStore(client corev1client.ConfigMapsGetter, namespace, name string) *Store {
	return &Store{client: client, namespace: namespace, name: name, MaxBytes: MaxConfigMapBytes}
}

// Snapshot is the state as read, with what is needed to write it back
// without overwriting someone else's update.
type Snapshot struct {
	State State
	// Exists is false when there was no ConfigMap: the first run.
	Exists          bool
	resourceVersion string
}

// Name returns "namespace/name" of the ConfigMap, for messages.
func (s *Store) Name() string { return s.namespace + "/" + s.name }

// Load reads the state. A missing ConfigMap is an empty state; a document
// that cannot be read is an error wrapping ErrCorrupt.
func (s *Store) Load(ctx context.Context) (*Snapshot, error) {
	cm, err := s.client.ConfigMaps(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &Snapshot{State: State{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state ConfigMap %s: %w", s.Name(), err)
	}
	st, err := s.decode(cm)
	if err != nil {
		return nil, err
	}
	return &Snapshot{State: st, Exists: true, resourceVersion: cm.ResourceVersion}, nil
}

func (s *Store) decode(cm *corev1.ConfigMap) (State, error) {
	data, ok := cm.BinaryData[DataKey]
	if !ok {
		if len(cm.Data) == 0 && len(cm.BinaryData) == 0 {
			// An empty ConfigMap, e.g. created ahead by an admin or a chart.
			return State{}, nil
		}
		return nil, fmt.Errorf("state ConfigMap %s: %w: no binaryData key %q", s.Name(), ErrCorrupt, DataKey)
	}
	st, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("state ConfigMap %s key %s: %w", s.Name(), DataKey, err)
	}
	return st, nil
}

// Save applies changes to the snapshot's state and writes it. The write
// carries the snapshot's resourceVersion; when another writer got there
// first, Save reads their version and replays only these changes on it, so
// no entry of either writer is lost. On success snap holds what was written.
func (s *Store) Save(ctx context.Context, snap *Snapshot, changes *Changes) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		next := changes.Apply(snap.State)
		data, err := Encode(next)
		if err != nil {
			return err
		}
		if size := len(DataKey) + len(data) + len(ReportKey) + len(changes.report); size > s.MaxBytes {
			return fmt.Errorf("save state ConfigMap %s: %w: %d bytes for %d workloads, limit %d", s.Name(), ErrTooLarge, size, len(next), s.MaxBytes)
		}
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name:            s.name,
				Namespace:       s.namespace,
				ResourceVersion: snap.resourceVersion,
				Labels: map[string]string{
					"app.kubernetes.io/name":       "urunner",
					"app.kubernetes.io/component":  "state",
					"app.kubernetes.io/managed-by": "urunner",
				},
			},
			BinaryData: map[string][]byte{DataKey: data},
		}
		if changes.report != nil {
			cm.Data = map[string]string{ReportKey: string(changes.report)}
		}
		var saved *corev1.ConfigMap
		if snap.Exists {
			saved, err = s.client.ConfigMaps(s.namespace).Update(ctx, cm, metav1.UpdateOptions{})
		} else {
			saved, err = s.client.ConfigMaps(s.namespace).Create(ctx, cm, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				// Created by a concurrent run: treat it as a conflict.
				err = apierrors.NewConflict(corev1.Resource("configmaps"), s.name, err)
			}
		}
		if apierrors.IsConflict(err) {
			fresh, lerr := s.Load(ctx)
			if lerr != nil {
				return lerr
			}
			*snap = *fresh
			return err
		}
		if err != nil {
			return fmt.Errorf("write state ConfigMap %s: %w", s.Name(), err)
		}
		*snap = Snapshot{State: next, Exists: true, resourceVersion: saved.ResourceVersion}
		return nil
	})
}
