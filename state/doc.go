// Package state keeps what urunner remembers between runs, keyed by image
// reference: the digest each tag pointed at when last looked up (and since
// when), the digest its workloads are believed to run, and the few
// workloads that run something else (held, paused, failed). What a
// workload itself records (its urunner.io/restarted-for annotation) is not
// repeated here, so the memory grows with references, not with workloads.
//
// The memory lives in one ConfigMap, as a versioned, gzip-compressed JSON
// document (see Encode). Store loads it and saves it with optimistic
// concurrency; a concurrent writer's newer observations are merged, never
// lost (see Merge). The package is pure data but for Store, which talks to
// the API server through the small ConfigMaps interface its caller
// implements: it imports no Kubernetes client.
package state
