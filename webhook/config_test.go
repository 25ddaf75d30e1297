package webhook

import (
	"strings"
	"testing"
)

// A bad value stops the receiver with a line naming the variable.
func TestBadConfigurationNamesTheVariable(t *testing.T) {
	const secret = "a-good-long-secret-123"
	for _, tc := range []struct {
		name, key, value, want string
	}{
		{"no endpoint", "", "", "no endpoint enabled"},
		{"short secret", "URUNNER_SECR_WEBHOOK_HARBOR_AUTH", "short", "URUNNER_SECR_WEBHOOK_HARBOR_AUTH: want at least 16 characters"},
		{"secret with a newline", "URUNNER_SECR_WEBHOOK_GITLAB_TOKEN", secret + "\n", "URUNNER_SECR_WEBHOOK_GITLAB_TOKEN: leading or trailing white space"},
		{"docker hub token with a slash", "URUNNER_SECR_WEBHOOK_DOCKERHUB_TOKEN", secret + "/x", "URUNNER_SECR_WEBHOOK_DOCKERHUB_TOKEN: it is a URL path element"},
		{"debounce not a duration", "URUNNER_CONF_WEBHOOK_DEBOUNCE", "soon", "URUNNER_CONF_WEBHOOK_DEBOUNCE"},
		{"debounce too long", "URUNNER_CONF_WEBHOOK_DEBOUNCE", "1h", "URUNNER_CONF_WEBHOOK_DEBOUNCE: want 0s to 5m"},
		{"tiny body limit", "URUNNER_CONF_WEBHOOK_MAX_BODY_BYTES", "10", "URUNNER_CONF_WEBHOOK_MAX_BODY_BYTES: want at least 1024"},
		{"no references", "URUNNER_CONF_WEBHOOK_MAX_REFERENCES", "0", "URUNNER_CONF_WEBHOOK_MAX_REFERENCES: want at least 1"},
		{"bad host map", "URUNNER_CONF_WEBHOOK_HARBOR_HOST", "a=b=c", "URUNNER_CONF_WEBHOOK_HARBOR_HOST"},
		{"kube auth", "URUNNER_CONF_KUBE_AUTH", "foo", `URUNNER_CONF_KUBE_AUTH: want incluster or kubeconfig, got "foo"`},
		{"log level", "URUNNER_CONF_LOG_LEVEL", "LOUD", "URUNNER_CONF_LOG_LEVEL"},
		{"log format", "URUNNER_CONF_LOG_FORMAT", "xml", "URUNNER_CONF_LOG_FORMAT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.key != "URUNNER_SECR_WEBHOOK_HARBOR_AUTH" && tc.name != "no endpoint" {
				t.Setenv("URUNNER_SECR_WEBHOOK_HARBOR_AUTH", secret)
			}
			if tc.key != "" {
				t.Setenv(tc.key, tc.value)
			}
			_, err := loadConfig()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("one endpoint is enough", func(t *testing.T) {
		t.Setenv("URUNNER_SECR_WEBHOOK_GENERIC_KEY", secret)
		if _, err := loadConfig(); err != nil {
			t.Error(err)
		}
	})
}
