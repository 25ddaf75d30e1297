package webhook

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/urunner/urunner/logging"
)

// Config is the receiver's whole configuration, read from the environment.
// An endpoint is served only when its secret is set: there is no
// unauthenticated endpoint.
type Config struct {
	Listen    string `envconfig:"URUNNER_CONF_WEBHOOK_LISTEN" default:":8080" desc:"address the receiver listens on"`
	CronJob   string `envconfig:"URUNNER_CONF_WEBHOOK_CRONJOB" default:"urunner" desc:"the urunner CronJob whose Job template a pushed run copies"`
	Namespace string `envconfig:"URUNNER_CONF_WEBHOOK_NAMESPACE" desc:"namespace of that CronJob; default: the pod's own in a cluster, else the kubeconfig's"`
	KubeAuth  string `envconfig:"URUNNER_CONF_KUBE_AUTH" desc:"incluster or kubeconfig (honours KUBECONFIG); default: incluster in a pod, else kubeconfig"`
	LogLevel  string `envconfig:"URUNNER_CONF_LOG_LEVEL" default:"INFO" desc:"DEBUG, INFO, WARNING (or WARN) or ERROR"`
	LogFormat string `envconfig:"URUNNER_CONF_LOG_FORMAT" default:"text" desc:"text or json"`

	Debounce      time.Duration `envconfig:"URUNNER_CONF_WEBHOOK_DEBOUNCE" default:"1s" desc:"pushes within this long of the first coalesce into one run"`
	MaxBodyBytes  int64         `envconfig:"URUNNER_CONF_WEBHOOK_MAX_BODY_BYTES" default:"1048576" desc:"larger notifications are refused with 413"`
	MaxReferences int           `envconfig:"URUNNER_CONF_WEBHOOK_MAX_REFERENCES" default:"200" desc:"a run for more pushed references than this looks up everything instead"`

	DistributionToken string `envconfig:"URUNNER_SECR_WEBHOOK_DISTRIBUTION_TOKEN" desc:"serves /hooks/distribution: CNCF distribution registry notifications, with 'Authorization: Bearer <token>'"`
	DistributionHost  string `envconfig:"URUNNER_CONF_WEBHOOK_DISTRIBUTION_HOST" desc:"registry host of its references: HOST for all, or FROM=TO,... to map request.host; empty: request.host"`
	GitLabToken       string `envconfig:"URUNNER_SECR_WEBHOOK_GITLAB_TOKEN" desc:"serves /hooks/gitlab: GitLab container registry notifications, with 'Authorization: <token>'"`
	GitLabHost        string `envconfig:"URUNNER_CONF_WEBHOOK_GITLAB_HOST" desc:"registry host of its references, as for distribution"`
	HarborAuth        string `envconfig:"URUNNER_SECR_WEBHOOK_HARBOR_AUTH" desc:"serves /hooks/harbor: Harbor webhooks whose Auth Header is this value"`
	HarborHost        string `envconfig:"URUNNER_CONF_WEBHOOK_HARBOR_HOST" desc:"registry host of its references: HOST, or FROM=TO,... to map the resource_url host"`
	DockerHubToken    string `envconfig:"URUNNER_SECR_WEBHOOK_DOCKERHUB_TOKEN" desc:"serves /hooks/dockerhub/<token>: Docker Hub webhooks (the URL is their only secret)"`
	GenericKey        string `envconfig:"URUNNER_SECR_WEBHOOK_GENERIC_KEY" desc:"serves /hooks/generic: {\"references\":[...]} signed in X-Urunner-Signature: t=<unix seconds>,sha256=<HMAC-SHA256 of \"<t>.\" and the body under this key>"`
	GenericHost       string `envconfig:"URUNNER_CONF_WEBHOOK_GENERIC_HOST" desc:"registry host of its references: HOST, or FROM=TO,..."`
}

// minSecretLen keeps guessable secrets out: every endpoint is reachable
// by whoever can reach the Service.
const minSecretLen = 16

// loadConfig reads the environment through getenv-less envconfig and
// checks every value, naming the variable at fault.
func loadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return c, envError(err)
	}
	return c, c.validate()
}

// envError names the variable envconfig could not parse.
func envError(err error) error {
	var pe *envconfig.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %q is not a valid %s", pe.KeyName, pe.Value, pe.TypeName)
	}
	return err
}

// validate checks every value, naming the variable at fault: the
// settings, then the secrets (at least one endpoint enabled), then the
// host mappings.
func (c Config) validate() error {
	if err := c.validateSettings(); err != nil {
		return err
	}
	if err := c.validateSecrets(); err != nil {
		return err
	}
	return c.validateHosts()
}

