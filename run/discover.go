package run

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/state"
)

// found is what discovery and resolution found.
type found struct {
	workloads []*workload
	scope     kube.Scope
	// listedAt is the API server's time when the listing was taken.
	listedAt time.Time
	listing  policy.Listing
	// cluster is how many workloads of the watched kinds the cluster
	// holds, as counted at countedAt (zero time: not counted this run).
	cluster   int
	countedAt time.Time
	results   map[policy.Lookup]policy.Result
	lookups   map[policy.Lookup]registry.Lookup
	// spend is what the registries' budgets leave to optional reads.
	spend *spend
	// secrets names, per pull-secret credentials, the Secrets that hold
	// them (namespace/name), for messages: never the credentials.
	secrets map[string][]string
	// strs and images are discovery's shared strings and parsed images
	// (see containers), dropped when it ends.
	strs   map[string]string
	images map[string]*image
}

// load reads what urunner remembers. A document it cannot read stops the
// run with nothing changed: a person must look at it.
func (a *app) load(ctx context.Context) (*state.Snapshot, error) {
	snap, err := a.store.Load(ctx)
	if err != nil {
		if errors.Is(err, state.ErrCorrupt) {
			return nil, fmt.Errorf("%w; nothing was restarted and the ConfigMap was left as it is: fix or delete it (deleting makes the next run a baseline)", err)
		}
		return nil, err
	}
	if snap.Migrated > 0 {
		a.note(stateMigrated{a.store.Name(), snap.Migrated, state.Version})
	}
	return snap, nil
}

// discover lists the watched workloads, page by page, and sends each new
// lookup (reference and credentials) to lookups as soon as a workload
// names it, so that resolution overlaps the listing. It closes lookups.
func (a *app) discover(ctx context.Context, lookups chan<- registry.Lookup, mem state.State) (*found, error) {
	defer close(lookups)
	f := &found{secrets: map[string][]string{}}
	scope, err := a.scope(ctx, mem, f)
	if err != nil {
		return nil, err
	}
	f.scope = scope
	kinds := a.opts.kinds
	only := a.only(mem)
	var ps *kube.PullSecrets
	if a.cfg.PullSecretAuth {
		ps = a.kube.NewPullSecrets()
	}
	sent := map[policy.Lookup]bool{}
	a.clock.start()
	started := a.now()
	listed, err := a.kube.List(ctx, scope, kinds, func(kw kube.Workload) {
		w, ls := a.watch(ctx, kw, ps, f)
		for _, l := range ls {
			pl := policy.Lookup{Ref: registry.Key(l.Ref), Cred: l.Cred}
			if sent[pl] || only != nil && !only[registry.MatchName(pl.Ref)] {
				continue
			}
			sent[pl] = true
			select {
			case lookups <- l:
			case <-ctx.Done():
			}
		}
		f.workloads = append(f.workloads, w)
	})
	if err != nil {
		return nil, err
	}
	f.listedAt = a.clock.taken(started)
	f.strs, f.images = nil, nil
	if listed.Cluster >= 0 {
		f.cluster, f.countedAt = listed.Cluster, f.listedAt
	}
	f.listing = policy.Listing{Complete: len(listed.Failed) == 0, Restricted: a.restricted(), Failed: map[string]bool{}}
	a.templatesUnread(f, listed.Unread)
	for ns, err := range listed.Failed {
		f.listing.Failed[ns] = true
		// A deleted namespace takes the chart's Role in it along: its LIST
		// is then refused, not empty.
		a.note(namespaceUnlisted{namespace: ns, err: err, deleted: apierrors.IsForbidden(err) && a.namespaced()})
	}
	return f, nil
}

// restricted reports whether the run looks up only the references
// URUNNER_CONF_REFERENCES names (a pushed run).
func (a *app) restricted() bool {
	return a.opts.pushed != nil
}

// only returns the references a pushed run looks up, its subjects
// expanded from the loaded state; nil when every reference is.
func (a *app) only(mem state.State) map[string]bool {
	p := a.opts.pushed
	if p == nil {
		return nil
	}
	refs, unmatched := p.expand(mem)
	for _, s := range unmatched {
		a.note(pushedSubjectUnmatched{s})
	}
	for r := range refs {
		if !p.tags[r] {
			a.note(pushedSignature{r})
		}
	}
	return refs
}

