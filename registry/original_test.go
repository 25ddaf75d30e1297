package registry

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/kelseyhightower/envconfig"
)

// Each registry type reads the original urunner's variables of that type
// (and only those): the compatibility contract of the single registry.
func TestOriginalVariablesMapToTheirTypesHostConfig(t *testing.T) {
	// Every variable set, so that a type reading another type's
	// variables shows in the diff.
	env := map[string]string{
		"URUNNER_SECR_HARBOR_USER":           "harbor-user",
		"URUNNER_SECR_HARBOR_PASS":           "harbor-pass",
		"URUNNER_SECR_REGISTRY_USER":         "registry-user",
		"URUNNER_SECR_REGISTRY_PASS":         "registry-pass",
		"URUNNER_SECR_AWS_ACCESS_KEY_ID":     "aws-key",
		"URUNNER_SECR_AWS_SECRET_ACCESS_KEY": "aws-secret",
		"URUNNER_SECR_AWS_REGION":            "eu-west-1",
		"URUNNER_SECR_DIGITAL_OCEAN_TOKEN":   "do-token",
		"URUNNER_SECR_GITLAB_TOKEN":          "gitlab-token",
		"URUNNER_SECR_GITLAB_USER":           "gitlab-user",
		"URUNNER_SECR_GITLAB_AUTH_URL":       "https://gitlab.example.com",
		"URUNNER_SECR_AZURE_TENANT_ID":       "tenant",
		"URUNNER_SECR_AZURE_CLIENT_ID":       "client",
		"URUNNER_SECR_AZURE_CLIENT_SECRET":   "client-secret",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var secrets OriginalSecrets
	if err := envconfig.Process("", &secrets); err != nil {
		t.Fatal(err)
	}
	val := func(s string) Secret { return Secret{Value: s} }
	for _, tc := range []struct {
		typ  string
		want HostConfig
	}{
		{"generic", HostConfig{User: "registry-user", Password: val("registry-pass")}},
		{"dockerhub", HostConfig{User: "registry-user", Password: val("registry-pass")}},
		{"gcp", HostConfig{User: "registry-user", Password: val("registry-pass")}},
		{"harbor", HostConfig{User: "harbor-user", Password: val("harbor-pass")}},
		{"digitalocean", HostConfig{User: "registry-user", Password: val("registry-pass"), Token: val("do-token")}},
		{"gitlab", HostConfig{User: "gitlab-user", Password: val("registry-pass"), Token: val("gitlab-token"), AuthURL: "https://gitlab.example.com"}},
		{"aws_ecr", HostConfig{User: "registry-user", Password: val("registry-pass"),
			Region: "eu-west-1", AccessKeyID: val("aws-key"), SecretAccessKey: val("aws-secret")}},
		{"azure_acr", HostConfig{User: "registry-user", Password: val("registry-pass"),
			TenantID: "tenant", ClientID: "client", ClientSecret: val("client-secret")}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			got, err := FromOriginalVariables(OriginalVariables{Host: "r.example.com:5000", Type: tc.typ, Verify: true, Secrets: secrets})
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Host, tc.want.Type = "r.example.com:5000", tc.typ
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(HostConfig{}, "Advice")); diff != "" {
				t.Errorf("host config (-want +got):\n%s", diff)
			}
		})
	}
	if n := len(Types()); n != 8 {
		t.Errorf("%d registry types, the table has 8: give the new type its row", n)
	}
}

// The original variables' host, verification and TLS advice, and errors
// naming the variable at fault.
func TestOriginalVariablesHostAndErrors(t *testing.T) {
	got, err := FromOriginalVariables(OriginalVariables{Host: "http://r.example.com:5000/", Verify: false})
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != "r.example.com:5000" || !got.PlainHTTP || got.Type != "generic" || got.TLSVerify == nil || *got.TLSVerify {
		t.Errorf("host config = %+v, want r.example.com:5000, plain HTTP, generic, TLS verification off", got)
	}
	if !strings.Contains(got.Advice.PlainHTTP, "URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH=http://r.example.com:5000/") ||
		!strings.Contains(got.Advice.Untrusted, "URUNNER_CONF_DOCKER_API_VERIFY=false") {
		t.Errorf("advice = %+v, want the original variables named", got.Advice)
	}
	for _, tc := range []struct {
		name string
		v    OriginalVariables
		want string
	}{
		{"unknown type", OriginalVariables{Host: "r.example.com", Type: "quay"}, `URUNNER_CONF_CONTAINER_REGISTRY_TYPE: want one of aws_ecr, azure_acr`},
		{"bad host", OriginalVariables{Host: "a b", Type: "generic"}, `URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH: "a b" is not a registry host`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromOriginalVariables(tc.v)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want one starting %q", err, tc.want)
			}
		})
	}
}
