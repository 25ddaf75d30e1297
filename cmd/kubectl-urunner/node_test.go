package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// node is a Node of the test ground whose kubelet is this test: the test
// ground runs no kubelet, so nothing serves pods/log. The API server
// proxies pods/log to the node's kubelet endpoint (its InternalIP and
// daemonEndpoints.kubeletEndpoint.port), over HTTPS; node serves there the
// kubelet's documented log endpoint, GET
// /containerLogs/{namespace}/{pod}/{container}[?follow=true], from the
// output of the program the test runs as the container. The plugin's real
// path (pods/log through the API server) is what reads it.
type node struct {
	name string
	srv  *httptest.Server

	mu   sync.Mutex
	logs map[string]*podLog // "namespace/pod/container"
	// requests are the log requests served, "namespace/pod/container?query".
	requests []string
}

// podLog is a container's output: what was written, and whether the
// container has ended.
type podLog struct {
	mu      sync.Mutex
	buf     []byte
	done    bool
	changed chan struct{} // closed and replaced on each write
}

func newPodLog() *podLog { return &podLog{changed: make(chan struct{})} }

func (l *podLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// end marks the container exited: a follower's stream ends.
func (l *podLog) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	close(l.changed)
	l.changed = make(chan struct{})
}

// from returns what was written from offset on, whether the container has
// ended, and a channel closed at the next change.
func (l *podLog) from(off int) ([]byte, bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf[off:], l.done, l.changed
}

// startNode registers a Node named name whose kubelet endpoint is served
// by the test.
func startNode(t *testing.T, cs kubernetes.Interface, name string) *node {
	t.Helper()
	n := &node{name: name, logs: map[string]*podLog{}}
	n.srv = httptest.NewTLSServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.srv.Close)
	_, portStr, err := net.SplitHostPort(n.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	ctx := t.Context()
	created, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status = corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
		Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}},
	}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	return n
}

// log returns the output of a container, made on first use.
func (n *node) log(namespace, pod, container string) *podLog {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := namespace + "/" + pod + "/" + container
	if n.logs[k] == nil {
		n.logs[k] = newPodLog()
	}
	return n.logs[k]
}

func (n *node) served() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.requests...)
}

// serve answers the kubelet's containerLogs endpoint: the output so far,
// and with follow=true what comes next until the container ends.
func (n *node) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/containerLogs/"), "/")
	if !strings.HasPrefix(r.URL.Path, "/containerLogs/") || len(parts) != 3 || r.Method != http.MethodGet {
		http.Error(w, "not a kubelet endpoint this test serves: "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		return
	}
	n.mu.Lock()
	n.requests = append(n.requests, strings.Join(parts, "/")+"?"+r.URL.RawQuery)
	l := n.logs[strings.Join(parts, "/")]
	n.mu.Unlock()
	if l == nil {
		http.Error(w, fmt.Sprintf("container %q in pod %q is not running", parts[2], parts[1]), http.StatusBadRequest)
		return
	}
	follow := r.URL.Query().Get("follow") == "true"
	w.Header().Set("Content-Type", "text/plain")
	off := 0
	for {
		b, done, changed := l.from(off)
		if len(b) > 0 {
			if _, err := w.Write(b); err != nil {
				return
			}
			off += len(b)
			w.(http.Flusher).Flush()
		}
		if done || !follow {
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}

var _ io.Writer = (*podLog)(nil)
