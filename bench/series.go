package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/state"
)

// runSpec is one measured run, repeated: what to do before each
// repetition and what it is held to.
type runSpec struct {
	id, title string
	// before prepares a repetition (deletes the state, pushes tags anew)
	// and returns the references that moved since the previous run.
	before func(ctx context.Context) (moved map[int]bool, err error)
	env    []string // extra environment, e.g. URUNNER_CONF_LIST_SCOPE=cluster
	args   []string
	// restartRun marks the run that measures the PATCH throughput, which
	// the API client's QPS bounds, not the registry.
	restartRun bool
	// wallFactor is the target wall/bound (median); 0 for none.
	wallFactor float64
	// maxRSS is the target peak RSS (every repetition); 0 for none.
	maxRSS int64
}

// result is one repetition of a measured run.
type result struct {
	id, title  string
	rep        int
	restartRun bool
	exp        expectations
	run        urunnerRun
	registry   []map[string]int // per host, Registry.Requests()
	hosts      []string
	api        apiCounts
	stateBytes int // the state document (gzip JSON)
	cmBytes    int // the whole ConfigMap's data: the state and the last run's report
	stateRefs  int // references in the stored state
	// regBound is the registry's part of the lower bound, lists the bare
	// LISTs of the same pages made by the benchmark after the run.
	regBound time.Duration
	scope    listScope
	lists    bareLists
	load     loadAvg // when the run started
}

// bound is the lower bound of the run's wall time: the registry's, plus
// the bare LIST time of the same pages.
func (r result) bound() time.Duration { return r.regBound + r.lists.took }

// lowerBound is the time the lookups need at least: each host's unique
// references, concurrency at a time, each one latency long.
func lowerBound(refsPerHost []int, concurrency int, latency time.Duration) time.Duration {
	var worst int
	for _, n := range refsPerHost {
		worst = max(worst, ceilDiv(n, concurrency))
	}
	return time.Duration(worst) * latency
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// measureAll runs each spec's series in turn, then prints their figures
// and targets as tables under title.
func (g *ground) measureAll(ctx context.Context, out io.Writer, p *plan, specs []runSpec, title string) error {
	var ms []measured
	for _, s := range specs {
		rs, err := g.series(ctx, p, s)
		if err != nil {
			return err
		}
		ms = append(ms, measured{s, rs})
	}
	printTables(out, title, ms)
	return nil
}

// series runs s o.reps times, printing each repetition, then the summary
// and the targets.
func (g *ground) series(ctx context.Context, p *plan, s runSpec) ([]result, error) {
	fmt.Fprintf(g.out, "\n== run (%s) %s: %d repetitions, registry latency %s\n", s.id, s.title, g.o.reps, g.o.latency)
	var rs []result
	for rep := 1; rep <= g.o.reps; rep++ {
		r, err := g.measure(ctx, p, s, rep)
		if err != nil {
			return rs, fmt.Errorf("run (%s) repetition %d: %w", s.id, rep, err)
		}
		printRep(g.out, r)
		rs = append(rs, r)
	}
	printSeries(g.out, rs, s, g.o)
	return rs, nil
}

// measure runs urunner once, counters reset, collects the figures, then
// times the same LISTs with a plain client.
func (g *ground) measure(ctx context.Context, p *plan, s runSpec, rep int) (result, error) {
	if g.o.controllerManager {
		if err := settle(ctx, g.out, g.cs, g.o.settleTimeout); err != nil {
			return result{}, err
		}
	}
	var moved map[int]bool
	if s.before != nil {
		var err error
		if moved, err = s.before(ctx); err != nil {
			return result{}, err
		}
	}
	r := result{id: s.id, title: s.title, rep: rep, restartRun: s.restartRun, exp: p.expect(moved), hosts: g.hosts}
	r.regBound = lowerBound(r.exp.refsPerHost, g.o.concurrency, g.o.latency)
	for _, reg := range g.regs {
		reg.ResetRequests()
	}
	g.proxy.snapshot()
	env := append(append(append([]string{}, g.env...), s.env...), g.o.env...) // later entries win
	r.load = readLoad()
	run, err := runUrunner(ctx, g.bin, env, g.dir, fmt.Sprintf("run-%s-%d", s.id, rep), s.args...)
	if err != nil {
		return r, err
	}
	r.run = run
	r.api = g.proxy.snapshot()
	for _, reg := range g.regs {
		r.registry = append(r.registry, reg.Requests())
	}
	if r.stateBytes, r.cmBytes, r.stateRefs, err = readState(ctx, g, stateConfigMap); err != nil {
		return r, err
	}
	r.scope = listScope{
		enabled:      r.api.Requests["list namespaces"] > 0,
		count:        r.api.Lists.Count > 0,
		perNamespace: r.api.Lists.Namespaced > 0,
		namespaces:   p.enabledNamespaces(),
	}
	if r.lists, err = timeLists(ctx, g.lists, r.scope); err != nil {
		return r, fmt.Errorf("bare LISTs: %w", err)
	}
	r.lists.bytes = g.proxy.snapshot().totalBytes()
	return r, nil
}

// readState returns the size of the state ConfigMap's document, of all
// its data (what the 1 MiB limit applies to), and the references the
// document holds; zero when there is none.
func readState(ctx context.Context, g *ground, name string) (size, total, refs int, err error) {
	cm, err := g.cs.CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return 0, 0, 0, nil
	case err != nil:
		return 0, 0, 0, fmt.Errorf("read the state ConfigMap: %w", err)
	}
	for k, v := range cm.Data {
		total += len(k) + len(v)
	}
	for k, v := range cm.BinaryData {
		total += len(k) + len(v)
	}
	data := cm.BinaryData[state.DataKey]
	refs, err = stateRefs(data)
	if err != nil {
		fmt.Fprintf(g.out, "bench: cannot count the state's references: %v\n", err)
		refs = -1
	}
	return len(data), total, refs, nil
}

// deleteState makes the next run a baseline.
func (g *ground) deleteState(ctx context.Context) error {
	err := g.cs.CoreV1().ConfigMaps("default").Delete(ctx, stateConfigMap, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete the state: %w", err)
	}
	return nil
}

// stateRefs counts the references of a state document. It reads the gzip
// JSON itself rather than with state.Decode, so that it keeps working
// while the format grows fields this copy of the package does not know.
func stateRefs(data []byte) (int, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	var doc struct {
		Refs map[string]json.RawMessage `json:"refs"`
	}
	if err := json.NewDecoder(zr).Decode(&doc); err != nil {
		return 0, err
	}
	return len(doc.Refs), nil
}

// loadAvg is /proc/loadavg's 1, 5 and 15-minute load averages.
type loadAvg [3]float64

func readLoad() loadAvg {
	var l loadAvg
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

func (l loadAvg) String() string { return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2]) }

// spread is the minimum, median and maximum of some figures.
type spread struct{ min, med, max float64 }

func spreadOf(vs []float64) spread {
	if len(vs) == 0 {
		return spread{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{s[0], med, s[len(s)-1]}
}

// of applies f to every result and returns the spread.
func of(rs []result, f func(result) float64) spread {
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = f(r)
	}
	return spreadOf(vs)
}

func (s spread) durations() string {
	d := func(v float64) time.Duration { return round(time.Duration(v)) }
	return fmt.Sprintf("min %s, median %s, max %s", d(s.min), d(s.med), d(s.max))
}

func (s spread) format(verb string) string {
	return fmt.Sprintf("min "+verb+", median "+verb+", max "+verb, s.min, s.med, s.max)
}
