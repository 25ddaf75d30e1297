package run

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/urunner/urunner/logging"
	"github.com/urunner/urunner/registry"
)

// Config is urunner's whole configuration, read from the environment. The
// names of the original urunner are kept: they are a compatibility contract.
type Config struct {
	AcceptHeader string `envconfig:"DOCKER_API_ACCEPT_HEADER" desc:"Accept header of manifest HEAD requests, comma-separated media types (default: every manifest and index type)"`
	Verify       bool   `envconfig:"URUNNER_CONF_DOCKER_API_VERIFY" default:"true" desc:"verify the TLS certificates of the watched registry (false: that registry only, with a warning)"`
	LogLevel     string `envconfig:"URUNNER_CONF_LOG_LEVEL" default:"INFO" desc:"DEBUG, INFO, WARNING (or WARN) or ERROR"`
	LogFormat    string `envconfig:"URUNNER_CONF_LOG_FORMAT" default:"text" desc:"text (coloured on a terminal) or json"`
	KubeAuth     string `envconfig:"URUNNER_CONF_KUBE_AUTH" desc:"incluster or kubeconfig (honours KUBECONFIG); default: incluster in a pod, else kubeconfig"`

	Registry       string `envconfig:"URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH" desc:"registry host[:port] whose images are watched, e.g. registry.example.com:5000; prefix http:// for a plain-HTTP registry"`
	RegistryType   string `envconfig:"URUNNER_CONF_CONTAINER_REGISTRY_TYPE" default:"generic" desc:"credentials provider of that registry: generic, harbor, dockerhub, digitalocean, gitlab, aws_ecr, azure_acr or gcp"`
	RegistriesFile string `envconfig:"URUNNER_CONF_REGISTRIES_FILE" desc:"YAML file listing several registries (host, type, credentials from env or files, TLS); combines with the single registry above"`

	// The original variables of each registry type's credentials, read
	// here and mapped by package registry (FromOriginalVariables).
	registry.OriginalSecrets

	Namespaces      string `envconfig:"URUNNER_CONF_NAMESPACES" desc:"namespaced mode: the namespaces to watch, comma-separated; urunner then makes no cluster-scoped request and needs only a Role in each (no urunner=enable label needed; urunner=disable still opts a workload out). Empty: every namespace labelled urunner=enable (needs a ClusterRole)"`
	ListScope       string `envconfig:"URUNNER_CONF_LIST_SCOPE" default:"auto" desc:"how workloads are listed in cluster mode: cluster (one LIST per kind), namespace (one per watched namespace and kind) or auto (namespace when the watched namespaces are few beside the cluster's workloads)"`
	References      string `envconfig:"URUNNER_CONF_REFERENCES" desc:"look up only these image references (comma-separated registry/repository:tag, or registry/repository@sha256:<hex> for every stored reference of that repository on that digest), leaving everything else as it is: what a push notification's run does"`
	StateConfigMap  string `envconfig:"URUNNER_CONF_STATE_CONFIGMAP" default:"urunner-state" desc:"ConfigMap holding the digests seen by earlier runs"`
	StateNamespace  string `envconfig:"URUNNER_CONF_STATE_NAMESPACE" desc:"namespace of that ConfigMap; default: the pod's own namespace in a cluster, else the kubeconfig's (default)"`
	DryRun          bool   `envconfig:"URUNNER_CONF_DRY_RUN" default:"false" desc:"resolve and report what would restart; patch nothing, write no state"`
	PlanDigest      string `envconfig:"URUNNER_CONF_PLAN_DIGEST" desc:"dry runs only, with URUNNER_CONF_REFERENCES naming one tag: take this digest (sha256:<hex>) as the tag's, as if just pushed, instead of looking it up (kubectl urunner plan IMAGE@DIGEST sets it)"`
	Schedule        string `envconfig:"URUNNER_CONF_SCHEDULE" desc:"the CronJob's schedule (cron syntax, optionally prefixed CRON_TZ=<zone>; the chart sets it): forecasts step over it to say which run restarts a held workload. Empty: they say the earliest time a run could"`
	Kinds           string `envconfig:"URUNNER_CONF_WORKLOAD_KINDS" default:"Deployment,StatefulSet,DaemonSet" desc:"workload kinds urunner watches and restarts, comma-separated"`
	Events          bool   `envconfig:"URUNNER_CONF_EVENTS" default:"true" desc:"record Kubernetes Events on restarted workloads and on failed lookups (kubectl describe shows them)"`
	PullPolicy      string `envconfig:"URUNNER_CONF_PULL_POLICY_MISMATCH" default:"warn" desc:"a moved image whose imagePullPolicy is IfNotPresent or Never may restart onto the cached old image: warn (restart, with a warning) or skip (record, do not restart)"`
	WebhookURL      string `envconfig:"URUNNER_SECR_WEBHOOK_URL" desc:"generic JSON webhook told of each run that restarted something or failed (a secret: its URL often is)"`
	SlackWebhookURL string `envconfig:"URUNNER_SECR_SLACK_WEBHOOK_URL" desc:"Slack-compatible incoming webhook, told likewise"`
	ClusterName     string `envconfig:"URUNNER_CONF_CLUSTER_NAME" desc:"cluster name shown in notifications"`
	PullSecretAuth  bool   `envconfig:"URUNNER_CONF_PULL_SECRET_AUTH" default:"false" desc:"authenticate lookups with the workloads' own imagePullSecrets (and their ServiceAccounts'), for registries configured without credentials; needs get on secrets and serviceaccounts"`

	Cooldown            time.Duration `envconfig:"URUNNER_CONF_COOLDOWN" default:"0s" desc:"no second restart of a workload within this long (annotation urunner.io/cooldown overrides); the change waits"`
	Window              string        `envconfig:"URUNNER_CONF_WINDOW" desc:"maintenance window outside which restarts wait, e.g. 'Mon-Fri 22:00-06:00 Europe/Rome; Sat,Sun 00:00-24:00' (annotation urunner.io/window overrides); empty: always"`
	GitOps              string        `envconfig:"URUNNER_CONF_GITOPS" default:"warn" desc:"workloads managed by Argo CD or Flux: warn (restart, and say how to keep the controller from undoing it), skip (leave them alone) or ignore"`
	Report              string        `envconfig:"URUNNER_CONF_REPORT" desc:"json: print the run report as one JSON document on stdout"`
	PushgatewayURL      string        `envconfig:"URUNNER_CONF_PUSHGATEWAY_URL" desc:"Prometheus Pushgateway that receives the run's counters (a one-shot Job cannot be scraped)"`
	VerifyRollout       bool          `envconfig:"URUNNER_CONF_VERIFY_ROLLOUT" default:"false" desc:"wait for each restarted workload to finish rolling out and report it (log, Event, run report)"`
	RolloutTimeout      time.Duration `envconfig:"URUNNER_CONF_ROLLOUT_TIMEOUT" default:"5m" desc:"longest wait for rollouts, within the run deadline"`
	Rollback            bool          `envconfig:"URUNNER_CONF_ROLLBACK" default:"false" desc:"roll a failed rollout back to its previous template (needs URUNNER_CONF_VERIFY_ROLLOUT)"`
	RunningPods         bool          `envconfig:"URUNNER_CONF_RUNNING_PODS" default:"false" desc:"read the digests the workloads' ready pods run (one LIST of pods): no restart when they all run the new digest already; needs list on pods"`
	FirstRun            string        `envconfig:"URUNNER_CONF_FIRST_RUN" default:"baseline" desc:"first sight of a workload: baseline (record only) or converge (restart it when its ready pods run another digest; needs URUNNER_CONF_RUNNING_PODS)"`
	Platforms           string        `envconfig:"URUNNER_CONF_PLATFORMS" desc:"platform-aware restarts: the platforms your nodes run, e.g. linux/amd64,linux/arm64; a moved multi-platform index restarts only if one of their manifests moved (one GET of the index)"`
	RestartMode         string        `envconfig:"URUNNER_CONF_RESTART_MODE" default:"annotation" desc:"annotation (set kubectl.kubernetes.io/restartedAt) or pin (set the container image to tag@digest, for nodes that must pull deterministically)"`
	Soak                time.Duration `envconfig:"URUNNER_CONF_SOAK" default:"0s" desc:"a new digest restarts nothing until its tag has pointed at it this long (annotation urunner.io/soak on a workload or namespace overrides); a tag moved again meanwhile retracts it"`
	Approval            string        `envconfig:"URUNNER_CONF_APPROVAL" default:"auto" desc:"auto (restart), approve (restart only digests a person approved: annotation urunner.io/approve=sha256:<full digest> on the workload or its namespace) or notify (never restart; report and notify)"`
	SignatureKeys       string        `envconfig:"URUNNER_CONF_SIGNATURE_KEYS" desc:"restart only onto digests signed (cosign) by one of these public keys: PEM files or directories of them (a mounted Secret), comma-separated"`
	SignatureRoot       string        `envconfig:"URUNNER_CONF_SIGNATURE_TRUSTED_ROOT" desc:"keyless signatures: a sigstore trusted_root.json (with URUNNER_CONF_SIGNATURE_ISSUER and _SUBJECT)"`
	SignatureIssuer     string        `envconfig:"URUNNER_CONF_SIGNATURE_ISSUER" desc:"keyless signatures: the OIDC issuer allowed to vouch for signers"`
	SignatureSubject    string        `envconfig:"URUNNER_CONF_SIGNATURE_SUBJECT" desc:"keyless signatures: the signer's identity (email or workflow URI), a regular expression (anchor it with ^ and $)"`
	SignatureTlog       bool          `envconfig:"URUNNER_CONF_SIGNATURE_TLOG" default:"true" desc:"keyless signatures must carry an entry of a transparency log the trusted root names, as cosign verify requires; false trusts a timestamp authority's timestamp alone"`
	SignatureGrace      time.Duration `envconfig:"URUNNER_CONF_SIGNATURE_GRACE" default:"0s" desc:"a moved digest with no signature at all waits this long after it was first seen (a hold, not a failure) before it is refused; a wrong signature is refused at once"`
	ChangeContext       bool          `envconfig:"URUNNER_CONF_CHANGE_CONTEXT" default:"true" desc:"say what a restart changes (the images' revision, version and source labels, a compare link): one manifest GET, and at most one config GET, per digest a restart moves from or to; never in a steady state"`
	MaxRestarts         int           `envconfig:"URUNNER_CONF_MAX_RESTARTS" default:"0" desc:"blast-radius cap: when a run's restarts, with those already counted in the cap's window, would be more, restart none of the run's and exit 1 (0: no cap); the window is since the last full run's start (pushed runs add theirs), or URUNNER_CONF_MAX_RESTARTS_WINDOW"`
	MaxRestartsWindow   time.Duration `envconfig:"URUNNER_CONF_MAX_RESTARTS_WINDOW" default:"0" desc:"the cap's window: count the restarts of every run (scheduled or pushed) within this duration, e.g. 24h (0: since the start of the last full run)"`
	KubeQPS             float32       `envconfig:"URUNNER_CONF_KUBE_QPS" default:"50" desc:"Kubernetes API requests per second"`
	KubeBurst           int           `envconfig:"URUNNER_CONF_KUBE_BURST" default:"300" desc:"Kubernetes API burst: requests sent at once before URUNNER_CONF_KUBE_QPS paces them"`
	RegistryConcurrency int           `envconfig:"URUNNER_CONF_REGISTRY_CONCURRENCY" default:"8" desc:"registry requests in flight per registry host"`
	RegistryTimeout     time.Duration `envconfig:"URUNNER_CONF_REGISTRY_TIMEOUT" default:"15s" desc:"deadline of one registry lookup, retries included"`
	RunTimeout          time.Duration `envconfig:"URUNNER_CONF_RUN_TIMEOUT" default:"10m" desc:"deadline of the whole run"`

	// Variables of the original urunner that no longer apply. They are read
	// only to tell the user what replaced them.
	SQLitePath     string `envconfig:"URUNNER_CONF_SQLLIGHT_PATH" desc:"no longer used: state lives in the ConfigMap URUNNER_CONF_STATE_CONFIGMAP"`
	FrequencyCheck string `envconfig:"URUNNER_CONF_FREQUENCY_CHECK_SECONDS" desc:"no longer used: the CronJob's schedule sets the frequency"`
}

