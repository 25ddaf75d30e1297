package policy

import "github.com/urunner/urunner/state"

// belief is what urunner holds a container runs, and why.
type belief struct {
	digest string // "" on first sight
	source string
}

// Sources of a belief, for messages.
const (
	fromRecord       = "recorded"
	fromRestartedFor = "restarted-for annotation"
	fromFirstSight   = "first sight"
	fromBase         = "the reference's last run"
)

// believe applies the belief rules (package doc) to container c of w.
func believe(w *Workload, c Container, mem state.State) belief {
	r, known := mem.Refs[c.Ref]
	record := recorded(w, c)
	if len(r.Except) > 0 {
		// Few references have exceptions: the key is built only for them.
		if e, ok := r.Except[containerKey(w, c.Name)]; ok && e.Record == record {
			return belief{e.Runs, fromRecord}
		}
	}
	if record != "" {
		return belief{record, fromRestartedFor}
	}
	if !known || r.Digest == "" {
		return belief{"", fromFirstSight}
	}
	if !r.Checked.IsZero() && w.Created.After(r.Checked) {
		// Created since the reference was last looked up: its pods
		// pulled whatever the tag named then, which is not known. Both
		// times have whole seconds: a workload created in the second of
		// the listing counts as listed.
		return belief{"", fromFirstSight}
	}
	return belief{r.BaseDigest(), fromBase}
}

// recorded is the digest w's restarted-for annotation records for c's
// current reference, "" for none. A record without a reference (urunner
// before 0.3) counts for the current one.
func recorded(w *Workload, c Container) string {
	if rec, ok := w.RestartedFor[c.Name]; ok && (rec.Ref == c.Ref || rec.Ref == "") {
		return rec.Digest
	}
	return ""
}

func containerKey(w *Workload, container string) string {
	return state.WorkloadContainer(w.Namespace, w.Kind, w.Name, container)
}

// Believed returns the digest urunner believes container c of w runs, ""
// on first sight: what `kubectl urunner why` and the tests read.
func Believed(w *Workload, c Container, mem state.State) string { return believe(w, c, mem).digest }
