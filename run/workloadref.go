package run

import (
	"maps"
	"slices"
	"strings"
)

// templatesUnread holds what is remembered of the namespaces of Rollouts
// whose pod template could not be read from the Deployment their
// spec.workloadRef names (missing, forbidden, another kind): such a
// Rollout is not restarted, and its digests are kept as a namespace that
// did not list keeps them. Each is a failure of the run.
func (a *app) templatesUnread(f *found, unread map[string]error) {
	for _, key := range slices.Sorted(maps.Keys(unread)) {
		ns, name, _ := strings.Cut(key, "/")
		f.listing.Complete = false
		f.listing.Failed[ns] = true
		a.note(templateUnread{namespace: ns, rollout: name, err: unread[key]})
	}
}

// templateUnread: a watched Rollout whose pod template could not be read.
type templateUnread struct {
	namespace, rollout string
	err                error
}

func (f templateUnread) tell(r *reporter) {
	r.log.Error("Rollout not restarted: its pod template could not be read; what urunner remembers of its namespace is kept",
		"namespace", f.namespace, "rollout", f.rollout, "error", f.err)
	r.o.namespaceErrors++
	r.o.failure(stageDiscover, failure{Namespace: f.namespace, Kind: "Rollout", Name: f.rollout, Error: f.err.Error()})
}
