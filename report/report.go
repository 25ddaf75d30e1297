// Package report is the run report: one JSON document per run, printed with
// URUNNER_CONF_REPORT=json, kept in the state ConfigMap (key last-run.json),
// pushed as Pushgateway gauges, and read back by kubectl urunner status.
// Both sides use these types, so the document has one definition.
package report

import (
	"time"

	"github.com/urunner/urunner/notify"
)

// Version is the report's version; a reader warns on another.
const Version = 2

// Run is one run's report.
type Run struct {
	Version          int              `json:"version"`
	Cluster          string           `json:"cluster,omitempty"`
	Started          time.Time        `json:"started"`
	Duration         float64          `json:"durationSeconds"`
	ExitCode         int              `json:"exitCode"`
	DryRun           bool             `json:"dryRun"`
	Namespaces       int              `json:"namespaces"`
	Workloads        int              `json:"workloads"`
	Images           int              `json:"images"`
	Resolved         int              `json:"resolved"`
	Changed          int              `json:"changed"`
	Restarted        int              `json:"restarted"`
	Baselined        int              `json:"baselined"`
	Held             int              `json:"held"`
	Failed           int              `json:"failed"`
	LookupFailures   int              `json:"lookupFailures"`
	RestartFailures  int              `json:"restartFailures"`
	CapExceeded      bool             `json:"capExceeded"`
	RolloutsFailed   int              `json:"rolloutsFailed"`
	RolloutsVerified int              `json:"rolloutsVerified"`
	LastSuccess      *time.Time       `json:"lastSuccess,omitempty"`
	Requests         map[string]int   `json:"registryRequests"` // by method, all hosts
	Registries       []Registry       `json:"registries,omitempty"`
	Restarts         []notify.Restart `json:"restarts"`
	Waiting          []notify.Restart `json:"waiting,omitempty"`
	Failures         []notify.Failure `json:"failures"`
	Rollouts         []Rollout        `json:"rollouts,omitempty"`
	Retractions      []Retraction     `json:"retractions,omitempty"`
	Rings            []RingProgress   `json:"rings,omitempty"`
	FailingImages    []FailingImage   `json:"failingImages,omitempty"`
	Undelivered      []Undelivered    `json:"undelivered,omitempty"`
	// Forecasts say, for each workload a move is due for and held (every
	// affected workload in a dry run), which run is foreseen to restart it
	// and what holds it until then (see policy.Foresee).
	Forecasts []Forecast `json:"forecasts,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// Registry is what a run spent on one registry with one set of
// credentials, and what the registry said is left of its rate limit.
type Registry struct {
	Registry string `json:"registry"`
	// Credential names the pull secret whose credentials were used; empty
	// for the registry's configured credentials, or none.
	Credential    string `json:"credential,omitempty"`
	ManifestHeads int    `json:"manifestHeads"`
	ManifestGets  int    `json:"manifestGets"`
	BlobGets      int    `json:"blobGets"`
	Tokens        int    `json:"tokenRequests"`
	Other         int    `json:"otherRequests"`
	// Pulls is what Docker Hub counts against its rate limit: manifest
	// GETs (HEADs are free).
	Pulls     int        `json:"pulls"`
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
	// Limited counts 429 answers; RetryAfter is the longest Retry-After
	// one of them asked for.
	Limited    int     `json:"rateLimited,omitempty"`
	RetryAfter float64 `json:"retryAfterSeconds,omitempty"`
}

// RateLimit is the last RateLimit-Limit and RateLimit-Remaining a registry
// sent; Window is 0 when it named none.
type RateLimit struct {
	Limit     int     `json:"limit"`
	Remaining int     `json:"remaining"`
	Window    float64 `json:"windowSeconds,omitempty"`
}

// Undelivered is a restarted container whose ready pods run another digest
// than the one it was restarted for.
type Undelivered struct {
	Namespace    string   `json:"namespace"`
	Kind         string   `json:"kind"`
	Name         string   `json:"name"`
	Container    string   `json:"container"`
	Image        string   `json:"image"`
	RestartedFor string   `json:"restartedFor"`
	Runs         []string `json:"runs"`
	Cause        string   `json:"cause"`
	// Gated is true when a gate judged the digest: then it is a failure.
	Gated bool `json:"gated,omitempty"`
}

// Rollout is one verified rollout.
type Rollout struct {
	Namespace  string `json:"namespace"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Result     string `json:"result"`
	Message    string `json:"message"`
	RolledBack bool   `json:"rolledBack,omitempty"`
}

// Retraction is a digest a tag left while it soaked.
type Retraction struct {
	Image     string    `json:"image"`
	From      string    `json:"retracted"`
	To        string    `json:"now"`
	FirstSeen time.Time `json:"firstSeen"`
}

// RingProgress is how far a digest has rolled through the rings following
// its image: the highest ring running it healthily (-1: none yet).
type RingProgress struct {
	Image   string `json:"image"`
	Digest  string `json:"digest"`
	Reached int    `json:"reached"`
	Rings   int    `json:"rings"`
}

// FailingImage is a reference whose lookups have failed since a time.
type FailingImage struct {
	Image string    `json:"image"`
	Since time.Time `json:"since"`
}

// Forecast is what the policy foresees for one workload a move is due for:
// the scheduled run that restarts it, the holds it meets on the way, or what
// it waits for that time alone does not bring.
type Forecast struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	// Image and Digest are the reference (the first moved container's) and
	// the digest it restarts onto.
	Image  string `json:"image"`
	Digest string `json:"digest"`
	// Restarts is the run foreseen to restart it; null when no run within
	// the horizon does (Waits says why).
	Restarts *time.Time `json:"restarts"`
	// Holds are the holds it meets before, in order, each from the first
	// run it holds at.
	Holds []ForecastHold `json:"holds,omitempty"`
	// Waits is what it waits for that time alone does not bring (an
	// approval, a quarantine lifted, a signature, a resumed rollout, a
	// ring that waits for one of those, a raised cap), in the words of
	// the hold; WaitsRule is the hold's name.
	Waits     string `json:"waits,omitempty"`
	WaitsRule string `json:"waitsRule,omitempty"`
	// ForeseenAt is the time of the run that foresaw it.
	ForeseenAt time.Time `json:"foreseenAt"`
}

// ForecastHold is one hold a forecast meets: its rule (paused, quarantine,
// signature, soak, ring, cooldown, window, approval, cap), its reason, the
// first run it holds at, and when time alone lifts it (null if it does not).
type ForecastHold struct {
	Rule  string     `json:"rule"`
	Why   string     `json:"why"`
	From  time.Time  `json:"from"`
	Until *time.Time `json:"until,omitempty"`
}
