package kube

import (
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ClientConfig returns the API client configuration for auth
// (URUNNER_CONF_KUBE_AUTH: "incluster", "kubeconfig", or "" for incluster
// in a pod, else kubeconfig) and the namespace to default to: in a cluster,
// the pod's ServiceAccount and namespace; else the kubeconfig ($KUBECONFIG
// or ~/.kube/config) and its context's namespace; "default" when neither
// names one. Its errors name the variable and the mode.
func ClientConfig(auth string) (*rest.Config, string, error) {
	if auth == "" {
		auth = "kubeconfig"
		if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
			auth = "incluster"
		}
	}
	if auth == "incluster" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, "", fmt.Errorf("URUNNER_CONF_KUBE_AUTH=incluster: %w", err)
		}
		ns := "default"
		if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
			ns = strings.TrimSpace(string(b))
		}
		return rc, ns, nil
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("URUNNER_CONF_KUBE_AUTH=kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	return rc, ns, nil
}
