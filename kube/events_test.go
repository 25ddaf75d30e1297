package kube_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/kube"
)

// An Event is recorded on the workload, as `kubectl describe` shows it;
// the same workload, reason and key make one Event however often it is
// sent, another key or reason another Event; a long workload name still
// makes a valid Event name.
func TestEvent(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	c := newClient(t, nil)
	deployment(t, ns, "web", 0)
	web := get(t, c, "Deployment", ns, "web")
	long := kube.Workload{Kind: "StatefulSet", Namespace: ns, Name: strings.Repeat("a", 199) + "-" + strings.Repeat("b", 50)}
	for _, e := range []struct {
		w                kube.Workload
		typ, reason, key string
		message          string
	}{
		{web, corev1.EventTypeWarning, kube.ReasonLookupFailed, "team/app:1", "lookup failed"},
		{web, corev1.EventTypeWarning, kube.ReasonLookupFailed, "team/app:1", "lookup failed again"},
		{web, corev1.EventTypeWarning, kube.ReasonLookupFailed, "team/app:2", "another tag"},
		{web, corev1.EventTypeNormal, kube.ReasonDigestChanged, "team/app:1", "restarted"},
		{long, corev1.EventTypeNormal, kube.ReasonDigestChanged, "team/db:1", "restarted"},
	} {
		if err := c.Event(t.Context(), e.w, e.typ, e.reason, e.message, e.key); err != nil {
			t.Fatalf("%s %s: %v", e.reason, e.key, err)
		}
	}
	events, err := admin(t).CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		Kind, APIVersion, Name, UID, Type, Reason, Message, Source, Controller string
		Count                                                                  int32
	}
	var got []seen
	for _, e := range events.Items {
		if e.Source.Component != "urunner" {
			continue // the controllers' own
		}
		got = append(got, seen{e.InvolvedObject.Kind, e.InvolvedObject.APIVersion, e.InvolvedObject.Name, string(e.InvolvedObject.UID), e.Type, e.Reason, e.Message, e.Source.Component, e.ReportingController, e.Count})
	}
	want := []seen{
		{"Deployment", "apps/v1", "web", string(web.UID), "Warning", kube.ReasonLookupFailed, "lookup failed", "urunner", "urunner.io/urunner", 1},
		{"Deployment", "apps/v1", "web", string(web.UID), "Warning", kube.ReasonLookupFailed, "another tag", "urunner", "urunner.io/urunner", 1},
		{"Deployment", "apps/v1", "web", string(web.UID), "Normal", kube.ReasonDigestChanged, "restarted", "urunner", "urunner.io/urunner", 1},
		{"StatefulSet", "apps/v1", long.Name, "", "Normal", kube.ReasonDigestChanged, "restarted", "urunner", "urunner.io/urunner", 1},
	}
	less := func(a, b seen) bool { return a.Kind+a.Reason+a.Message < b.Kind+b.Reason+b.Message }
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(less)); diff != "" {
		t.Errorf("Events (-want +got):\n%s", diff)
	}
}
