package registry

import (
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// HostConfig is one watched registry: an item of the registries file, or
// what the original single-registry variables describe.
type HostConfig struct {
	// Host is the registry as images name it: registry.example.com:5000.
	Host string `json:"host"`
	// Type selects the credentials provider; see Types.
	Type string `json:"type"`
	// PlainHTTP talks HTTP, for a registry on localhost or a private link.
	PlainHTTP bool `json:"plainHTTP,omitempty"`
	// TLSVerify false skips certificate verification for this host only.
	TLSVerify *bool `json:"tlsVerify,omitempty"`
	// CAFile is a PEM bundle trusted for this host, on top of the system's.
	CAFile string `json:"caFile,omitempty"`
	// Concurrency is this host's requests in flight; 0 for the default.
	Concurrency int `json:"concurrency,omitempty"`

	User     string `json:"user,omitempty"`
	Password Secret `json:"password,omitempty"`
	Token    Secret `json:"token,omitempty"`

	// aws_ecr: region and registry id default to the host's
	// (ACCOUNT.dkr.ecr.REGION.amazonaws.com); static keys are optional, the
	// SDK's default chain (IRSA, Pod Identity, instance role) applies
	// without them. Endpoint overrides the ECR API endpoint.
	Region          string `json:"region,omitempty"`
	RegistryID      string `json:"registryID,omitempty"`
	AccessKeyID     Secret `json:"accessKeyID,omitempty"`
	SecretAccessKey Secret `json:"secretAccessKey,omitempty"`
	Endpoint        string `json:"endpoint,omitempty"`

	// gitlab: where /jwt/auth lives when the registry's challenge does not
	// say (the original URUNNER_SECR_GITLAB_AUTH_URL).
	AuthURL string `json:"authURL,omitempty"`

	// azure_acr: a service principal; without one, azidentity's default
	// chain (workload identity, managed identity). User/Password hold an
	// admin user or a token-scoped credential instead.
	TenantID     string `json:"tenantID,omitempty"`
	ClientID     string `json:"clientID,omitempty"`
	ClientSecret Secret `json:"clientSecret,omitempty"`
	// AuthorityHost overrides Azure AD's login endpoint (sovereign clouds).
	AuthorityHost string `json:"authorityHost,omitempty"`

	// Advice names the settings to change when the registry's TLS does
	// not match this configuration; set by whoever read the configuration.
	Advice TLSAdvice `json:"-"`
}

// TLSAdvice says, in the words of the configuration a host came from,
// what to change when its registry speaks plain HTTP although HTTPS was
// expected, or presents a certificate urunner does not trust.
type TLSAdvice struct {
	PlainHTTP string
	Untrusted string
}

// fileAdvice is the advice for item i of a registries file.
func fileAdvice(path string, i int, host string) TLSAdvice {
	return TLSAdvice{
		PlainHTTP: fmt.Sprintf("%s: registries[%d]: write host: http://%s, or tlsVerify: false to try TLS first and then HTTP (as Docker does for an insecure registry)", path, i, host),
		Untrusted: fmt.Sprintf("%s: registries[%d]: give caFile: (the CA bundle that signed its certificate), or tlsVerify: false to skip verification for this registry only", path, i),
	}
}

// registriesFile is the document URUNNER_CONF_REGISTRIES_FILE names.
type registriesFile struct {
	Registries []HostConfig `json:"registries"`
}

// LoadHostsFile reads a registries file and the secrets it points at.
// Errors name the file, the item and the field at fault.
func LoadHostsFile(path string, getenv func(string) (string, bool)) ([]HostConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f registriesFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Registries) == 0 {
		return nil, fmt.Errorf("%s: no registries listed", path)
	}
	for i := range f.Registries {
		hc := &f.Registries[i]
		if err := hc.Prepare(getenv); err != nil {
			return nil, fmt.Errorf("%s: registries[%d] (%s): %w", path, i, hc.Host, err)
		}
		hc.Advice = fileAdvice(path, i, hc.Host)
	}
	return f.Registries, nil
}

// FieldError names the HostConfig field at fault, so that a caller can
// name its own variable for it.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Prepare validates hc, normalises its host and reads its secrets.
func (hc *HostConfig) Prepare(getenv func(string) (string, bool)) error {
	if hc.Host == "" {
		return &FieldError{"host", fmt.Errorf("required")}
	}
	name, plain := strings.CutPrefix(hc.Host, "http://")
	name = strings.TrimSuffix(strings.TrimPrefix(name, "https://"), "/")
	norm, err := NormalizeHost(name)
	if err != nil {
		return &FieldError{"host", err}
	}
	hc.Host, hc.PlainHTTP = norm, hc.PlainHTTP || plain
	if hc.Type == "" {
		hc.Type = "generic"
	}
	if _, ok := providerTypes[hc.Type]; !ok {
		return &FieldError{"type", fmt.Errorf("want one of %s, got %q", strings.Join(Types(), ", "), hc.Type)}
	}
	if hc.Concurrency < 0 {
		return &FieldError{"concurrency", fmt.Errorf("must not be negative")}
	}
	for field, s := range map[string]*Secret{
		"password": &hc.Password, "token": &hc.Token,
		"accessKeyID": &hc.AccessKeyID, "secretAccessKey": &hc.SecretAccessKey, "clientSecret": &hc.ClientSecret,
	} {
		if err := s.resolve(getenv); err != nil {
			return &FieldError{field, err}
		}
	}
	return nil
}

// NewHost builds the Host a Resolver watches from hc, after Prepare.
func NewHost(hc HostConfig) (Host, error) {
	p, err := providerTypes[hc.Type](hc)
	if err != nil {
		return Host{}, err
	}
	h := Host{
		Name:        hc.Host,
		PlainHTTP:   hc.PlainHTTP,
		SkipVerify:  hc.TLSVerify != nil && !*hc.TLSVerify,
		Concurrency: hc.Concurrency,
		Provider:    p,
		Advice:      hc.Advice,
	}
	if h.Advice == (TLSAdvice{}) {
		h.Advice = TLSAdvice{
			PlainHTTP: fmt.Sprintf("configure the registry as http://%s, or turn off its TLS verification to try TLS first and then HTTP", hc.Host),
			Untrusted: "give the CA bundle that signed its certificate, or turn off its TLS verification",
		}
	}
	if hc.CAFile != "" {
		h.CAPEM, err = os.ReadFile(hc.CAFile)
		if err != nil {
			return Host{}, fmt.Errorf("registry %s: caFile: %w", hc.Host, err)
		}
	}
	return h, nil
}
