package kube_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/urunner/urunner/kube"
)

// pullSecret creates a kubernetes.io/dockerconfigjson Secret for server.
func pullSecret(t *testing.T, ns, name, server, auth string) {
	t.Helper()
	doc := `{"auths":{"` + server + `":{"auth":"` + auth + `"}}}`
	if _, err := admin(t).CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(doc)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func serviceAccount(t *testing.T, ns, name string, secrets ...string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, s := range secrets {
		sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	_, err := admin(t).CoreV1().ServiceAccounts(ns).Create(t.Context(), sa, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) { // "default", which its controller made
		b, _ := json.Marshal(map[string]any{"imagePullSecrets": sa.ImagePullSecrets})
		_, err = admin(t).CoreV1().ServiceAccounts(ns).Patch(t.Context(), name, types.MergePatchType, b, metav1.PatchOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// A workload's pull secrets are its template's, then its ServiceAccount's
// ("default" when it names none), each once; a missing Secret or
// ServiceAccount is skipped, as the kubelet does. One PullSecrets reads
// each Secret and ServiceAccount once, however many workloads name it.
func TestPullSecrets(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	pullSecret(t, ns, "regcred", "r1.example.com", basic("one", "p1"))
	pullSecret(t, ns, "mirror", "r2.example.com", basic("two", "p2"))
	pullSecret(t, ns, "robot", "r3.example.com", basic("three", "p3"))
	serviceAccount(t, ns, "builder", "robot", "regcred", "gone")
	serviceAccount(t, ns, "default", "robot")
	cfg, gets := counting(func(r *http.Request) bool {
		return r.Method == http.MethodGet && (strings.Contains(r.URL.Path, "/secrets/") || strings.Contains(r.URL.Path, "/serviceaccounts/"))
	})
	p := newClient(t, cfg).NewPullSecrets()
	auth := func(server, user, pass string) kube.RegistryAuth {
		return kube.RegistryAuth{Server: server, Username: user, Password: pass, Source: ns + "/" + map[string]string{"one": "regcred", "two": "mirror", "three": "robot"}[user]}
	}
	for _, tc := range []struct {
		name string
		w    kube.Workload
		want []kube.RegistryAuth
	}{
		{"template's first, then its ServiceAccount's, each once",
			kube.Workload{Namespace: ns, Name: "web", PullSecrets: []string{"regcred", "missing", "mirror"}, ServiceAccount: "builder"},
			[]kube.RegistryAuth{auth("r1.example.com", "one", "p1"), auth("r2.example.com", "two", "p2"), auth("r3.example.com", "three", "p3")}},
		{"no ServiceAccount named: default's",
			kube.Workload{Namespace: ns, Name: "db"},
			[]kube.RegistryAuth{auth("r3.example.com", "three", "p3")}},
		{"a missing ServiceAccount has none",
			kube.Workload{Namespace: ns, Name: "agent", PullSecrets: []string{"mirror"}, ServiceAccount: "nobody"},
			[]kube.RegistryAuth{auth("r2.example.com", "two", "p2")}},
		{"read again, from what was read",
			kube.Workload{Namespace: ns, Name: "web2", PullSecrets: []string{"regcred", "missing", "mirror"}, ServiceAccount: "builder"},
			[]kube.RegistryAuth{auth("r1.example.com", "one", "p1"), auth("r2.example.com", "two", "p2"), auth("r3.example.com", "three", "p3")}},
	} {
		got, err := p.For(t.Context(), tc.w)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	// Secrets regcred, missing, mirror, robot, gone; ServiceAccounts
	// builder, default, nobody.
	if n := gets.Load(); n != 8 {
		t.Errorf("%d GETs of Secrets and ServiceAccounts, want 8: each once", n)
	}
}

// A pull secret that cannot be read or parsed is an error that names it,
// never its content.
func TestPullSecretsErrors(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	pullSecret(t, ns, "broken", "r1.example.com", "!!s3cret")
	pullSecret(t, ns, "regcred", "r1.example.com", basic("one", "p1"))
	_, err := newClient(t, nil).NewPullSecrets().For(t.Context(), kube.Workload{Namespace: ns, Name: "web", PullSecrets: []string{"broken"}})
	if err == nil || !strings.Contains(err.Error(), "pull secret "+ns+"/broken") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("err = %v, want one naming %s/broken, without its content", err, ns)
	}

	// Allowed to read ServiceAccounts, not Secrets.
	cs := admin(t)
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "accounts"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "accounts"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "urunner"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "accounts"},
	}
	if _, err := cs.RbacV1().Roles(ns).Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := cluster.ServiceAccountConfig(t.Context(), ns, "urunner")
	if err != nil {
		t.Fatal(err)
	}
	_, err = newClient(t, cfg).NewPullSecrets().For(t.Context(), kube.Workload{Namespace: ns, Name: "web", PullSecrets: []string{"regcred"}, ServiceAccount: "urunner"})
	if err == nil || !strings.Contains(err.Error(), "read pull secret "+ns+"/regcred") {
		t.Errorf("err = %v, want a forbidden read naming %s/regcred", err, ns)
	}
}
