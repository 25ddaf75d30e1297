package run

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/signature"
	"github.com/urunner/urunner/state"
)

// options is the configuration in the form the stages read it, parsed
// once by parseOptions before anything is contacted: no stage parses a
// variable again. Config keeps the settings that need no parsing.
type options struct {
	// discover
	kinds      []string    // URUNNER_CONF_WORKLOAD_KINDS
	namespaces []string    // URUNNER_CONF_NAMESPACES; nil in cluster mode
	pushed     *pushedRefs // URUNNER_CONF_REFERENCES; nil when every reference is looked up
	// resolve
	hosts  []registry.Host   // the watched registries, with their credentials providers
	accept []string          // DOCKER_API_ACCEPT_HEADER; nil for every manifest type
	signer *signature.Policy // nil without a signature policy
	// decide, act, record
	settings policy.Settings
	// foresee
	schedule policy.Schedule // URUNNER_CONF_SCHEDULE; nil when unset
	plan     *planDigest     // URUNNER_CONF_PLAN_DIGEST; nil when unset
}

// parseOptions parses c, which validate passed, into the stages' options.
// lookup reads the variables a registries file names. Every error is the
// configuration's: exit code 2, nothing contacted.
func parseOptions(c *Config, lookup func(string) (string, bool)) (options, error) {
	var o options
	var err error
	if o.kinds, err = c.kinds(); err != nil {
		return options{}, err
	}
	if o.namespaces, err = c.namespaces(); err != nil {
		return options{}, err
	}
	if o.pushed, err = c.references(); err != nil {
		return options{}, err
	}
	win, err := policy.ParseWindow(c.Window)
	if err != nil {
		return options{}, badConfig("URUNNER_CONF_WINDOW: %v", err)
	}
	platforms, err := c.platforms()
	if err != nil {
		return options{}, err
	}
	o.settings = c.settings(win, platforms)
	if o.hosts, err = c.hosts(lookup); err != nil {
		return options{}, err
	}
	o.accept = splitList(c.AcceptHeader)
	if o.signer, err = c.signaturePolicy(); err != nil {
		return options{}, err
	}
	if o.schedule, err = c.schedule(); err != nil {
		return options{}, err
	}
	if o.plan, err = c.planDigest(o.pushed); err != nil {
		return options{}, err
	}
	return o, nil
}

// schedule parses URUNNER_CONF_SCHEDULE as Kubernetes parses a CronJob's
// (the same library), with its CRON_TZ= prefix for spec.timeZone.
func (c *Config) schedule() (policy.Schedule, error) {
	if strings.TrimSpace(c.Schedule) == "" {
		return nil, nil
	}
	s, err := cron.ParseStandard(strings.TrimSpace(c.Schedule))
	if err != nil {
		return nil, badConfig("URUNNER_CONF_SCHEDULE: %q: %v", c.Schedule, err)
	}
	return s, nil
}

// planDigest is a dry run's "what if": the digest a tag is taken to point
// at, as if just pushed.
type planDigest struct {
	ref, digest string
}

// planDigest parses URUNNER_CONF_PLAN_DIGEST, which only a dry run of one
// tag (URUNNER_CONF_REFERENCES) takes: a real run must never restart onto
// a digest it did not look up.
func (c *Config) planDigest(pushed *pushedRefs) (*planDigest, error) {
	if c.PlanDigest == "" {
		return nil, nil
	}
	hex, ok := strings.CutPrefix(c.PlanDigest, "sha256:")
	if !ok || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return nil, badConfig("URUNNER_CONF_PLAN_DIGEST: want sha256:<64 lowercase hex>, got %q", c.PlanDigest)
	}
	if !c.DryRun {
		return nil, badConfig("URUNNER_CONF_PLAN_DIGEST: only a dry run (URUNNER_CONF_DRY_RUN=true) takes a digest it did not look up")
	}
	if pushed == nil || len(pushed.tags) != 1 || len(pushed.subjects) != 0 {
		return nil, badConfig("URUNNER_CONF_PLAN_DIGEST: URUNNER_CONF_REFERENCES must name exactly one registry/repository:tag, the tag it is taken for")
	}
	for ref := range pushed.tags {
		return &planDigest{ref: ref, digest: c.PlanDigest}, nil
	}
	return nil, nil
}

