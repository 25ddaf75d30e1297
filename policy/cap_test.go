package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/urunner/urunner/state"
)

func TestCapBoundsRestartsOverItsWindow(t *testing.T) {
	mk := func(a Action) *Decision { return &Decision{Workload: workload(), Action: a} }
	r, rr := []Action{Restart}, []Action{Restart, Restart}
	at := func(tm time.Time) int64 { return state.RunKey(tm) }
	since := now.Add(-time.Hour) // the last full run's start
	mem := func(restarts map[int64]int) state.State { return state.State{CapSince: since, Restarts: restarts} }
	for _, tc := range []struct {
		name       string
		actions    []Action
		max        int
		window     time.Duration
		restricted bool
		mem        state.State
		held       int
		reason     string // a part of the reason, "" when nothing is held
	}{
		{name: "no cap", actions: []Action{Restart, Restart, Restart}},
		{name: "at the cap", actions: []Action{Restart, Restart, Hold, Nothing}, max: 2},
		{name: "over the cap holds them all", actions: []Action{Restart, Restart, Restart, Nothing}, max: 2, held: 3,
			reason: "3 workloads would restart, more than URUNNER_CONF_MAX_RESTARTS=2"},
		{name: "a full run counts only its own restarts, as before windows", actions: rr, max: 2,
			mem: mem(map[int64]int{at(now.Add(-time.Minute)): 5})},
		{name: "a pushed run within the window's cap restarts", actions: r, max: 2, restricted: true,
			mem: mem(map[int64]int{at(since.Add(time.Second)): 1})},
		{name: "a pushed run over the window's cap holds all its restarts", actions: rr, max: 2, restricted: true,
			mem: mem(map[int64]int{at(since): 1}), held: 2,
			reason: "2 workloads would restart and 1 restarted since the start of the last full run at 2026-11-25T11:00:00Z (pushed runs, URUNNER_CONF_REFERENCES, count in it): more than URUNNER_CONF_MAX_RESTARTS=2"},
		{name: "pushed runs in a burst: the one that would pass the cap holds", actions: r, max: 2, restricted: true,
			mem: mem(map[int64]int{at(since.Add(time.Minute)): 1, at(since.Add(2 * time.Minute)): 1}), held: 1,
			reason: "1 workloads would restart and 2 restarted since the start of the last full run"},
		{name: "restarts before the last full run do not count for a pushed run", actions: rr, max: 2, restricted: true,
			mem: mem(map[int64]int{at(since.Add(-time.Second)): 5})},
		{name: "a pushed run before any full run counts every remembered restart", actions: r, max: 2, restricted: true,
			mem: state.State{Restarts: map[int64]int{at(now.Add(-48 * time.Hour)): 2}}, held: 1,
			reason: "1 workloads would restart and 2 restarted since the start of the last full run (pushed"},
		{name: "a run that restarts nothing is never capped", actions: []Action{Hold, Nothing}, max: 2, restricted: true,
			mem: mem(map[int64]int{at(since.Add(time.Minute)): 9})},
		{name: "with a window, a full run counts the restarts of any run within it", actions: r, max: 2, window: time.Hour,
			mem: mem(map[int64]int{at(now.Add(-30 * time.Minute)): 2}), held: 1,
			reason: "1 workloads would restart and 2 restarted in the last 1h0m0s (URUNNER_CONF_MAX_RESTARTS_WINDOW): more than URUNNER_CONF_MAX_RESTARTS=2"},
		{name: "with a window, restarts older than it do not count, even after the last full run", actions: rr, max: 2, window: time.Minute,
			restricted: true, mem: mem(map[int64]int{at(now.Add(-2 * time.Minute)): 5})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ds []*Decision
			for _, a := range tc.actions {
				ds = append(ds, mk(a))
			}
			run := &Run{Settings: Settings{MaxRestarts: tc.max, MaxRestartsWindow: tc.window}, Mem: tc.mem, Now: now, Restricted: tc.restricted}
			got := run.Cap(ds)
			if got.Held != tc.held || !strings.Contains(got.Reason, tc.reason) || (tc.reason == "") != (got.Reason == "") {
				t.Errorf("Cap = %+v, want %d held saying %q", got, tc.held, tc.reason)
			}
			held := 0
			for _, d := range ds {
				if d.Action == Hold && got.Reason != "" && d.Reason == got.Reason {
					held++
				}
			}
			if held != tc.held {
				t.Errorf("%d held by the cap, want %d", held, tc.held)
			}
		})
	}
}

// What the ledger leaves is the next run's window.
func TestLedgerKeepsTheCapWindow(t *testing.T) {
	at := func(tm time.Time) int64 { return state.RunKey(tm) }
	since := now.Add(-time.Hour)
	for _, tc := range []struct {
		name       string
		window     time.Duration
		restricted bool
		prev       map[int64]int
		restarted  int
		wantSince  time.Time
		want       map[int64]int
	}{
		{name: "a full run starts a new window with its own restarts", prev: map[int64]int{at(since.Add(time.Minute)): 3},
			restarted: 2, wantSince: now, want: map[int64]int{at(now): 2}},
		{name: "a full run that restarts nothing leaves an empty window", prev: map[int64]int{at(since): 3}, wantSince: now},
		{name: "a pushed run adds its restarts to the window and forgets what is before it", restricted: true,
			prev: map[int64]int{at(since): 2, at(since.Add(-time.Second)): 4}, restarted: 1,
			wantSince: since, want: map[int64]int{at(since): 2, at(now): 1}},
		{name: "with a window, what is older is forgotten, whatever the run", window: 30 * time.Minute,
			prev: map[int64]int{at(now.Add(-31 * time.Minute)): 1, at(now.Add(-29 * time.Minute)): 2}, restarted: 1,
			wantSince: now, want: map[int64]int{at(now.Add(-29 * time.Minute)): 2, at(now): 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Settings{MaxRestartsWindow: tc.window}
			l := NewLedger(s, state.State{CapSince: since, Restarts: tc.prev}, now, listedNow)
			for i := range tc.restarted {
				d := Decision{Workload: named(string(rune('a' + i))), Action: Restart}
				l.Record(&d, true, false)
			}
			l.Record(&Decision{Workload: named("held"), Action: Hold}, false, false)
			next := l.Next(Listing{Complete: true, Restricted: tc.restricted})
			if !next.CapSince.Equal(tc.wantSince) {
				t.Errorf("CapSince = %v, want %v", next.CapSince, tc.wantSince)
			}
			if diff := cmp.Diff(tc.want, next.Restarts); diff != "" {
				t.Errorf("Restarts (-want +got):\n%s", diff)
			}
		})
	}
}
