package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ClientConfig reads the kubeconfig's current context and its namespace,
// and its errors name URUNNER_CONF_KUBE_AUTH and the mode at fault.
func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := func(ns string) string {
		return `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://kube.example.com:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: "` + ns + `"}}]
current-context: x
`
	}
	for i, tc := range []struct {
		name, auth, file string // file "" means none there
		wantHost, wantNS string
		wantErr          string
	}{
		{"kubeconfig's context namespace", "kubeconfig", kubeconfig("shop"), "https://kube.example.com:6443", "shop", ""},
		{"context without namespace: default", "kubeconfig", kubeconfig(""), "https://kube.example.com:6443", "default", ""},
		{"outside a pod, unset is kubeconfig", "", kubeconfig("shop"), "https://kube.example.com:6443", "shop", ""},
		{"no kubeconfig", "kubeconfig", "", "", "", "URUNNER_CONF_KUBE_AUTH=kubeconfig: "},
		{"incluster outside a pod", "incluster", kubeconfig("shop"), "", "", "URUNNER_CONF_KUBE_AUTH=incluster: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// KUBECONFIG is a list: no ':' in the path.
			path := filepath.Join(dir, fmt.Sprintf("config-%d", i))
			if tc.file != "" {
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("KUBECONFIG", path)
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			t.Setenv("KUBERNETES_SERVICE_PORT", "")
			rc, ns, err := ClientConfig(tc.auth)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one starting %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rc.Host != tc.wantHost || ns != tc.wantNS {
				t.Errorf("host %q, namespace %q; want %q, %q", rc.Host, ns, tc.wantHost, tc.wantNS)
			}
		})
	}
}