// hostConfigs returns every watched registry: the single one of the
// original variables (mapped by package registry), and those of the
// registries file, whose credentials named by variable lookup reads
// (os.LookupEnv but in tests).
func (c *Config) hostConfigs(lookup func(string) (string, bool)) ([]registry.HostConfig, error) {
	var out []registry.HostConfig
	if c.Registry != "" {
		hc, err := registry.FromOriginalVariables(registry.OriginalVariables{
			Host: c.Registry, Type: c.RegistryType, Verify: c.Verify, Secrets: c.OriginalSecrets,
		})
		if err != nil {
			return nil, badConfig("%v", err)
		}
		out = append(out, hc)
	}
	if c.RegistriesFile != "" {
		hcs, err := registry.LoadHostsFile(c.RegistriesFile, lookup)
		if err != nil {
			return nil, badConfig("URUNNER_CONF_REGISTRIES_FILE: %v", err)
		}
		out = append(out, hcs...)
	}
	if len(out) == 0 {
		return nil, badConfig("URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH: required (or URUNNER_CONF_REGISTRIES_FILE): the registry whose images urunner watches, e.g. registry.example.com:5000")
	}
	seen := map[string]bool{}
	for _, hc := range out {
		if seen[hc.Host] {
			return nil, badConfig("registry %s is configured twice (URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH and URUNNER_CONF_REGISTRIES_FILE)", hc.Host)
		}
		seen[hc.Host] = true
	}
	return out, nil
}

// hosts builds the Resolver's hosts, with their credential providers.
func (c *Config) hosts(lookup func(string) (string, bool)) ([]registry.Host, error) {
	hcs, err := c.hostConfigs(lookup)
	if err != nil {
		return nil, err
	}
	var out []registry.Host
	for _, hc := range hcs {
		h, err := registry.NewHost(hc)
		if err != nil {
			return nil, badConfig("%v", err)
		}
		out = append(out, h)
	}
	return out, nil
}

