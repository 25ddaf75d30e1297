package state

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

func quarantineDocs(qs map[string]Quarantine) map[string]quarantineDoc {
	if len(qs) == 0 {
		return nil
	}
	out := make(map[string]quarantineDoc, len(qs))
	for d, q := range qs {
		out[d] = quarantineDoc{Why: q.Why, At: unix(q.At), Refs: q.Refs, Failed: unixTimes(q.Failed),
			Lifted: unixTimes(q.Lifted), LiftedAll: unix(q.LiftedAll)}
	}
	return out
}

func unixTimes(m map[string]time.Time) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, t := range m {
		out[k] = unix(t)
	}
	return out
}

// migrateQuarantine moves a version 3 reference's quarantines into s: each
// becomes a quarantine of the digest, failed with the reference when it
// was last checked. A version 4 reference has none.
func migrateQuarantine(version int, ref string, d refDoc, s *State) error {
	if len(d.Quarantine) == 0 {
		return nil
	}
	if version != 3 {
		return fmt.Errorf("%w: refs[%q]: quarantine is a version 3 field, quarantines are top-level since version 4", ErrCorrupt, ref)
	}
	for _, dg := range slices.Sorted(maps.Keys(d.Quarantine)) {
		if !digestRE.MatchString(dg) {
			return fmt.Errorf("%w: refs[%q]: quarantine of %q, not a sha256 digest", ErrCorrupt, ref, dg)
		}
		q := Quarantine{Why: BoundError(d.Quarantine[dg]), At: fromUnix(d.Checked)}
		if s.Quarantines == nil {
			s.Quarantines = map[string]Quarantine{}
		}
		if prev, ok := s.Quarantines[dg]; ok {
			q = mergeQuarantine(prev, q)
		}
		q.AddRef(ref)
		s.Quarantines[dg] = q
	}
	return nil
}

// readQuarantines reads a version 4 document's quarantines into s.
func (s *State) readQuarantines(version int, docs map[string]quarantineDoc) error {
	if len(docs) == 0 {
		return nil
	}
	if version < 4 {
		return fmt.Errorf("%w: version %d with version 4 field quarantines", ErrCorrupt, version)
	}
	s.Quarantines = make(map[string]Quarantine, len(docs))
	for dg, qd := range docs {
		if err := qd.validate(dg); err != nil {
			return err
		}
		s.Quarantines[dg] = Quarantine{Why: BoundError(qd.Why), At: fromUnix(qd.At), Refs: slices.Compact(slices.Sorted(slices.Values(qd.Refs))),
			Failed: fromUnixTimes(qd.Failed), Lifted: fromUnixTimes(qd.Lifted), LiftedAll: fromUnix(qd.LiftedAll)}
	}
	return nil
}

func fromUnixTimes(m map[string]int64) map[string]time.Time {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]time.Time, len(m))
	for k, t := range m {
		out[k] = fromUnix(t)
	}
	return out
}

func (q quarantineDoc) validate(dg string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: quarantines[%q]: %s", ErrCorrupt, dg, fmt.Sprintf(format, args...))
	}
	if !digestRE.MatchString(dg) {
		return bad("not a sha256 digest")
	}
	if q.At < 0 || q.LiftedAll < 0 {
		return bad("at %d, liftedAll %d: not times", q.At, q.LiftedAll)
	}
	if len(q.Refs) > maxQuarantineRefs {
		return bad("%d refs, at most %d", len(q.Refs), maxQuarantineRefs)
	}
	for _, ref := range q.Refs {
		if !validRefKey(ref) {
			return bad("ref %q is not registry/repository:tag", ref)
		}
	}
	for name, m := range map[string]map[string]int64{"failed": q.Failed, "lifted": q.Lifted} {
		for ns, t := range m {
			if ns == "" || t <= 0 {
				return bad("%s[%q] = %d is not namespace → time", name, ns, t)
			}
		}
	}
	return nil
}
