// Package notify tells people what a run did: one message per run that
// restarted something or failed, posted to a generic JSON webhook, a
// Slack-compatible incoming webhook, or both.
//
// A notification is a courtesy, not part of the run's outcome: a failing
// endpoint costs one warning line and never changes the exit code. Webhook
// URLs are secrets (a Slack URL's path is its credential), so they are named
// in logs and errors by scheme and host only.
package notify
