package kube

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParsePullSecret(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	meta := metav1.ObjectMeta{Namespace: "ns", Name: "regcred"}
	for _, tc := range []struct {
		name    string
		secret  *corev1.Secret
		want    []RegistryAuth
		wantErr string
	}{
		{
			name: "dockerconfigjson with auth and with user/password",
			secret: &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{
				corev1.DockerConfigJsonKey: []byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("me:tok") + `"},"r.example.com":{"username":"u","password":"p"}}}`),
			}},
			want: []RegistryAuth{
				{Server: "https://index.docker.io/v1/", Username: "me", Password: "tok", Source: "ns/regcred"},
				{Server: "r.example.com", Username: "u", Password: "p", Source: "ns/regcred"},
			},
		},
		{
			name: "legacy dockercfg",
			secret: &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeDockercfg, Data: map[string][]byte{
				corev1.DockerConfigKey: []byte(`{"r.example.com":{"auth":"` + b64("u:p:with:colons") + `"}}`),
			}},
			want: []RegistryAuth{{Server: "r.example.com", Username: "u", Password: "p:with:colons", Source: "ns/regcred"}},
		},
		{
			name:   "an Opaque secret holds no registry credentials",
			secret: &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"x": []byte("y")}},
		},
		{
			name: "broken auth is an error that does not show it",
			secret: &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{
				corev1.DockerConfigJsonKey: []byte(`{"auths":{"r.example.com":{"auth":"` + b64("no-colon-s3cret") + `"}}}`),
			}},
			wantErr: "auth of r.example.com is not user:password",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePullSecret(tc.secret)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("err = %v, want %q without the secret", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
