// Package webhook is urunner's push receiver (`urunner webhook`): an HTTP
// server that accepts registry push notifications (the CNCF distribution
// registry's envelope, GitLab's registry, Harbor, Docker Hub and a generic
// {"references": [...]}), authenticates each, and starts the run sooner by
// creating a Job from the urunner CronJob, as
// `kubectl create job --from=cronjob/urunner` would, carrying the pushed
// references in URUNNER_CONF_REFERENCES.
//
// Pushes within a short window coalesce into one Job; while any run of the
// CronJob is active the next waits, one pending at most, carrying the union
// of the references. The Jobs it creates are added to the CronJob's active
// list, so the CronJob's concurrencyPolicy Forbid keeps a scheduled run from
// overlapping a pushed one.
//
// An event that cannot be read is skipped, never failing its envelope; a
// signature's or attestation's tag names its subject by digest; while the
// CronJob is suspended pushed references are dropped; a notification is
// answered as soon as its references are queued, never after a Job.
package webhook