// validateSettings checks the variables that are not secrets or hosts.
func (c Config) validateSettings() error {
	switch c.KubeAuth {
	case "", "incluster", "kubeconfig":
	default:
		return fmt.Errorf("URUNNER_CONF_KUBE_AUTH: want incluster or kubeconfig, got %q", c.KubeAuth)
	}
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		return fmt.Errorf("URUNNER_CONF_LOG_LEVEL: %w", err)
	}
	if f := strings.ToLower(c.LogFormat); f != "text" && f != "json" {
		return fmt.Errorf("URUNNER_CONF_LOG_FORMAT: want text or json, got %q", c.LogFormat)
	}
	if c.CronJob == "" {
		return errors.New("URUNNER_CONF_WEBHOOK_CRONJOB: empty")
	}
	if c.Debounce < 0 || c.Debounce > 5*time.Minute {
		return fmt.Errorf("URUNNER_CONF_WEBHOOK_DEBOUNCE: want 0s to 5m, got %s", c.Debounce)
	}
	if c.MaxBodyBytes < 1024 {
		return fmt.Errorf("URUNNER_CONF_WEBHOOK_MAX_BODY_BYTES: want at least 1024, got %d", c.MaxBodyBytes)
	}
	if c.MaxReferences < 1 {
		return fmt.Errorf("URUNNER_CONF_WEBHOOK_MAX_REFERENCES: want at least 1, got %d", c.MaxReferences)
	}
	return nil
}

// validateSecrets checks each endpoint's secret that is set, and that one
// is: there is no unauthenticated endpoint.
func (c Config) validateSecrets() error {
	enabled := 0
	for _, s := range []struct{ name, value string }{
		{"URUNNER_SECR_WEBHOOK_DISTRIBUTION_TOKEN", c.DistributionToken},
		{"URUNNER_SECR_WEBHOOK_GITLAB_TOKEN", c.GitLabToken},
		{"URUNNER_SECR_WEBHOOK_HARBOR_AUTH", c.HarborAuth},
		{"URUNNER_SECR_WEBHOOK_DOCKERHUB_TOKEN", c.DockerHubToken},
		{"URUNNER_SECR_WEBHOOK_GENERIC_KEY", c.GenericKey},
	} {
		if s.value == "" {
			continue
		}
		enabled++
		if len(s.value) < minSecretLen {
			return fmt.Errorf("%s: want at least %d characters, got %d", s.name, minSecretLen, len(s.value))
		}
		if strings.TrimSpace(s.value) != s.value || strings.ContainsAny(s.value, "\r\n") {
			return fmt.Errorf("%s: leading or trailing white space, or a line break", s.name)
		}
	}
	if c.DockerHubToken != "" && strings.ContainsAny(c.DockerHubToken, "/?#%") {
		return errors.New("URUNNER_SECR_WEBHOOK_DOCKERHUB_TOKEN: it is a URL path element; use letters, digits, - and _")
	}
	if enabled == 0 {
		return errors.New("no endpoint enabled: set at least one of URUNNER_SECR_WEBHOOK_DISTRIBUTION_TOKEN, _GITLAB_TOKEN, _HARBOR_AUTH, _DOCKERHUB_TOKEN, _GENERIC_KEY")
	}
	return nil
}

// validateHosts checks each endpoint's host mapping.
func (c Config) validateHosts() error {
	for _, h := range []struct{ name, value string }{
		{"URUNNER_CONF_WEBHOOK_DISTRIBUTION_HOST", c.DistributionHost},
		{"URUNNER_CONF_WEBHOOK_GITLAB_HOST", c.GitLabHost},
		{"URUNNER_CONF_WEBHOOK_HARBOR_HOST", c.HarborHost},
		{"URUNNER_CONF_WEBHOOK_GENERIC_HOST", c.GenericHost},
	} {
		if _, err := parseHostRewrite(h.value); err != nil {
			return fmt.Errorf("%s: %w", h.name, err)
		}
	}
	return nil
}

// printUsage prints every variable, its default and meaning.
func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: urunner webhook")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Receives registry push notifications and starts a urunner run (a Job from")
	fmt.Fprintln(w, "the urunner CronJob) for the pushed references. Configured by environment:")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	_ = envconfig.Usagef("", &Config{}, tw, "{{range .}}{{usage_key .}}\t{{usage_default .}}\t{{usage_description .}}\n{{end}}")
	_ = tw.Flush()
}
