package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/state"
)

// printPlan writes the dry run's table: every tracked image, grouped by
// the digest stored for its workloads and what the run would do to them.
func printPlan(w io.Writer, st state.State, obs []observation, results map[string]registry.Result, p plan) {
	type cell struct {
		key       state.Key
		container string
	}
	action := map[cell]string{}
	for _, r := range p.Restarts {
		for _, c := range r.Changes {
			action[cell{keyOf(r.Workload), c.Container}] = "restart"
		}
	}
	for _, r := range p.Paused {
		for _, c := range r.Changes {
			action[cell{keyOf(r.Workload), c.Container}] = "wait (paused)"
		}
	}
	for _, c := range p.Cached {
		k := cell{keyOf(c.Workload), c.Container}
		if action[k] == "" {
			action[k] = "record (pull policy " + c.PullPolicy + ")"
		} else {
			action[k] += " (pull policy " + c.PullPolicy + "!)"
		}
	}
	type row struct{ image, stored, current, action string }
	rows := map[row][]string{}
	for _, o := range obs {
		k := keyOf(o.Workload)
		for _, c := range o.Containers {
			if c.Image == "" {
				continue
			}
			r := row{image: c.Image, stored: "-", current: "lookup failed"}
			old, known := st.Get(k, c.Name)
			if known && old.Image == c.Image {
				r.stored = short(old.Digest)
			}
			if res := results[c.Image]; res.Err == nil {
				r.current = short(res.Digest)
			}
			switch a := action[cell{k, c.Name}]; {
			case a != "":
				r.action = a
			case results[c.Image].Err != nil:
				r.action = "keep"
			case r.stored == "-":
				r.action = "baseline"
			case r.stored == r.current:
				r.action = "none"
			default:
				r.action = "record (already restarted)"
			}
			rows[r] = append(rows[r], fmt.Sprintf("%s/%s/%s:%s", k.Namespace, strings.ToLower(k.Kind), k.Name, c.Name))
		}
	}
	tw := tabwriter.NewWriter(w, 1, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tSTORED\tCURRENT\tACTION\tWORKLOADS")
	keys := slices.SortedFunc(maps.Keys(rows), func(a, b row) int {
		return strings.Compare(a.image+a.stored+a.action, b.image+b.stored+b.action)
	})
	for _, r := range keys {
		ws := rows[r]
		slices.Sort(ws)
		list := strings.Join(ws[:min(3, len(ws))], ", ")
		if len(ws) > 3 {
			list += fmt.Sprintf(" and %d more", len(ws)-3)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.image, r.stored, r.current, r.action, list)
	}
	_ = tw.Flush()
}

// short returns a digest's first 12 hex characters, as docker shows them.
func short(d string) string {
	if h, ok := strings.CutPrefix(d, "sha256:"); ok && len(h) >= 12 {
		return h[:12]
	}
	return d
}
