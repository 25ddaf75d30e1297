// Package configmaps stores urunner's state in a Kubernetes ConfigMap: it
// adapts client-go to state.ConfigMaps, so that the state package itself
// needs no Kubernetes client.
package configmaps

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/kube/apiclient"
	"github.com/urunner/urunner/state"
)

// New returns state.ConfigMaps backed by the API server behind api.
func New(api *apiclient.Clients) state.ConfigMaps { return client{api} }

type client struct{ api *apiclient.Clients }

// fieldManager names urunner as the writer of the state.
const fieldManager = "urunner"

func (c client) Get(ctx context.Context, ns, name string) (*state.ConfigMap, error) {
	cm, err := c.api.ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, stateError(err)
	}
	return fromConfigMap(cm), nil
}

func (c client) Create(ctx context.Context, cm *state.ConfigMap) (*state.ConfigMap, error) {
	saved, err := c.api.ConfigMaps(cm.Namespace).Create(ctx, toConfigMap(cm), metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		return nil, stateError(err)
	}
	return fromConfigMap(saved), nil
}

func (c client) Update(ctx context.Context, cm *state.ConfigMap) (*state.ConfigMap, error) {
	saved, err := c.api.ConfigMaps(cm.Namespace).Update(ctx, toConfigMap(cm), metav1.UpdateOptions{FieldManager: fieldManager})
	if err != nil {
		return nil, stateError(err)
	}
	return fromConfigMap(saved), nil
}

// stateError marks the API server's answers the state package acts on.
func stateError(err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: %w", state.ErrNotFound, err)
	case apierrors.IsConflict(err):
		return fmt.Errorf("%w: %w", state.ErrConflict, err)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%w: %w", state.ErrAlreadyExists, err)
	}
	return err
}

func fromConfigMap(cm *corev1.ConfigMap) *state.ConfigMap {
	return &state.ConfigMap{
		Namespace: cm.Namespace, Name: cm.Name, ResourceVersion: cm.ResourceVersion,
		Labels: cm.Labels, Annotations: cm.Annotations, Data: cm.Data, BinaryData: cm.BinaryData,
	}
}

func toConfigMap(cm *state.ConfigMap) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: cm.Namespace, Name: cm.Name, ResourceVersion: cm.ResourceVersion,
			Labels: cm.Labels, Annotations: cm.Annotations,
		},
		Data: cm.Data, BinaryData: cm.BinaryData,
	}
}
