// Package state keeps what urunner remembers between runs: for every workload
// and container, the image and digest it was last baselined or restarted for.
//
// The memory lives in one ConfigMap, as a versioned, gzip-compressed JSON
// document (see Document). The package loads it, applies one run's changes,
// and saves it with optimistic concurrency, so that a concurrent writer never
// loses an entry. It knows nothing of registries or workload kinds.
package state
