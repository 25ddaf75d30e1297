package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Credentials are what a registry's token service or basic auth accepts.
// regclient presents them on the registry's challenge, so one type serves
// basic auth and the Docker token flow alike.
type Credentials struct {
	User, Password string
	// Expiry is when the credentials stop working; zero for never. A run is
	// short, so credentials are fetched once per run and host, and only
	// fetched again when they would expire within the run.
	Expiry time.Time
}

// Provider yields the credentials of one registry host. Adding a registry
// type means adding one file with a Provider and one line in
// providerTypes.
type Provider interface {
	Credentials(ctx context.Context) (Credentials, error)
}

// providerTypes maps URUNNER_CONF_CONTAINER_REGISTRY_TYPE values (and the
// registries file's type) to their constructors.
var providerTypes = map[string]func(HostConfig) (Provider, error){
	"generic":      newBasic,
	"harbor":       newBasic,
	"dockerhub":    newBasic,
	"digitalocean": newDigitalOcean,
	"gitlab":       newGitLab,
	"aws_ecr":      newECR,
	"azure_acr":    newACR,
	"gcp":          newGCP,
}

// Types lists the registry types urunner knows, sorted.
func Types() []string {
	var ts []string
	for t := range providerTypes {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// ErrCredentials marks a lookup that failed because the host's provider
// could not produce credentials (a token API refused or was unreachable).
var ErrCredentials = errors.New("cannot get registry credentials")

// Secret is a credential read from an environment variable or a mounted
// file, never written literally in the registries file. Value holds what
// was read.
type Secret struct {
	Env   string `json:"env,omitempty"`
	File  string `json:"file,omitempty"`
	Value string `json:"-"`
}

// String never reveals the value, so a Secret is safe in any log or error.
func (s Secret) String() string {
	switch {
	case s.Env != "":
		return "env " + s.Env
	case s.File != "":
		return "file " + s.File
	case s.Value != "":
		return "[set]"
	}
	return "[unset]"
}

// resolve reads the secret's value from its variable or file.
func (s *Secret) resolve(getenv func(string) (string, bool)) error {
	switch {
	case s.Env != "" && s.File != "":
		return fmt.Errorf("set env or file, not both")
	case s.Env != "":
		v, ok := getenv(s.Env)
		if !ok || v == "" {
			return fmt.Errorf("environment variable %s is not set", s.Env)
		}
		s.Value = v
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return err
		}
		s.Value = strings.TrimRight(string(b), "\r\n")
	}
	return nil
}

// basic presents a fixed user and password, or nothing (anonymous).
type basic struct{ creds Credentials }

func newBasic(hc HostConfig) (Provider, error) {
	if (hc.User == "") != (hc.Password.Value == "") {
		return nil, fmt.Errorf("registry %s (type %s): a user needs a password and a password a user", hc.Host, hc.Type)
	}
	return basic{Credentials{User: hc.User, Password: hc.Password.Value}}, nil
}

func (b basic) Credentials(context.Context) (Credentials, error) { return b.creds, nil }

// newDigitalOcean: DOCR's token service takes the API token as both user
// name and password (what `doctl registry login` writes).
func newDigitalOcean(hc HostConfig) (Provider, error) {
	tok := hc.Token.Value
	if tok == "" {
		tok = hc.Password.Value
	}
	if tok == "" {
		return nil, fmt.Errorf("registry %s (type digitalocean): a DigitalOcean API token is required", hc.Host)
	}
	return basic{Credentials{User: tok, Password: tok}}, nil
}
