package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/state"
	"github.com/urunner/urunner/state/configmaps"
)

// forgetAttempts bounds the read-edit-write rounds of forget-ring while
// runs write the state meanwhile.
const forgetAttempts = 5

// forgetRing removes a ring from the rings urunner remembers following a
// reference: a ring that is gone for good (its namespace disabled, its
// workloads deleted) no longer holds the rings after it. Only a person
// does this: a ring missing from a listing may be a namespace that could
// not be listed. It needs rights to update urunner's state ConfigMap, and
// writes it as a run does, with the resourceVersion it read; when a run
// wrote in between, it reads again and edits that.
func (c *cli) forgetRing(ctx context.Context, stdout io.Writer, refArg, ringArg string) error {
	ring, err := policy.ParseRing(ringArg)
	if err != nil {
		return usagef("forget-ring: %v", err)
	}
	ref := refArg
	if im, err := registry.Canonical(refArg); err == nil && im.Digest == "" {
		ref = im.Named
	}
	in, err := c.readInstall(ctx)
	if err != nil {
		return err
	}
	store := state.NewStore(configmaps.New(c.api), c.namespace, in.stateCM)
	store.Retries = 1 // a conflict is read again here, and the edit made anew
	for attempt := 1; ; attempt++ {
		snap, err := store.Load(ctx)
		if err != nil {
			return err
		}
		next, err := withoutRing(snap.State, ref, ring)
		if err != nil {
			return fmt.Errorf("state ConfigMap %s: %w", store.Name(), err)
		}
		err = store.Save(ctx, snap, next, nil, c.now())
		if err == nil {
			fmt.Fprintf(stdout, "ring %d of %s forgotten: it no longer holds the rings after it\n", ring, ref)
			return nil
		}
		if !errors.Is(err, state.ErrConflict) || attempt >= forgetAttempts {
			return fmt.Errorf("forget ring %d of %s: %w", ring, ref, err)
		}
	}
}

// withoutRing returns st without ring among the rings following ref.
func withoutRing(st state.State, ref string, ring int) (state.State, error) {
	r, ok := st.Refs[ref]
	if !ok {
		return st, fmt.Errorf("no reference %s is remembered (copy it from the hold reason: registry/repository:tag)", ref)
	}
	if _, known := r.RingMembers[ring]; !known {
		known := "none"
		if len(r.RingMembers) > 0 {
			var rings []string
			for _, k := range slices.Sorted(maps.Keys(r.RingMembers)) {
				rings = append(rings, fmt.Sprint(k))
			}
			known = strings.Join(rings, ", ")
		}
		return st, fmt.Errorf("ring %d of %s is not remembered (remembered rings: %s)", ring, ref, known)
	}
	next := st.Clone()
	r = r.Clone()
	delete(r.RingMembers, ring)
	delete(r.Rings, ring)
	if len(r.RingMembers) == 0 {
		r.RingMembers = nil
	}
	if len(r.Rings) == 0 {
		r.Rings = nil
	}
	next.Refs[ref] = r
	return next, nil
}
