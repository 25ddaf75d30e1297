// Package policy is urunner's whole decision, free of I/O: given the
// configuration, a workload as listed, what the registry said about its
// images and what urunner remembers, it says whether to restart the
// workload, hold it, or only record what was seen, and why. It imports no
// Kubernetes or registry client; its tests need no cluster.
//
// The rules, in the order they apply (README "How it decides"):
//
// Which containers are tracked (Tracked): a container whose image is on a
// watched registry and names a tag. An image pinned by digest is never
// looked up, unless urunner pinned it itself (pin mode, the restarted-for
// annotation records that digest): then its tag is tracked. A workload
// managed by Argo CD or Flux is left alone with GitOps=skip (Watched).
//
// What a container is believed to run (belief), first that applies:
//  1. the digest urunner recorded for it because it differs from the rest
//     (held, paused, a failed restart, recorded without a restart);
//  2. the digest its workload's urunner.io/restarted-for annotation
//     records for its current image: urunner restarted it for that;
//  3. nothing, on first sight: a reference never seen, or a workload
//     created since its reference was last looked up;
//  4. the digest its reference's workloads run (the state's base).
//
// Per container (Decide): a failed lookup changes nothing; first sight is a
// baseline (or, with converge, a restart when every ready pod runs another
// digest); a belief equal to the current digest is unchanged; otherwise the
// tag moved, and the move is recorded without a restart when every ready
// pod runs the new digest already, when only platforms not watched moved,
// or when the pull policy may keep the old image and PULL_POLICY_MISMATCH
// is skip. Any other move restarts the workload, once for all its moved
// containers, unless a hold applies (Holds: paused, cooldown, maintenance
// window), and unless the run's restarts, with those of the cap's window,
// would be more than the cap allows (Run.Cap). A held move keeps the
// belief, so a later run applies it.
package policy
