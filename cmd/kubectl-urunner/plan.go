package main

import (
	"regexp"
	"slices"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/urunner/urunner/registry"
)

// The variables a Job started here sets in urunner's container, replacing
// the CronJob's own values (see the README's Configuration).
const (
	// scheduleEnv is the CronJob's schedule, which the run's forecasts
	// step over.
	scheduleEnv = "URUNNER_CONF_SCHEDULE"
	// referencesEnv restricts the run to the references it names.
	referencesEnv = "URUNNER_CONF_REFERENCES"
	// planDigestEnv is the digest a dry run takes as just pushed to the
	// one reference of referencesEnv.
	planDigestEnv = "URUNNER_CONF_PLAN_DIGEST"
)

var planDigestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// planTarget is what `plan IMAGE[@DIGEST]` asks about: the one reference
// the dry run looks up, and the digest it takes as just pushed to it ("":
// the one the registry serves). The zero value plans for every reference.
type planTarget struct {
	ref    string // canonical registry/repository:tag
	digest string
}

// parsePlanTarget reads plan's argument: an image as the pods' specs name
// it (registry/repository:tag; no tag is :latest, Docker Hub names gain
// docker.io/library/ as Kubernetes pulls them), optionally followed by
// @sha256:<64 hex>.
func parsePlanTarget(arg string) (planTarget, error) {
	image, digest, pinned := strings.Cut(arg, "@")
	im, err := registry.Canonical(image)
	if err != nil || im.Ref.Tag == "" {
		return planTarget{}, usagef("plan: %q is not an image registry/repository:tag[@sha256:DIGEST]", arg)
	}
	if pinned && !planDigestRE.MatchString(digest) {
		return planTarget{}, usagef("plan: the digest of %q: want sha256: and 64 lowercase hex characters, got %q", arg, digest)
	}
	return planTarget{ref: im.Named, digest: digest}, nil
}

// scheduleOf is the CronJob's schedule as the run reads it: spec.schedule,
// prefixed with CRON_TZ=<spec.timeZone> when the CronJob has a time zone,
// as the chart renders URUNNER_CONF_SCHEDULE.
func scheduleOf(cj *batchv1.CronJob) string {
	if tz := cj.Spec.TimeZone; tz != nil && *tz != "" {
		return "CRON_TZ=" + *tz + " " + cj.Spec.Schedule
	}
	return cj.Spec.Schedule
}

// setEnv sets a plain variable of the container, in place of every value
// it had (the last of several would win in a pod; one is clearer).
func setEnv(c *corev1.Container, name, value string) {
	unsetEnv(c, name)
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}

func unsetEnv(c *corev1.Container, name string) {
	c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
}
