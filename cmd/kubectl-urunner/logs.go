package main

import (
	"context"
	"io"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// logSource streams the log of a pod's container, following it until the
// container ends.
type logSource interface {
	Stream(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error)
}

// apiLogs reads logs as kubectl logs -f does: pods/log through the API
// server, which proxies to the node's kubelet.
type apiLogs struct{ cs kubernetes.Interface }

func (a apiLogs) Stream(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error) {
	return a.cs.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: true}).Stream(ctx)
}
