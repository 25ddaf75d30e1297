package state

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestChangesApply(t *testing.T) {
	web := Key{"shop", "Deployment", "web"}
	worker := Key{"shop", "Deployment", "worker"}
	e1 := Entry{Image: "r/a:latest", Digest: d1}
	e2 := Entry{Image: "r/a:latest", Digest: d2}
	for _, tc := range []struct {
		name  string
		base  State
		edits func(*Changes)
		want  State
	}{
		{
			name:  "put creates the workload",
			base:  State{},
			edits: func(c *Changes) { c.Put(web, "app", e1) },
			want:  State{web: {"app": e1}},
		},
		{
			name:  "put replaces only its container",
			base:  State{web: {"app": e1, "side": e1}},
			edits: func(c *Changes) { c.Put(web, "app", e2) },
			want:  State{web: {"app": e2, "side": e1}},
		},
		{
			name:  "forgetting the last container forgets the workload",
			base:  State{web: {"app": e1}, worker: {"app": e1}},
			edits: func(c *Changes) { c.ForgetContainer(web, "app") },
			want:  State{worker: {"app": e1}},
		},
		{
			name:  "forget workload leaves others",
			base:  State{web: {"app": e1}, worker: {"app": e2}},
			edits: func(c *Changes) { c.ForgetWorkload(web) },
			want:  State{worker: {"app": e2}},
		},
		{
			name: "replayed on another writer's state, its entries survive",
			base: State{worker: {"app": e2}},
			edits: func(c *Changes) {
				c.Put(web, "app", e1)
			},
			want: State{web: {"app": e1}, worker: {"app": e2}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Changes
			tc.edits(&c)
			before := tc.base.Clone()
			got := c.Apply(tc.base)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Apply (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.base); diff != "" {
				t.Errorf("Apply modified its input (-before +after):\n%s", diff)
			}
		})
	}
}
