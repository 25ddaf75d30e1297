package policy

// Watched says why w is left alone entirely ("" when it is not): the
// Deployment whose template Argo Rollouts run; with GitOps=skip, a
// workload a GitOps controller manages. It is neither looked up nor
// restarted.
func Watched(s Settings, w *Workload) string {
	if w.TemplateOf != "" {
		// Argo takes a change of this template as a new revision of its
		// Rollouts: restarting it too would restart them twice.
		return "the pod template of Rollout " + w.TemplateOf + " (spec.workloadRef): restarted, pinned and rolled back through the Rollout"
	}
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
