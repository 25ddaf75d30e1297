package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/state"
	"github.com/urunner/urunner/state/configmaps"
)

// lift lifts a quarantine everywhere: it records, in the state ConfigMap,
// that the digest's quarantine was lifted now. A run that read the state
// before and saves after merges the lift in (see state.Merge); a later
// failed rollout of the digest quarantines it again. Writing the state
// ConfigMap is the right it needs: a tenant who may annotate its own
// workloads lifts a quarantine only in its namespace.
func (c *cli) lift(ctx context.Context, out io.Writer, arg string) error {
	hex, err := policy.ParseLift(arg) // checked before connecting
	if err != nil {
		return usagef("lift: %v", err)
	}
	in, err := c.readInstall(ctx)
	if err != nil {
		return err
	}
	store := state.NewStore(configmaps.New(c.api), c.namespace, in.stateCM)
	snap, err := store.Load(ctx)
	if err != nil {
		return err
	}
	digest, err := quarantinedDigest(snap.State, hex)
	if err != nil {
		return err
	}
	now := c.now().UTC()
	next := snap.State.Clone()
	q := next.Quarantines[digest]
	// Later than the failure it lifts, even from a clock behind the one
	// that recorded it.
	q.LiftedAll = now
	if !now.After(q.At) {
		q.LiftedAll = q.At.Add(time.Second)
	}
	next.Quarantines[digest] = q
	state.BoundQuarantines(next.Quarantines, now)
	if err := store.Save(ctx, snap, next, nil, now); err != nil {
		return err
	}
	fmt.Fprintf(out, "lifted the quarantine of %s everywhere (it failed: %s); a new failed rollout of it quarantines it again\n", digest, q.Why)
	return nil
}

// quarantinedDigest is the one quarantined digest hex names that holds
// somewhere.
func quarantinedDigest(st state.State, hex string) (string, error) {
	var found []string
	for _, d := range slices.Sorted(maps.Keys(st.Quarantines)) {
		if strings.HasPrefix(strings.TrimPrefix(d, "sha256:"), hex) && !st.Quarantines[d].LiftedEverywhere() {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("lift: no quarantined digest starts with %s (kubectl urunner status lists them)", hex)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("lift: %s names %d quarantined digests (%s): give more of it", hex, len(found), strings.Join(found, ", "))
}
