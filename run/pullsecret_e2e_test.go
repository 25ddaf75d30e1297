package run

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/e2e/testground"
)

// With URUNNER_CONF_PULL_SECRET_AUTH, a registry configured without
// credentials is reached with the workload's own pull secret, from its pod
// template or its ServiceAccount, read from the real API server.
func TestPullSecretsAuthenticateLookups(t *testing.T) {
	t.Parallel()
	for _, via := range []string{"pod template", "service account"} {
		t.Run(via, func(t *testing.T) {
			t.Parallel()
			g := newGround(t, testground.RegistryOptions{Logins: map[string]string{"puller": "s3cret-pull"}})
			g.setenv("URUNNER_CONF_PULL_SECRET_AUTH", "true")
			g.push("team/app:latest", "v1")
			ns := g.namespace(true)
			auth := base64.StdEncoding.EncodeToString([]byte("puller:s3cret-pull"))
			secret := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "regcred", Namespace: ns},
				Type:       corev1.SecretTypeDockerConfigJson,
				Data: map[string][]byte{corev1.DockerConfigJsonKey: fmt.Appendf(nil,
					`{"auths":{"http://%s":{"auth":%q}}}`, g.reg.Host, auth)},
			}
			if _, err := g.cs.CoreV1().Secrets(ns).Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			opt := func(d *appsv1.Deployment) {
				d.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
			}
			if via == "service account" {
				sa := &corev1.ServiceAccount{
					ObjectMeta:       metav1.ObjectMeta{Name: "builder", Namespace: ns},
					ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
				}
				if _, err := g.cs.CoreV1().ServiceAccounts(ns).Create(t.Context(), sa, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				opt = func(d *appsv1.Deployment) { d.Spec.Template.Spec.ServiceAccountName = "builder" }
			}
			g.deploy(ns, "web", g.image("team/app:latest"), opt)
			g.mustRun()
			g.push("team/app:latest", "v2")
			o := g.mustRun()
			if g.restartedAt(ns, "web") == "" {
				t.Error("not restarted with pull-secret credentials")
			}
			// The registry budget names the pull secret, never its content.
			if want := fmt.Sprintf("registries.%s@%s/regcred.manifest_heads=", g.reg.Host, ns); !strings.Contains(o.logs, want) {
				t.Errorf("the summary line has no budget for the pull secret (%s):\n%s", want, o.logs)
			}
			if strings.Contains(o.logs, "s3cret-pull") || strings.Contains(o.logs, auth) {
				t.Error("a pull secret's credentials reached the log")
			}

			// A wrong password in the Secret: the failure names the Secret,
			// never what it holds.
			wrong := base64.StdEncoding.EncodeToString([]byte("puller:wr0ng-pass"))
			secret.Data[corev1.DockerConfigJsonKey] = fmt.Appendf(nil, `{"auths":{"http://%s":{"auth":%q}}}`, g.reg.Host, wrong)
			if _, err := g.cs.CoreV1().Secrets(ns).Update(t.Context(), secret, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			g.push("team/app:latest", "v3")
			o = g.run()
			if o.code != 1 || !strings.Contains(o.logs, "pull_secret="+ns+"/regcred") {
				t.Errorf("a refused pull secret: exit %d, want 1 and a line naming %s/regcred:\n%s", o.code, ns, o.logs)
			}
			if strings.Contains(o.logs, "wr0ng-pass") || strings.Contains(o.logs, wrong) {
				t.Error("a pull secret's credentials reached the log")
			}

			// Off (the default), the same registry refuses urunner.
			g.setenv("URUNNER_CONF_PULL_SECRET_AUTH", "false")
			if o := g.run(); o.code != 1 || !strings.Contains(o.logs, "refused the credentials") && !strings.Contains(o.logs, "unauthorized") {
				t.Errorf("without pull-secret auth: exit %d, want 1 and an auth error:\n%s", o.code, o.logs)
			}
		})
	}
}
