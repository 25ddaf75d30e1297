package kube

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RegistryAuth is one entry of a pull secret: the server as written in the
// secret ("https://index.docker.io/v1/", "registry.example.com:5000") and
// its credentials.
type RegistryAuth struct {
	Server, Username, Password string
	// Source names the secret, for messages; never the credentials.
	Source string
}

// PullSecrets reads the image pull secrets a workload's pods would use:
// those of its pod template and those of its ServiceAccount. Each Secret
// and ServiceAccount is read once per PullSecrets value, however many
// workloads share it. It needs get on secrets and serviceaccounts.
type PullSecrets struct {
	c        *Client
	secrets  map[string][]RegistryAuth // ns/name → entries
	accounts map[string][]string       // ns/name → secret names
}

// NewPullSecrets returns a reader with an empty cache, for one run.
func (c *Client) NewPullSecrets() *PullSecrets {
	return &PullSecrets{c: c, secrets: map[string][]RegistryAuth{}, accounts: map[string][]string{}}
}

// For returns the registry credentials of w's pull secrets, template's
// first. A missing Secret or ServiceAccount is skipped, as the kubelet
// does; other API errors are returned.
func (p *PullSecrets) For(ctx context.Context, w Workload) ([]RegistryAuth, error) {
	names := append([]string(nil), w.PullSecrets...)
	sa := w.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	more, err := p.account(ctx, w.Namespace, sa)
	if err != nil {
		return nil, err
	}
	names = append(names, more...)
	var out []RegistryAuth
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		auths, err := p.secret(ctx, w.Namespace, n)
		if err != nil {
			return nil, err
		}
		out = append(out, auths...)
	}
	return out, nil
}

func (p *PullSecrets) account(ctx context.Context, ns, name string) ([]string, error) {
	key := ns + "/" + name
	if names, ok := p.accounts[key]; ok {
		return names, nil
	}
	sa, err := p.c.api.ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
	var names []string
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("read ServiceAccount %s for its pull secrets: %w", key, err)
	default:
		for _, r := range sa.ImagePullSecrets {
			names = append(names, r.Name)
		}
	}
	p.accounts[key] = names
	return names, nil
}

func (p *PullSecrets) secret(ctx context.Context, ns, name string) ([]RegistryAuth, error) {
	key := ns + "/" + name
	if auths, ok := p.secrets[key]; ok {
		return auths, nil
	}
	s, err := p.c.api.Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	var auths []RegistryAuth
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("read pull secret %s: %w", key, err)
	default:
		auths, err = ParsePullSecret(s)
		if err != nil {
			return nil, fmt.Errorf("pull secret %s: %w", key, err)
		}
	}
	p.secrets[key] = auths
	return auths, nil
}

// dockerConfig is the .dockerconfigjson document ("auths" wrapper) and the
// legacy .dockercfg one (the map alone).
type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

type dockerAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Auth     string `json:"auth"`
}

// ParsePullSecret reads a kubernetes.io/dockerconfigjson or
// kubernetes.io/dockercfg Secret. Other types hold no registry
// credentials and yield nothing. Errors never contain the credentials.
func ParsePullSecret(s *corev1.Secret) ([]RegistryAuth, error) {
	var entries map[string]dockerAuth
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		var dc dockerConfig
		if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &dc); err != nil {
			return nil, fmt.Errorf("%s is not JSON", corev1.DockerConfigJsonKey)
		}
		entries = dc.Auths
	case corev1.SecretTypeDockercfg:
		if err := json.Unmarshal(s.Data[corev1.DockerConfigKey], &entries); err != nil {
			return nil, fmt.Errorf("%s is not JSON", corev1.DockerConfigKey)
		}
	default:
		return nil, nil
	}
	var out []RegistryAuth
	for server, a := range entries {
		user, pass := a.Username, a.Password
		if a.Auth != "" {
			b, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("auth of %s is not base64", server)
			}
			u, pw, ok := strings.Cut(string(b), ":")
			if !ok {
				return nil, fmt.Errorf("auth of %s is not user:password", server)
			}
			user, pass = u, pw
		}
		if user == "" && pass == "" {
			continue
		}
		out = append(out, RegistryAuth{Server: server, Username: user, Password: pass, Source: s.Namespace + "/" + s.Name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Server < out[j].Server })
	return out, nil
}
