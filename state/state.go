package state

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// LastRestart is when urunner last restarted the workload, zero if never.
func (s State) LastRestart(k Key) time.Time {
	var last time.Time
	for _, e := range s[k] {
		if e.Restarted.After(last) {
			last = e.Restarted
		}
	}
	return last
}

// Key names a workload: its namespace, kind and name.
type Key struct {
	Namespace string
	Kind      string
	Name      string
}

func (k Key) String() string { return k.Namespace + "/" + k.Kind + "/" + k.Name }

// Entry is what urunner remembers of one container: the image reference it
// resolved and the digest the workload was last baselined or restarted for.
type Entry struct {
	Image  string
	Digest string
	// Restarted is when urunner last restarted the workload (zero: never,
	// or before urunner recorded it). It is stored once per workload.
	Restarted time.Time
	// Platforms are, when Digest is a multi-platform index's, its child
	// manifest digests for the watched platforms; stored once per image.
	Platforms map[string]string
}

// State maps each workload to its containers' entries.
type State map[Key]map[string]Entry

// Get returns the entry of a container and whether there is one.
func (s State) Get(k Key, container string) (Entry, bool) {
	e, ok := s[k][container]
	return e, ok
}

// Clone returns a deep copy, so that a caller may apply changes to a
// snapshot and still retry from the original.
func (s State) Clone() State {
	c := make(State, len(s))
	for k, cs := range s {
		c[k] = maps.Clone(cs)
	}
	return c
}

// Keys returns the workload keys in a stable order.
func (s State) Keys() []Key {
	keys := slices.Collect(maps.Keys(s))
	slices.SortFunc(keys, func(a, b Key) int {
		return cmp.Or(
			cmp.Compare(a.Namespace, b.Namespace),
			cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.Name, b.Name),
		)
	})
	return keys
}

// Changes is one run's edits to the state, and the report of the run that
// made them. They are kept apart from the
// state they were computed on so that, when another writer updated the
// ConfigMap in between, exactly these edits can be replayed on its version.
type Changes struct {
	ops    []op
	report []byte
}

// SetReport sets the run report written beside the document, under
// ReportKey, readable with kubectl.
func (c *Changes) SetReport(b []byte) { c.report = b }

type op struct {
	key       Key
	container string // "" with forget: the whole workload
	entry     Entry
	forget    bool
}

// Put records entry for a container.
func (c *Changes) Put(k Key, container string, e Entry) {
	c.ops = append(c.ops, op{key: k, container: container, entry: e})
}

// ForgetContainer drops a container's entry.
func (c *Changes) ForgetContainer(k Key, container string) {
	c.ops = append(c.ops, op{key: k, container: container, forget: true})
}

// ForgetWorkload drops every entry of a workload.
func (c *Changes) ForgetWorkload(k Key) {
	c.ops = append(c.ops, op{key: k, forget: true})
}

// Len is the number of edits.
func (c *Changes) Len() int { return len(c.ops) }

// Apply returns s with the changes applied; s itself is not modified.
func (c *Changes) Apply(s State) State {
	out := s.Clone()
	for _, o := range c.ops {
		switch {
		case o.forget && o.container == "":
			delete(out, o.key)
		case o.forget:
			delete(out[o.key], o.container)
			if len(out[o.key]) == 0 {
				delete(out, o.key)
			}
		default:
			if out[o.key] == nil {
				out[o.key] = map[string]Entry{}
			}
			out[o.key][o.container] = o.entry
		}
	}
	return out
}
