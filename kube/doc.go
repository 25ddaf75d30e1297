// Package kube is what urunner reads from and does to a cluster: it lists the
// enabled namespaces and their workloads as small value types, and patches a
// workload's pod template to restart it.
package kube
