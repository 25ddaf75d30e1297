package run

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/report"
)

// registries is the run report's view of the registry budget.
func registries(bs []registry.Budget) []report.Registry {
	out := make([]report.Registry, 0, len(bs))
	for _, b := range bs {
		r := report.Registry{Registry: b.Registry, Credential: b.Credential,
			ManifestHeads: b.ManifestHeads, ManifestGets: b.ManifestGets, BlobGets: b.BlobGets, Tokens: b.Tokens, Other: b.Other,
			Pulls: b.Pulls(), Limited: b.Limited, RetryAfter: b.RetryAfter.Seconds()}
		if rl := b.RateLimit; rl != nil {
			r.RateLimit = &report.RateLimit{Limit: rl.Limit, Remaining: rl.Remaining, Window: rl.Window.Seconds()}
		}
		out = append(out, r)
	}
	return out
}

// budgetName names a registry and credentials in the summary line:
// "docker.io", or "docker.io@shop/regcred" for a pull secret's (no space:
// it is part of an attribute's key).
func budgetName(r report.Registry) string {
	if r.Credential == "" {
		return r.Registry
	}
	return r.Registry + "@" + r.Credential
}

// budgetAttrs are the summary line's registry figures: the requests and
// pulls of the run, and per registry and credentials what it spent and
// what the registry said is left.
func budgetAttrs(rs []report.Registry) []any {
	requests, pulls := 0, 0
	per := make([]any, 0, len(rs))
	for _, r := range rs {
		requests += r.ManifestHeads + r.ManifestGets + r.BlobGets + r.Tokens + r.Other
		pulls += r.Pulls
		a := []any{"manifest_heads", r.ManifestHeads, "manifest_gets", r.ManifestGets, "blob_gets", r.BlobGets, "tokens", r.Tokens, "pulls", r.Pulls}
		if rl := r.RateLimit; rl != nil {
			a = append(a, "remaining", rl.Remaining, "limit", rl.Limit, "window_seconds", rl.Window)
		}
		if r.Limited > 0 {
			a = append(a, "rate_limited", r.Limited, "retry_after_seconds", r.RetryAfter)
		}
		per = append(per, slog.Group(budgetName(r), a...))
	}
	return []any{"registry_requests", requests, "registry_pulls", pulls, slog.Group("registries", per...)}
}

// registryMetrics writes the per-registry gauges, labelled by registry and
// credential (empty for the configured credentials, which Prometheus
// reads as no label).
func registryMetrics(b *bytes.Buffer, rs []report.Registry) {
	if len(rs) == 0 {
		return
	}
	rs = rs[:min(len(rs), maxFailingSeries)]
	family := func(name, help string, value func(r report.Registry) (float64, bool)) {
		head := false
		for _, r := range rs {
			v, ok := value(r)
			if !ok {
				continue
			}
			if !head {
				fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
				head = true
			}
			fmt.Fprintf(b, "%s{registry=%q,credential=%q} %g\n", name, r.Registry, r.Credential, v)
		}
	}
	fmt.Fprintf(b, "# HELP urunner_registry_requests Requests the last run sent to the registry, by kind.\n# TYPE urunner_registry_requests gauge\n")
	for _, r := range rs {
		for _, k := range []struct {
			kind string
			n    int
		}{{"manifest_head", r.ManifestHeads}, {"manifest_get", r.ManifestGets}, {"blob_get", r.BlobGets}, {"token", r.Tokens}, {"other", r.Other}} {
			fmt.Fprintf(b, "urunner_registry_requests{registry=%q,credential=%q,kind=%q} %d\n", r.Registry, r.Credential, k.kind, k.n)
		}
	}
	family("urunner_registry_pulls", "Pulls the last run spent as Docker Hub counts them (manifest GETs; HEADs are free).",
		func(r report.Registry) (float64, bool) { return float64(r.Pulls), true })
	family("urunner_registry_ratelimit_limit", "The registry's RateLimit-Limit, last seen.",
		func(r report.Registry) (float64, bool) {
			return rateLimitOf(r, func(l *report.RateLimit) float64 { return float64(l.Limit) })
		})
	family("urunner_registry_ratelimit_remaining", "The registry's RateLimit-Remaining, last seen.",
		func(r report.Registry) (float64, bool) {
			return rateLimitOf(r, func(l *report.RateLimit) float64 { return float64(l.Remaining) })
		})
	family("urunner_registry_ratelimit_window_seconds", "The window of the registry's rate limit.",
		func(r report.Registry) (float64, bool) {
			v, ok := rateLimitOf(r, func(l *report.RateLimit) float64 { return l.Window })
			return v, ok && v > 0
		})
	family("urunner_registry_rate_limited", "429 answers of the registry in the last run.",
		func(r report.Registry) (float64, bool) { return float64(r.Limited), true })
	family("urunner_registry_retry_after_seconds", "The longest Retry-After the registry asked for in the last run.",
		func(r report.Registry) (float64, bool) { return r.RetryAfter, r.Limited > 0 })
}

func rateLimitOf(r report.Registry, f func(*report.RateLimit) float64) (float64, bool) {
	if r.RateLimit == nil {
		return 0, false
	}
	return f(r.RateLimit), true
}

// spend is how the run spends the registries' budgets: the lookups come
// first, and once they are made, a registry short of budget (see
// registry.Resolver.Short) gets none of the run's optional reads (change
// context, a moved index's platforms). What waited is told once per
// registry (see tellWaited).
type spend struct {
	short  map[string]registry.Budget
	waited map[string]*waitedReads
}

// waitedReads counts the optional reads of one registry that waited.
type waitedReads struct{ changes, platforms int }

func newSpend(short map[string]registry.Budget) *spend {
	return &spend{short: short, waited: map[string]*waitedReads{}}
}

// wait reports whether optional reads of host wait, and counts one of
// those that do (with count).
func (s *spend) wait(host string, count func(*waitedReads)) bool {
	if s == nil {
		return false
	}
	if _, short := s.short[host]; !short {
		return false
	}
	w := s.waited[host]
	if w == nil {
		w = &waitedReads{}
		s.waited[host] = w
	}
	count(w)
	return true
}

// left says, for a reason, what host said is left of its budget.
func (s *spend) left(host string) string {
	b := s.short[host]
	if rl := b.RateLimit; rl != nil && b.Limited == 0 {
		return fmt.Sprintf("%s has %d of %d pulls left", host, rl.Remaining, rl.Limit)
	}
	return fmt.Sprintf("%s answered 429 (rate limited)", host)
}

// tellWaited notes, once per registry, what of its optional reads waited.
func (a *app) tellWaited(f *found) {
	if f.spend == nil {
		return
	}
	for _, host := range slices.Sorted(maps.Keys(f.spend.waited)) {
		w := f.spend.waited[host]
		a.note(readsWaited{budget: f.spend.short[host], changes: w.changes, platforms: w.platforms})
	}
}
