// Package testground starts the real parts that urunner's end-to-end tests,
// demo and benchmarks run against, all on loopback: etcd, kube-apiserver and
// kube-controller-manager as processes built by hack/tools.sh, and an OCI
// registry (olareg) in-process, with request counting and fault injection.
//
// Nothing here is a stand-in: the API server runs with TLS, RBAC and token
// authentication, and the registry speaks the OCI distribution API, so what a
// test observes is what urunner does to a cluster and a registry.
package testground