// namespaced reports whether URUNNER_CONF_NAMESPACES names the namespaces.
func (a *app) namespaced() bool {
	return len(a.opts.namespaces) > 0
}

// recount is how long a count of the cluster's workloads is trusted.
const recount = time.Hour

// scope is where workloads are watched: the namespaces configured
// (namespaced mode), else those labelled urunner=enable, listed per
// namespace when that is cheaper than listing the cluster (auto: from the
// cluster's workload count, remembered, and counted again hourly with one
// LIST of a single object per kind).
func (a *app) scope(ctx context.Context, mem state.State, f *found) (kube.Scope, error) {
	if nss := a.opts.namespaces; len(nss) > 0 {
		// Their rings, soaks and approvals: one GET each.
		return kube.Scope{Namespaces: nss, PerNamespace: true, Annotations: a.kube.NamespaceAnnotations(ctx, nss)}, nil
	}
	nss, annotations, err := a.kube.EnabledNamespaces(ctx)
	if err != nil {
		return kube.Scope{}, err
	}
	s := kube.Scope{Namespaces: nss, Annotations: annotations}
	switch a.cfg.ListScope {
	case "namespace":
		s.PerNamespace = true
	case "auto":
		kinds := a.opts.kinds
		total, at := mem.Workloads, mem.CountedAt
		if at.IsZero() || a.now().Sub(at) > recount {
			var ok bool
			if total, ok = a.kube.Count(ctx, kinds); ok {
				f.cluster, f.countedAt = total, a.now().UTC().Truncate(time.Second)
			}
		}
		s.PerNamespace = perNamespaceIsCheaper(len(nss), len(kinds), total)
		a.note(listingScope{s.PerNamespace, len(nss), total})
	}
	return s, nil
}

// perNamespaceIsCheaper says whether one LIST per watched namespace and
// kind costs less than pages of every workload of the cluster: a request
// costs about what decoding requestCost objects does (BENCHMARKS.md).
func perNamespaceIsCheaper(namespaces, kinds, clusterWorkloads int) bool {
	const requestCost = 20
	return namespaces*kinds*requestCost < clusterWorkloads
}

// watch turns a listed workload into what the rules see: each container's
// canonical reference (one name for every spelling of an image) and the
// credentials its lookup uses. It returns the lookups the workload needs.
func (a *app) watch(ctx context.Context, kw kube.Workload, ps *kube.PullSecrets, f *found) (*workload, []registry.Lookup) {
	kw.Namespace = f.intern(kw.Namespace)
	wl := &workload{listed: listed{kube: kw, policy: policy.Workload{
		Kind: kw.Kind, Namespace: kw.Namespace, Name: kw.Name, Created: kw.Created,
		Paused: kw.Paused, OnDelete: kw.OnDelete, GitOps: kw.GitOps, Annotations: kw.Annotations,
		NamespaceAnnotations: f.scope.Annotations[kw.Namespace], Healthy: kw.Healthy,
		RestartedFor: policy.Records(kw.RestartedFor), TemplateOf: kw.TemplateOf,
	}}}
	w := &wl.listed
	if t, err := time.Parse(time.RFC3339, kw.RestartedAt); err == nil {
		w.policy.RestartedAt = t
	}
	ring, ok := kw.Ring, kw.Ring != ""
	if !ok {
		ring, ok = w.policy.NamespaceAnnotations[policy.RingAnnotation]
	}
	if ok {
		n, err := policy.ParseRing(ring)
		if err != nil {
			// A typo must not put a workload first: it waits for the last ring.
			a.note(ringIgnored{&w.kube, err})
			n = 99
		}
		w.policy.Ring = n
	}
	if why := policy.Watched(a.settings, &w.policy); why != "" {
		a.note(leftAlone{&w.kube, why})
		return wl, nil
	}
	return wl, a.containers(ctx, w, ps, f)
}

