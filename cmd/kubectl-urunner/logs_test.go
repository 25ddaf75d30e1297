package main

import (
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The real log path, pods/log through the API server to the node's
// kubelet endpoint, reads a container's log to its end. The kubelet is
// this test's (see node), speaking the kubelet's log endpoint.
func TestLogsComeThroughTheAPIServerFromTheNode(t *testing.T) {
	ctx := t.Context()
	cs := clientset(t)
	n := startNode(t, cs, "logs-node")
	const ns = "default"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "logs", Namespace: ns},
		Spec:       corev1.PodSpec{NodeName: n.name, Containers: []corev1.Container{{Name: "urunner", Image: "example.com/urunner:dev"}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	l := n.log(ns, "logs", "urunner")
	_, _ = l.Write([]byte("line one\n"))
	go func() {
		_, _ = l.Write([]byte("line two\n"))
		l.end()
	}()
	rc, err := apiLogs{cs}.Stream(ctx, ns, "logs", "urunner")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("line one\nline two\n", string(got)); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{ns + "/logs/urunner?follow=true"}, n.served()); diff != "" {
		t.Errorf("kubelet requests (-want +got):\n%s", diff)
	}
}
