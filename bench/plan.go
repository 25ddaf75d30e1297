package main

import (
	"fmt"
	"math/rand/v2"
)

// tags are the tags each repository carries: several tags per repository,
// so that "one token per repository" differs from "one per reference".
var tags = []string{"latest", "main", "stable", "v1"}

// containerNames are every workload's containers: one init container and
// two containers, so 3 references per workload.
var containerNames = [...]string{"init", "app", "sidecar"}

// The workload kinds urunner watches by default, as the API names them.
const (
	kindDeployment  = "Deployment"
	kindStatefulSet = "StatefulSet"
	kindDaemonSet   = "DaemonSet"
)

// kindNames are the watched kinds in urunner's listing order.
var kindNames = []string{kindDeployment, kindStatefulSet, kindDaemonSet}

// plan is the population the benchmark builds, fixed by the seed so that
// every run of the program sees the same cluster and can compute exactly
// what urunner should do.
type plan struct {
	hosts      int
	namespaces []namespacePlan
	workloads  []workloadPlan
	refs       []refPlan
	// order is a shuffled order of the references, from which the moved
	// references of each scenario are taken, so that they are spread over
	// hosts and repositories.
	order []int
	next  int // first unused position in order
}

type namespacePlan struct {
	name    string
	enabled bool
}

type workloadPlan struct {
	kind      string
	namespace int // index in plan.namespaces
	name      string
	disabled  bool
	refs      [len(containerNames)]int // index in plan.refs, per container
}

type refPlan struct {
	host int
	repo string
	tag  string
	gen  int // how many times the tag was pushed anew
}

func (r refPlan) repoTag() string { return r.repo + ":" + r.tag }

// seed is what PushImage derives the image from: a new generation is a new
// digest.
func (r refPlan) seed() string { return fmt.Sprintf("%s:%s#%d", r.repo, r.tag, r.gen) }

// newPlan is the population of `make bench`: Deployments spread over
// namespaces round-robin, a fraction of the namespaces enabled and of the
// Deployments disabled (both chosen at random), and each of the 3
// containers of each Deployment given a reference such that every
// reference is used about equally (3×deployments/refs times) and at random.
func newPlan(seed uint64, namespaces, enabled, deployments, disabledPct, refs, hosts int) *plan {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	p := &plan{hosts: hosts}
	on := make([]bool, namespaces)
	for _, i := range rng.Perm(namespaces)[:min(enabled, namespaces)] {
		on[i] = true
	}
	for i := range namespaces {
		p.namespaces = append(p.namespaces, namespacePlan{name: fmt.Sprintf("bench-%05d", i), enabled: on[i]})
	}
	p.addRefs(refs, hosts)
	off := make([]bool, deployments)
	for _, i := range rng.Perm(deployments)[:deployments*disabledPct/100] {
		off[i] = true
	}
	for i := range deployments {
		p.workloads = append(p.workloads, workloadPlan{
			kind:      kindDeployment,
			namespace: i % namespaces,
			name:      fmt.Sprintf("d-%06d", i),
			disabled:  off[i],
		})
	}
	p.dealRefs(rng)
	return p
}

// newScalePlan is the population of -workloads: watchedDeployments
// Deployments in watchedNamespaces enabled namespaces (the run that must
// follow the watched workloads), and the rest of the workloads, a mix of
// Deployments, StatefulSets and DaemonSets (3:1:1), in otherNamespaces
// namespaces that are not enabled until the full-scale runs. Nothing is
// opted out: at full scale every workload is watched.
func newScalePlan(seed uint64, workloads, watchedDeployments, watchedNamespaces, otherNamespaces, refs, hosts int) *plan {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	p := &plan{hosts: hosts}
	for i := range watchedNamespaces {
		p.namespaces = append(p.namespaces, namespacePlan{name: fmt.Sprintf("watched-%04d", i), enabled: true})
	}
	for i := range otherNamespaces {
		p.namespaces = append(p.namespaces, namespacePlan{name: fmt.Sprintf("other-%05d", i)})
	}
	p.addRefs(refs, hosts)
	for i := range watchedDeployments {
		p.workloads = append(p.workloads, workloadPlan{
			kind:      kindDeployment,
			namespace: i % watchedNamespaces,
			name:      fmt.Sprintf("d-%06d", i),
		})
	}
	mix := []string{kindDeployment, kindDeployment, kindDeployment, kindStatefulSet, kindDaemonSet}
	for i := range workloads - watchedDeployments {
		k := mix[i%len(mix)]
		p.workloads = append(p.workloads, workloadPlan{
			kind:      k,
			namespace: watchedNamespaces + i%otherNamespaces,
			name:      fmt.Sprintf("%s-%06d", shortKind(k), i),
		})
	}
	p.dealRefs(rng)
	return p
}

