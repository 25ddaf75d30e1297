// Package kube is what urunner reads from and does to a cluster: it lists
// the watched namespaces' workloads as small values, reads what their pods
// run and which pull secrets they name, patches a workload to restart it,
// follows its rollout and rolls it back. Each workload kind is one entry
// of the kinds table (kinds.go): adding a kind is adding an entry.
package kube
