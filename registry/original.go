package registry

import (
	"errors"
	"fmt"
	"strings"
)

// OriginalSecrets are the credential variables of the original urunner,
// which describe its single watched registry, one set per registry type.
// Their names (the envconfig tags) are a compatibility contract: the
// configuration that reads the environment embeds this struct, so they
// are read, and listed by --help, as they always were.
type OriginalSecrets struct {
	HarborUser         string `envconfig:"URUNNER_SECR_HARBOR_USER" desc:"Harbor user or robot account (type harbor)"`
	HarborPass         string `envconfig:"URUNNER_SECR_HARBOR_PASS" desc:"Harbor password (type harbor)"`
	RegistryUser       string `envconfig:"URUNNER_SECR_REGISTRY_USER" desc:"user (types generic, dockerhub; azure_acr admin user)"`
	RegistryPass       string `envconfig:"URUNNER_SECR_REGISTRY_PASS" desc:"password or access token (types generic, dockerhub; azure_acr admin password)"`
	AWSAccessKeyID     string `envconfig:"URUNNER_SECR_AWS_ACCESS_KEY_ID" desc:"AWS access key (type aws_ecr; empty: the SDK's default chain, e.g. IRSA)"`
	AWSSecretAccessKey string `envconfig:"URUNNER_SECR_AWS_SECRET_ACCESS_KEY" desc:"AWS secret key (type aws_ecr)"`
	AWSRegion          string `envconfig:"URUNNER_SECR_AWS_REGION" desc:"AWS region (type aws_ecr; empty: taken from the registry host)"`
	DigitalOceanToken  string `envconfig:"URUNNER_SECR_DIGITAL_OCEAN_TOKEN" desc:"DigitalOcean API token (type digitalocean)"`
	GitLabToken        string `envconfig:"URUNNER_SECR_GITLAB_TOKEN" desc:"GitLab personal, project or deploy token (type gitlab)"`
	GitLabUser         string `envconfig:"URUNNER_SECR_GITLAB_USER" desc:"GitLab user name of the token (type gitlab; required for deploy tokens)"`
	GitLabAuthURL      string `envconfig:"URUNNER_SECR_GITLAB_AUTH_URL" desc:"GitLab URL serving /jwt/auth, used when the registry's challenge does not name it (type gitlab)"`
	AzureTenantID      string `envconfig:"URUNNER_SECR_AZURE_TENANT_ID" desc:"Azure AD tenant of a service principal (type azure_acr)"`
	AzureClientID      string `envconfig:"URUNNER_SECR_AZURE_CLIENT_ID" desc:"service principal client id (type azure_acr; empty: workload or managed identity)"`
	AzureClientSecret  string `envconfig:"URUNNER_SECR_AZURE_CLIENT_SECRET" desc:"service principal secret (type azure_acr)"`
}

// OriginalVariables is the single registry of the original urunner.
type OriginalVariables struct {
	Host    string // URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH
	Type    string // URUNNER_CONF_CONTAINER_REGISTRY_TYPE
	Verify  bool   // URUNNER_CONF_DOCKER_API_VERIFY
	Secrets OriginalSecrets
}

// originalCredentials sets, for each registry type the original urunner
// had variables of, the fields of a HostConfig those variables stand for.
// The types it lacks (generic, dockerhub, gcp) take URUNNER_SECR_REGISTRY_USER
// and _PASS, or nothing; a new type gets its credentials from the
// registries file and needs no entry here.
var originalCredentials = map[string]func(OriginalSecrets, *HostConfig){
	"harbor": func(s OriginalSecrets, hc *HostConfig) {
		hc.User, hc.Password.Value = s.HarborUser, s.HarborPass
	},
	"digitalocean": func(s OriginalSecrets, hc *HostConfig) {
		hc.Token.Value = s.DigitalOceanToken
	},
	"gitlab": func(s OriginalSecrets, hc *HostConfig) {
		hc.User, hc.Token.Value, hc.AuthURL = s.GitLabUser, s.GitLabToken, s.GitLabAuthURL
	},
	"aws_ecr": func(s OriginalSecrets, hc *HostConfig) {
		hc.Region = s.AWSRegion
		hc.AccessKeyID.Value, hc.SecretAccessKey.Value = s.AWSAccessKeyID, s.AWSSecretAccessKey
	},
	"azure_acr": func(s OriginalSecrets, hc *HostConfig) {
		hc.TenantID, hc.ClientID, hc.ClientSecret.Value = s.AzureTenantID, s.AzureClientID, s.AzureClientSecret
	},
}

// FromOriginalVariables is the HostConfig the original variables describe,
// prepared (see Prepare). Its errors name the variable at fault.
func FromOriginalVariables(v OriginalVariables) (HostConfig, error) {
	hc := HostConfig{
		Host: v.Host,
		Type: v.Type,
		User: v.Secrets.RegistryUser, Password: Secret{Value: v.Secrets.RegistryPass},
	}
	if !v.Verify {
		hc.TLSVerify = new(false)
	}
	host := strings.TrimPrefix(strings.TrimPrefix(v.Host, "https://"), "http://")
	hc.Advice = TLSAdvice{
		PlainHTTP: fmt.Sprintf("set URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH=http://%s, or URUNNER_CONF_DOCKER_API_VERIFY=false to try TLS first and then HTTP (as Docker does for an insecure registry)", host),
		Untrusted: "set URUNNER_CONF_DOCKER_API_VERIFY=false to skip verification for this registry only, or list it in URUNNER_CONF_REGISTRIES_FILE with caFile: (the CA bundle that signed its certificate)",
	}
	if set := originalCredentials[v.Type]; set != nil {
		set(v.Secrets, &hc)
	}
	// The variables hold the secrets themselves: none names another
	// variable or a file to read.
	if err := hc.Prepare(func(string) (string, bool) { return "", false }); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) && fe.Field == "type" {
			return HostConfig{}, fmt.Errorf("URUNNER_CONF_CONTAINER_REGISTRY_TYPE: %w", fe.Err)
		}
		if errors.As(err, &fe) && fe.Field == "host" {
			return HostConfig{}, fmt.Errorf("URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH: %w", fe.Err)
		}
		return HostConfig{}, fmt.Errorf("registry %s: %w", v.Host, err)
	}
	return hc, nil
}