// containers gives w the rules' view of each of its containers and returns
// the lookups they need. The strings thousands of containers repeat
// (names, images, pull policies, canonical references) are shared, one
// copy each: the listing decodes a copy per object, and every watched
// workload is kept for the whole run.
func (a *app) containers(ctx context.Context, w *listed, ps *kube.PullSecrets, f *found) []registry.Lookup {
	var (
		kw      = &w.kube
		lookups []registry.Lookup
		auths   []kube.RegistryAuth
		read    bool
	)
	if len(kw.Containers) > 0 {
		w.policy.Containers = make([]policy.Container, 0, len(kw.Containers))
	}
	for i := range kw.Containers {
		c := &kw.Containers[i]
		c.Name, c.Image, c.PullPolicy = f.intern(c.Name), f.intern(c.Image), f.intern(c.PullPolicy)
		pc := policy.Container{Name: c.Name, Image: c.Image, PullPolicy: c.PullPolicy, Init: c.Init}
		im := f.canonical(a, c.Image)
		if im.err == nil {
			pc.Named, pc.ImageDigest, pc.Watched = im.Named, im.Digest, im.watched
		}
		var why string
		pc.Ref, why = policy.Tracked(a.settings, &w.policy, pc)
		if pc.Ref == "" {
			a.note(imageSkipped{w: kw, container: c.Name, image: c.Image, err: im.err, why: why})
			w.policy.Containers = append(w.policy.Containers, pc)
			continue
		}
		l := registry.Lookup{Ref: im.Ref}
		if ps != nil && a.resolver.UsesPullSecrets(im.Ref.Registry) {
			if !read {
				read = true
				var err error
				if auths, err = ps.For(ctx, *kw); err != nil {
					a.note(pullSecretsUnreadable{kw, err})
				}
			}
			l.Cred, l.Pull, l.Source = pullCredentials(auths, im.Ref.Registry)
			l.Cred = f.intern(l.Cred)
			if l.Cred != "" && !slices.Contains(f.secrets[l.Cred], l.Source) {
				f.secrets[l.Cred] = append(f.secrets[l.Cred], l.Source)
			}
		}
		pc.Cred = l.Cred
		w.policy.Containers = append(w.policy.Containers, pc)
		lookups = append(lookups, l)
	}
	return lookups
}

// image is what an image string names, parsed once per run.
type image struct {
	registry.Image
	err error
	// watched says whether its registry is watched.
	watched bool
}

// canonical parses an image string, once per run for each string.
func (f *found) canonical(a *app, s string) *image {
	if im, ok := f.images[s]; ok {
		return im
	}
	im := &image{}
	im.Image, im.err = registry.Canonical(s)
	if im.err == nil {
		im.Named, im.Digest, im.watched = f.intern(im.Named), f.intern(im.Digest), a.resolver.Watches(im.Ref)
	}
	if f.images == nil {
		f.images = map[string]*image{}
	}
	f.images[s] = im
	return im
}

// intern returns the one copy of s that the workloads share.
func (f *found) intern(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := f.strs[s]; ok {
		return v
	}
	if f.strs == nil {
		f.strs = map[string]string{}
	}
	f.strs[s] = s
	return s
}

// pullCredentials returns the credentials a workload's pull secrets hold
// for host, and a name for them: two namespaces holding the same
// credentials share one lookup, and a namespace only ever sees digests
// fetched with its own or with the registry's configured credentials.
func pullCredentials(auths []kube.RegistryAuth, host string) (string, *registry.Credentials, string) {
	for _, au := range auths {
		if registry.ServerHost(au.Server) != host {
			continue
		}
		sum := sha256.Sum256([]byte(host + "\x00" + au.Username + "\x00" + au.Password))
		return "pull:" + hex.EncodeToString(sum[:8]), &registry.Credentials{User: au.Username, Password: au.Password}, au.Source
	}
	return "", nil, ""
}

// secretsOf names the Secrets holding the credentials cred, for messages.
func (f *found) secretsOf(cred string) string {
	s := f.secrets[cred]
	out := strings.Join(s[:min(3, len(s))], ", ")
	if len(s) > 3 {
		out += fmt.Sprintf(" and %d more", len(s)-3)
	}
	return out
}
