package policy

// Watched says why w is left alone entirely ("" when it is not): with
// GitOps=skip, a workload a GitOps controller manages is neither looked up
// nor restarted.
func Watched(s Settings, w *Workload) string {
	if s.GitOps == "skip" && w.GitOps != "" {
		return "managed by " + w.GitOps + " (URUNNER_CONF_GITOPS=skip)"
	}
	return ""
}

// Tracked returns the reference looked up for container c of w, or "" and
// why it is not tracked.
func Tracked(s Settings, w *Workload, c Container) (ref, why string) {
	switch {
	case c.Named == "":
		return "", "not a registry image reference"
	case !c.Watched:
		return "", "registry not watched"
	case c.ImageDigest == "":
		return c.Named, ""
	case w.RestartedFor[c.Name] == Record{Ref: c.Named, Digest: c.ImageDigest}:
		// urunner pinned it (pin mode, or a restart a gate judged): its
		// tag is what is followed, whatever the mode is now.
		return c.Named, ""
	}
	return "", "pinned by digest"
}
