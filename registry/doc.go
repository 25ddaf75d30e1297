// Package registry turns image references into the digests their tags
// point at now. It normalises references, wires regclient with each
// registry's credentials and TLS settings, and resolves every unique
// reference with exactly one HEAD request, a bounded number at a time.
package registry