// configError is a configuration problem: exit code 2, no network call made.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func badConfig(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// loadConfig reads and checks the configuration.
func loadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return c, badConfig("%s: want %s, got %q", pe.KeyName, typeName(pe.TypeName), pe.Value)
		}
		return c, badConfig("%v", err)
	}
	return c, c.validate()
}

func typeName(t string) string {
	switch t {
	case "bool":
		return "true or false"
	case "time.Duration":
		return "a duration such as 30s or 5m"
	case "int", "float32":
		return "a number"
	}
	return t
}

func (c *Config) validate() error {
	for _, check := range []func() error{c.validateChoices, c.validateParsed, c.validateNumbers, c.validateCombinations} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// choice is a variable that takes one of a few words.
type choice struct {
	name, got string
	allowed   []string // the accepted words; "" when unset is accepted
	want      string   // as the error says it
}

// validateChoices checks each variable that takes one of a few words.
func (c *Config) validateChoices() error {
	for _, ch := range []choice{
		{"URUNNER_CONF_LOG_FORMAT", strings.ToLower(c.LogFormat), []string{"text", "json"}, "text or json"},
		{"URUNNER_CONF_KUBE_AUTH", c.KubeAuth, []string{"", "incluster", "kubeconfig"}, "incluster or kubeconfig"},
		{"URUNNER_CONF_PULL_POLICY_MISMATCH", c.PullPolicy, []string{"warn", "skip"}, "warn or skip"},
		{"URUNNER_CONF_LIST_SCOPE", c.ListScope, []string{"auto", "cluster", "namespace"}, "auto, cluster or namespace"},
		{"URUNNER_CONF_APPROVAL", c.Approval, []string{"auto", "approve", "notify"}, "auto, approve or notify"},
		{"URUNNER_CONF_GITOPS", c.GitOps, []string{"warn", "skip", "ignore"}, "warn, skip or ignore"},
		{"URUNNER_CONF_REPORT", c.Report, []string{"", "json"}, "json or nothing"},
		{"URUNNER_CONF_FIRST_RUN", c.FirstRun, []string{"baseline", "converge"}, "baseline or converge"},
		{"URUNNER_CONF_RESTART_MODE", c.RestartMode, []string{"annotation", "pin"}, "annotation or pin"},
	} {
		if !slices.Contains(ch.allowed, ch.got) {
			return badConfig("%s: want %s, got %q", ch.name, ch.want, ch.got)
		}
	}
	return nil
}

// validateParsed checks the log level, which the logger reads before the
// options are parsed (parseOptions parses the other variables), and the
// state ConfigMap's name.
func (c *Config) validateParsed() error {
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		return badConfig("URUNNER_CONF_LOG_LEVEL: %v", err)
	}
	if c.StateConfigMap == "" {
		return badConfig("URUNNER_CONF_STATE_CONFIGMAP: must not be empty")
	}
	return nil
}