// kinds parses URUNNER_CONF_WORKLOAD_KINDS.
func (c *Config) kinds() ([]string, error) {
	var out []string
	for _, k := range strings.Split(c.Kinds, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if !slices.Contains(kube.Kinds(), k) {
			return nil, badConfig("URUNNER_CONF_WORKLOAD_KINDS: want some of %s, got %q", strings.Join(kube.Kinds(), ", "), k)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, badConfig("URUNNER_CONF_WORKLOAD_KINDS: name at least one of %s", strings.Join(kube.Kinds(), ", "))
	}
	return out, nil
}

// namespaces parses URUNNER_CONF_NAMESPACES: nil in cluster mode.
func (c *Config) namespaces() ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, ns := range splitList(c.Namespaces) {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, badConfig("URUNNER_CONF_NAMESPACES: %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		if !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	return out, nil
}

// pushedRefs is what URUNNER_CONF_REFERENCES names: tags, and subjects
// by digest (registry/repository@sha256:<hex>, what the push of a
// signature or attestation names), which stand for every reference of
// that repository whose stored digest is the subject.
type pushedRefs struct {
	tags     map[string]bool
	subjects map[string]map[string]bool // registry/repository → digests
}

// references parses URUNNER_CONF_REFERENCES; nil when every reference is
// looked up.
func (c *Config) references() (*pushedRefs, error) {
	var out *pushedRefs
	for _, r := range splitList(c.References) {
		im, err := registry.Canonical(r)
		tagged := err == nil && im.Digest == ""
		subject := err == nil && im.Ref.Tag == "" && strings.HasPrefix(im.Digest, "sha256:")
		if !tagged && !subject {
			return nil, badConfig("URUNNER_CONF_REFERENCES: %q is neither a registry/repository:tag reference nor a registry/repository@sha256:<hex> subject", r)
		}
		if out == nil {
			out = &pushedRefs{tags: map[string]bool{}, subjects: map[string]map[string]bool{}}
		}
		name := im.Match
		if tagged {
			out.tags[name] = true
			continue
		}
		if out.subjects[name] == nil {
			out.subjects[name] = map[string]bool{}
		}
		out.subjects[name][im.Digest] = true
	}
	return out, nil
}

// expand returns the references to look up: the tags, and each stored
// reference of a subject's repository whose digest is the subject (a
// signature pushed after its image's run makes that digest verifiable).
// A subject no stored reference has leaves nothing to do; unmatched
// lists those.
func (p *pushedRefs) expand(st state.State) (refs map[string]bool, unmatched []string) {
	refs = maps.Clone(p.tags)
	matched := map[string]bool{}
	for key, r := range st.Refs {
		name := registry.MatchName(key)
		repo := name[:strings.LastIndex(name, ":")]
		if p.subjects[repo][r.Digest] {
			refs[name] = true
			matched[repo+"@"+r.Digest] = true
		}
	}
	for repo, ds := range p.subjects {
		for d := range ds {
			if !matched[repo+"@"+d] {
				unmatched = append(unmatched, repo+"@"+d)
			}
		}
	}
	slices.Sort(unmatched)
	return refs, unmatched
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// settings are the policy's knobs, with the window and platforms parsed.
func (c *Config) settings(win *policy.Window, platforms []string) policy.Settings {
	return policy.Settings{
		Pin:         c.RestartMode == "pin",
		SkipCached:  c.PullPolicy == "skip",
		Converge:    c.FirstRun == "converge",
		Platforms:   platforms,
		GitOps:      c.GitOps,
		Cooldown:    c.Cooldown,
		Window:      win,
		MaxRestarts: c.MaxRestarts,
		Soak:        c.Soak,
		Approval:    c.Approval,

		MaxRestartsWindow: c.MaxRestartsWindow,
		RequireSignature:  c.SignatureKeys != "" || c.SignatureRoot != "",
		SignatureGrace:    c.SignatureGrace,
		Quarantine:        c.VerifyRollout,
	}
}

// signaturePolicy loads the signature policy, nil when none is configured.
func (c *Config) signaturePolicy() (*signature.Policy, error) {
	if c.SignatureKeys == "" && c.SignatureRoot == "" {
		return nil, nil
	}
	keys, err := keyFiles(splitList(c.SignatureKeys))
	if err != nil {
		return nil, badConfig("URUNNER_CONF_SIGNATURE_KEYS: %v", err)
	}
	for _, k := range keys {
		if _, err := signature.LoadPolicy(signature.Config{KeyFiles: []string{k}}); err != nil {
			return nil, badConfig("URUNNER_CONF_SIGNATURE_KEYS: %v", err)
		}
	}
	sc := signature.Config{KeyFiles: keys, TrustedRootFile: c.SignatureRoot, WithoutTransparencyLog: !c.SignatureTlog}
	if c.SignatureRoot != "" {
		sc.Identities = []signature.Identity{{Issuer: c.SignatureIssuer, SubjectRegexp: c.SignatureSubject}}
	}
	p, err := signature.LoadPolicy(sc)
	if errors.Is(err, signature.ErrNoTransparencyLog) {
		return nil, badConfig("URUNNER_CONF_SIGNATURE_TRUSTED_ROOT: %v; set URUNNER_CONF_SIGNATURE_TLOG=false to trust keyless signatures on a timestamp alone", err)
	}
	if err != nil {
		return nil, badConfig("URUNNER_CONF_SIGNATURE_TRUSTED_ROOT (with _ISSUER and _SUBJECT): %v", err)
	}
	return p, nil
}

// keyFiles expands the directories among paths into the files they hold
// (a mounted Secret: every key a file), skipping hidden entries such as
// the ..data links Kubernetes adds.
func keyFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		n := len(out)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			f := filepath.Join(p, e.Name())
			if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
				out = append(out, f)
			}
		}
		if len(out) == n {
			return nil, fmt.Errorf("directory %s holds no key file", p)
		}
	}
	return out, nil
}

// platforms parses URUNNER_CONF_PLATFORMS.
func (c *Config) platforms() ([]string, error) {
	out := splitList(c.Platforms)
	for _, p := range out {
		if _, err := registry.ParsePlatform(p); err != nil {
			return nil, badConfig("URUNNER_CONF_PLATFORMS: %v", err)
		}
	}
	return out, nil
}
