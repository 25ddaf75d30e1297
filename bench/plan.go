package main

import (
	"fmt"
	"math/rand/v2"
)

// tags are the tags each repository carries: several tags per repository,
// so that "one token per repository" differs from "one per reference".
var tags = []string{"latest", "main", "stable", "v1"}

// containerNames are every Deployment's containers: one init container
// and two containers, so 3 references per Deployment.
var containerNames = [...]string{"init", "app", "sidecar"}

// plan is the population the benchmark builds, fixed by the seed so that
// every run of the program sees the same cluster and can compute exactly
// what urunner should do.
type plan struct {
	hosts       int
	namespaces  []namespacePlan
	deployments []deploymentPlan
	refs        []refPlan
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

type deploymentPlan struct {
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

// newPlan spreads deployments over namespaces round-robin, enables a
// fraction of the namespaces and disables a fraction of the Deployments
// (both chosen at random), and gives each of the 3 containers of each
// Deployment a reference such that every reference is used about equally
// (3×deployments/refs times) and at random.
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

	for k := range refs {
		repo := k / len(tags)
		p.refs = append(p.refs, refPlan{
			// A repository lives on one host.
			host: repo % hosts,
			repo: fmt.Sprintf("bench/app-%05d", repo),
			tag:  tags[k%len(tags)],
		})
	}

	slots := make([]int, deployments*len(containerNames))
	for k := range slots {
		slots[k] = k % refs
	}
	rng.Shuffle(len(slots), func(i, j int) { slots[i], slots[j] = slots[j], slots[i] })
	off := make([]bool, deployments)
	for _, i := range rng.Perm(deployments)[:deployments*disabledPct/100] {
		off[i] = true
	}
	for i := range deployments {
		d := deploymentPlan{
			namespace: i % namespaces,
			name:      fmt.Sprintf("d-%06d", i),
			disabled:  off[i],
		}
		copy(d.refs[:], slots[i*len(containerNames):])
		p.deployments = append(p.deployments, d)
	}
	p.order = rng.Perm(refs)
	return p
}

// watched reports whether urunner should see the Deployment: in an
// enabled namespace and not labelled urunner=disable.
func (p *plan) watched(d deploymentPlan) bool {
	return p.namespaces[d.namespace].enabled && !d.disabled
}

// expectations is what one urunner run should do, derived from the plan.
type expectations struct {
	refsPerHost  []int // unique references urunner should look up, per host
	reposPerHost []int // repositories they belong to, per host
	watched      int   // Deployments urunner should list and track
	restarts     int
}

// expect returns what a run should do when the references in moved have a
// new digest since the previous run.
func (p *plan) expect(moved map[int]bool) expectations {
	e := expectations{refsPerHost: make([]int, p.hosts), reposPerHost: make([]int, p.hosts)}
	refs := map[int]bool{}
	repos := map[string]bool{}
	for _, d := range p.deployments {
		if !p.watched(d) {
			continue
		}
		e.watched++
		restart := false
		for _, r := range d.refs {
			restart = restart || moved[r]
			if refs[r] {
				continue
			}
			refs[r] = true
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
// as many as it takes for about want watched Deployments to restart.
func (p *plan) takeRefsForRestarts(want int) map[int]bool {
	moved := map[int]bool{}
	for p.next < len(p.order) && p.expect(moved).restarts < want {
		moved[p.order[p.next]] = true
		p.next++
	}
	return moved
}

// creationOrder returns the Deployments' indices with those that any of
// the moved references restart last. The test ground's controller manager
// syncs new Deployments in creation order at its client's default 20 QPS
// (about 7 Deployments a second), so at thousands of Deployments it is
// still catching up while urunner runs; created last, the Deployments
// urunner restarts are not written by it between urunner's LIST and PATCH,
// and the API counts are urunner's own.
func (p *plan) creationOrder(moved ...map[int]bool) []int {
	var early, late []int
	for i, d := range p.deployments {
		hit := false
		for _, m := range moved {
			for _, r := range d.refs {
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