// validateNumbers checks durations and counts.
func (c *Config) validateNumbers() error {
	if c.Cooldown < 0 {
		return badConfig("URUNNER_CONF_COOLDOWN: must not be negative")
	}
	if c.Soak < 0 {
		return badConfig("URUNNER_CONF_SOAK: must not be negative")
	}
	if c.SignatureGrace < 0 {
		return badConfig("URUNNER_CONF_SIGNATURE_GRACE: must not be negative")
	}
	if c.RolloutTimeout <= 0 {
		return badConfig("URUNNER_CONF_ROLLOUT_TIMEOUT: must be greater than zero")
	}
	if c.MaxRestarts < 0 {
		return badConfig("URUNNER_CONF_MAX_RESTARTS: must not be negative (0 means no cap)")
	}
	if c.MaxRestartsWindow < 0 {
		return badConfig("URUNNER_CONF_MAX_RESTARTS_WINDOW: must not be negative (0 means since the last full run)")
	}
	for name, v := range map[string]float64{
		"URUNNER_CONF_KUBE_QPS":             float64(c.KubeQPS),
		"URUNNER_CONF_KUBE_BURST":           float64(c.KubeBurst),
		"URUNNER_CONF_REGISTRY_CONCURRENCY": float64(c.RegistryConcurrency),
		"URUNNER_CONF_REGISTRY_TIMEOUT":     c.RegistryTimeout.Seconds(),
		"URUNNER_CONF_RUN_TIMEOUT":          c.RunTimeout.Seconds(),
	} {
		if v <= 0 {
			return badConfig("%s: must be greater than zero", name)
		}
	}
	return nil
}