func shortKind(kind string) string {
	switch kind {
	case kindStatefulSet:
		return "s"
	case kindDaemonSet:
		return "ds"
	}
	return "d"
}

// addRefs makes refs references, 4 tags per repository, a repository on
// one host.
func (p *plan) addRefs(refs, hosts int) {
	for k := range refs {
		repo := k / len(tags)
		p.refs = append(p.refs, refPlan{
			host: repo % hosts,
			repo: fmt.Sprintf("bench/app-%05d", repo),
			tag:  tags[k%len(tags)],
		})
	}
}

// dealRefs gives every container a reference, each reference used about
// equally and at random, and shuffles the order moved references are
// taken in.
func (p *plan) dealRefs(rng *rand.Rand) {
	slots := make([]int, len(p.workloads)*len(containerNames))
	for k := range slots {
		slots[k] = k % len(p.refs)
	}
	rng.Shuffle(len(slots), func(i, j int) { slots[i], slots[j] = slots[j], slots[i] })
	for i := range p.workloads {
		copy(p.workloads[i].refs[:], slots[i*len(containerNames):])
	}
	p.order = rng.Perm(len(p.refs))
}

// watched reports whether urunner should see the workload: in an enabled
// namespace and not labelled urunner=disable.
func (p *plan) watched(w workloadPlan) bool {
	return p.namespaces[w.namespace].enabled && !w.disabled
}

// enabledNamespaces returns the names of the enabled namespaces.
func (p *plan) enabledNamespaces() []string {
	var out []string
	for _, n := range p.namespaces {
		if n.enabled {
			out = append(out, n.name)
		}
	}
	return out
}

// kindCounts returns how many workloads of each kind the cluster holds,
// those opted out excluded (urunner's LISTs select urunner!=disable).
func (p *plan) kindCounts() map[string]int {
	out := map[string]int{}
	for _, w := range p.workloads {
		if !w.disabled {
			out[w.kind]++
		}
	}
	return out
}

// expectations is what one urunner run should do, derived from the plan.
type expectations struct {
	refsPerHost  []int // unique references urunner should look up, per host
	reposPerHost []int // repositories they belong to, per host
	watched      int   // workloads urunner should list and track
	restarts     int
	// moved are the watched references with a new digest: change context
	// (on by default) reads the manifest of the digest each moves from and
	// to, once.
	moved int
}

func (e expectations) refs() int {
	n := 0
	for _, v := range e.refsPerHost {
		n += v
	}
	return n
}

// expect returns what a run should do when the references in moved have a
// new digest since the previous run.
func (p *plan) expect(moved map[int]bool) expectations {
	e := expectations{refsPerHost: make([]int, p.hosts), reposPerHost: make([]int, p.hosts)}
	refs := make([]bool, len(p.refs))
	repos := map[string]bool{}
	for _, w := range p.workloads {
		if !p.watched(w) {
			continue
		}
		e.watched++
		restart := false
		for _, r := range w.refs {
			restart = restart || moved[r]
			if refs[r] {
				continue
			}
			refs[r] = true
			if moved[r] {
				e.moved++
			}
			e.refsPerHost[p.refs[r].host]++
			if rp := p.refs[r].repo; !repos[rp] {
				repos[rp] = true
				e.reposPerHost[p.refs[r].host]++
			}
		}
		if restart {
			e.restarts++
		}
	}
	return e
}

// takeRefs returns the next n references of the shuffled order.
func (p *plan) takeRefs(n int) map[int]bool {
	moved := map[int]bool{}
	for ; n > 0 && p.next < len(p.order); n-- {
		moved[p.order[p.next]] = true
		p.next++
	}
	return moved
}

// takeRefsForRestarts returns the next references of the shuffled order,
// as many as it takes for about want watched workloads to restart.
func (p *plan) takeRefsForRestarts(want int) map[int]bool {
	moved := map[int]bool{}
	for p.next < len(p.order) && p.expect(moved).restarts < want {
		moved[p.order[p.next]] = true
		p.next++
	}
	return moved
}

// creationOrder returns the workloads' indices with those that any of the
// moved references restart last. With -controller-manager, the deployment
// controller syncs new Deployments in creation order at its client's
// default 20 QPS (about 7 a second), so at thousands of Deployments it is
// still catching up while urunner runs; created last, the Deployments
// urunner restarts are not written by it between urunner's LIST and PATCH.
func (p *plan) creationOrder(moved ...map[int]bool) []int {
	var early, late []int
	for i, w := range p.workloads {
		hit := false
		for _, m := range moved {
			for _, r := range w.refs {
				hit = hit || m[r]
			}
		}
		if hit {
			late = append(late, i)
		} else {
			early = append(early, i)
		}
	}
	return append(early, late...)
}
