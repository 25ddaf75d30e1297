package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Event reasons urunner records on workloads.
const (
	ReasonDigestChanged = "ImageDigestChanged"
	ReasonLookupFailed  = "ImageLookupFailed"
	ReasonPullPolicy    = "ImagePullPolicyMayKeepOldImage"
	ReasonRestartFailed = "RestartFailed"
	ReasonRetracted     = "ImageDigestRetracted"
	ReasonSignature     = "ImageSignatureRefused"
	// ReasonNotDelivered: the pods of a restart run another digest than
	// the one it was for.
	ReasonNotDelivered     = "ImageNotDelivered"
	eventSourceComponent   = "urunner"
	eventReportingInstance = "urunner"
)

// Event records a core/v1 Event on w, which `kubectl describe` shows.
//
// The Event's name derives from w, reason and key: the same key makes the
// same name, so a failure that repeats every run creates one Event, not
// one per run (Create answers AlreadyExists and nothing more is sent).
// The API server expires Events after its --event-ttl (1h by default).
func (c *Client) Event(ctx context.Context, w Workload, eventType, reason, message, key string) error {
	sum := sha256.Sum256([]byte(w.Kind + "\x00" + reason + "\x00" + key))
	name := w.Name
	if len(name) > 200 {
		name = name[:200]
	}
	name = strings.TrimRight(name, ".-") + ".urunner-" + hex.EncodeToString(sum[:])[:16]
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.Namespace},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: APIVersion(w.Kind), Kind: w.Kind, Namespace: w.Namespace, Name: w.Name,
			UID: w.UID, ResourceVersion: w.ResourceVersion,
		},
		Type:                eventType,
		Reason:              reason,
		Message:             message,
		Source:              corev1.EventSource{Component: eventSourceComponent},
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		ReportingController: "urunner.io/urunner",
		ReportingInstance:   eventReportingInstance,
	}
	_, err := c.api.Events(w.Namespace).Create(ctx, ev, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