// validateCombinations checks the settings that need another.
func (c *Config) validateCombinations() error {
	if (c.SignatureRoot == "") != (c.SignatureIssuer == "" && c.SignatureSubject == "") {
		return badConfig("URUNNER_CONF_SIGNATURE_TRUSTED_ROOT: keyless signatures need the trusted root and an identity (URUNNER_CONF_SIGNATURE_ISSUER, URUNNER_CONF_SIGNATURE_SUBJECT) together")
	}
	if c.FirstRun == "converge" && !c.RunningPods {
		return badConfig("URUNNER_CONF_FIRST_RUN=converge: needs URUNNER_CONF_RUNNING_PODS=true (converge compares the pods' digests)")
	}
	if c.Rollback && !c.VerifyRollout {
		return badConfig("URUNNER_CONF_ROLLBACK: needs URUNNER_CONF_VERIFY_ROLLOUT=true (a rollout must be watched to be judged failed)")
	}
	return nil
}

// defaultStateConfigMap is URUNNER_CONF_STATE_CONFIGMAP's default.
const defaultStateConfigMap = "urunner-state"

// warnDeprecated logs once for each variable of the original urunner that
// no longer applies.
func (c *Config) warnDeprecated(log *slog.Logger) {
	if c.SQLitePath != "" {
		log.Warn("URUNNER_CONF_SQLLIGHT_PATH is ignored: state lives in a ConfigMap", "configmap", c.StateConfigMap)
	}
	if c.FrequencyCheck != "" {
		log.Warn("URUNNER_CONF_FREQUENCY_CHECK_SECONDS is ignored: the CronJob's schedule sets the frequency")
	}
}

// printUsage writes the --help text: flags, then every variable.
func printUsage(w io.Writer) {
	fmt.Fprintf(w, `urunner restarts Kubernetes workloads when the digest behind an image tag changes.
It runs once and exits: schedule it with a CronJob.

Usage: urunner [--dry-run] [--version] [--help]

Exit codes: 0 all went well; 1 a lookup, restart or state write failed (what
succeeded is saved); 2 bad configuration (nothing was contacted).

`)
	tw := tabwriter.NewWriter(w, 1, 4, 2, ' ', 0)
	_ = envconfig.Usagef("", &Config{}, tw, `Environment:
VARIABLE	DEFAULT	MEANING
{{range .}}{{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`)
	_ = tw.Flush()
}
