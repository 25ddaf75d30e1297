package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/report"
	"github.com/urunner/urunner/state"
)

// eventSource is the Source.Component of the Events urunner records.
const eventSource = "urunner"

// kindAliases are the names kubectl takes for the kinds urunner handles.
var kindAliases = map[string]string{
	"deploy": "Deployment", "deployment": "Deployment", "deployments": "Deployment",
	"sts": "StatefulSet", "statefulset": "StatefulSet", "statefulsets": "StatefulSet",
	"ds": "DaemonSet", "daemonset": "DaemonSet", "daemonsets": "DaemonSet",
	"rollout": "Rollout", "rollouts": "Rollout", "ro": "Rollout",
}

// parseWorkload reads KIND/NAME as kubectl does (deploy/web,
// deployment.apps/web, sts/db, ds/agent).
func parseWorkload(arg string) (kind, name string, err error) {
	k, name, ok := strings.Cut(arg, "/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", "", usagef("why: want KIND/NAME (deploy/web, sts/db, ds/agent), got %q", arg)
	}
	k = strings.ToLower(k)
	kind, ok = kindAliases[strings.TrimSuffix(strings.TrimSuffix(k, ".apps"), ".argoproj.io")]
	if !ok {
		return "", "", usagef("why: kind %q: urunner handles deploy, sts, ds and rollout (%s)", k, strings.Join(kube.Kinds(), ", "))
	}
	return kind, name, nil
}

// whyDoc is `why -o json`.
type whyDoc struct {
	Kind      string    `json:"kind"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	// Watched is whether urunner's configuration (its CronJob's
	// variables) and labels cover the workload, and why.
	Watched watchedDoc `json:"watched"`
	// NamespaceEnabled is whether the namespace carries urunner=enable;
	// null when it cannot be read.
	NamespaceEnabled *bool `json:"namespaceEnabled"`
	// OptedOut is whether the workload carries urunner=disable.
	OptedOut bool `json:"optedOut"`
	// Paused Deployments and OnDelete StatefulSets and DaemonSets do not
	// roll when restarted.
	Paused   bool `json:"paused,omitempty"`
	OnDelete bool `json:"onDelete,omitempty"`
	// RestartedAt and RestartedFor are the pod template's restart
	// annotations.
	RestartedAt  string            `json:"restartedAt,omitempty"`
	RestartedFor map[string]string `json:"restartedFor,omitempty"`
	// Ignored are the containers urunner.io/ignore-containers names.
	Ignored    []string       `json:"ignored,omitempty"`
	Containers []containerDoc `json:"containers"`
	Events     []eventDoc     `json:"events"`
	// StateConfigMap is where the tags' entries were read.
	StateConfigMap string `json:"stateConfigMap"`
	// Forecast is what the last run foresaw for the workload, as its
	// report keeps it: the run that restarts it and the holds until then,
	// or what it waits for; absent when the last run foresaw nothing for
	// it (no move due, or none held).
	Forecast *report.Forecast `json:"forecast,omitempty"`
}

type watchedDoc struct {
	// Watched is null when it cannot be told (the CronJob or the
	// namespace cannot be read).
	Watched *bool  `json:"watched"`
	Why     string `json:"why"`
}

type containerDoc struct {
	Name  string `json:"name"`
	Init  bool   `json:"init,omitempty"`
	Image string `json:"image"`
	// Reference is the tag urunner looks up for it, registry/repository:tag;
	// empty when it looks up none, NotFollowed saying why.
	Reference   string `json:"reference,omitempty"`
	NotFollowed string `json:"notFollowed,omitempty"`
	// RestartedFor is its urunner.io/restarted-for record.
	RestartedFor string `json:"restartedFor,omitempty"`
	// Believed is the digest urunner believes it runs; "" on first sight.
	Believed string `json:"believed"`
	// Tag is the state's entry for Reference; null when the state has none.
	Tag *tagDoc `json:"tag"`
}

type tagDoc struct {
	Digest  string     `json:"digest,omitempty"`
	Seen    *time.Time `json:"seen"`
	Checked *time.Time `json:"checked"`
	// Base is what the tag's workloads are believed to run by default,
	// when it is not Digest.
	Base         string     `json:"base,omitempty"`
	FailingSince *time.Time `json:"failingSince,omitempty"`
	Error        string     `json:"error,omitempty"`
	// Quarantines are the quarantined digests of this reference: the
	// tag's digest, and those its rollouts failed with.
	Quarantines []quarantineView `json:"quarantines,omitempty"`
	// Exception is what urunner recorded this container runs when it
	// differs from the rest (held, paused, or its restart failed).
	Exception *state.Exception `json:"exception,omitempty"`
}

// quarantineView is a quarantine as it bears on one workload.
type quarantineView struct {
	Digest string    `json:"digest"`
	Why    string    `json:"why"`
	Since  time.Time `json:"since"`
	// Holds is whether it holds the workload's restarts onto the digest.
	Holds bool `json:"holds"`
	// LiftedIn are the namespaces where a lift annotation lifted it;
	// LiftedEverywhere when kubectl urunner lift did.
	LiftedIn         []string   `json:"liftedIn,omitempty"`
	LiftedEverywhere *time.Time `json:"liftedEverywhere,omitempty"`
}

// quarantinesOf are the quarantines of ref's digest and of the digests its
// rollouts failed with, as they bear on namespace ns.
func quarantinesOf(st state.State, ref string, r state.Ref, ns string) []quarantineView {
	var out []quarantineView
	for _, d := range slices.Sorted(maps.Keys(st.Quarantines)) {
		q := st.Quarantines[d]
		if d != r.Digest && !slices.Contains(q.Refs, ref) {
			continue
		}
		v := quarantineView{Digest: d, Why: q.Why, Since: q.At.UTC(), Holds: q.HoldsIn(ns), LiftedIn: q.LiftedNamespaces()}
		if q.LiftedEverywhere() {
			v.LiftedEverywhere = timePtr(q.LiftedAll)
		}
		out = append(out, v)
	}
	return out
}

type eventDoc struct {
	Type     string    `json:"type"`
	Reason   string    `json:"reason"`
	Message  string    `json:"message"`
	Count    int32     `json:"count"`
	LastSeen time.Time `json:"lastSeen"`
}

func (c *cli) why(ctx context.Context, out io.Writer, arg string) error {
	kind, name, err := parseWorkload(arg)
	if err != nil {
		return err
	}
	ns := c.workloadNS
	w, err := kube.New(c.api).WithDynamic(c.dyn).Get(ctx, kind, ns, name)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %s/%s not found (-w for the workload's namespace)", kind, ns, name)
	}
	if err != nil {
		return err
	}
	in, err := c.readInstall(ctx)
	if err != nil {
		return err
	}
	doc := whyDoc{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name, Created: w.Created.UTC(),
		RestartedAt: w.RestartedAt, RestartedFor: w.RestartedFor, StateConfigMap: c.namespace + "/" + in.stateCM,
		Paused: w.Paused, OnDelete: w.OnDelete}
	if doc.OptedOut, err = c.optedOut(ctx, kind, ns, name); err != nil {
		return err
	}
	doc.NamespaceEnabled = c.namespaceEnabled(ctx, ns)
	sc := scopeOf(in.cronJob)
	doc.Watched = sc.watched(kind, ns, doc.OptedOut, doc.NamespaceEnabled)
	for _, n := range strings.Split(w.Annotations[kube.IgnoreContainersAnnotation], ",") {
		if n = strings.TrimSpace(n); n != "" {
			doc.Ignored = append(doc.Ignored, n)
		}
	}
	doc.Containers = containers(w, in.state, sc.registry)
	doc.Forecast = c.forecastOf(in, w)
	if doc.Events, err = c.events(ctx, w); err != nil {
		return err
	}
	if c.output == "json" {
		return writeJSON(out, doc)
	}
	if in.cm == nil {
		fmt.Fprintf(c.err, "note: no state ConfigMap %s/%s yet: no run has recorded anything\n", c.namespace, in.stateCM)
	}
	c.printWhy(out, &doc)
	return nil
}

// optedOut reads whether the workload carries urunner=disable: its labels
// are not in kube.Workload, so a metadata-only GET.
func (c *cli) optedOut(ctx context.Context, kind, ns, name string) (bool, error) {
	gv, err := schema.ParseGroupVersion(kube.APIVersion(kind))
	if err != nil {
		return false, err
	}
	m, err := c.meta.Resource(gv.WithResource(kube.Resource(kind))).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("read %s %s/%s: %w", kind, ns, name, err)
	}
	return m.Labels[kube.Label] == kube.LabelDisable, nil
}

// namespaceEnabled reads whether the namespace carries urunner=enable;
// nil when the user may not read namespaces (they may still read their
// own workloads).
func (c *cli) namespaceEnabled(ctx context.Context, ns string) *bool {
	n, err := c.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	enabled := n.Labels[kube.Label] == kube.LabelEnable
	return &enabled
}

// containers says, per container, what urunner looks up, stored and
// believes, the way a run builds the decision's input: the canonical
// reference of the image, the restart records of the annotation.
func containers(w kube.Workload, st state.State, watchedRegistry string) []containerDoc {
	pw := policy.Workload{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name, Created: w.Created, RestartedFor: policy.Records(w.RestartedFor)}
	var out []containerDoc
	for _, c := range w.Containers {
		d := containerDoc{Name: c.Name, Init: c.Init, Image: c.Image, RestartedFor: w.RestartedFor[c.Name]}
		im, err := registry.Canonical(c.Image)
		switch {
		case err != nil:
			d.NotFollowed = "not a registry image reference"
		case watchedRegistry != "" && im.Ref.Registry != watchedRegistry:
			d.NotFollowed = "registry " + im.Ref.Registry + " is not watched (URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH is " + watchedRegistry + ")"
		case im.Digest != "" && pw.RestartedFor[c.Name] != (policy.Record{Ref: im.Named, Digest: im.Digest}):
			// Pinned by a person: it runs what it names, never looked up.
			d.NotFollowed = "pinned by digest"
			d.Believed = im.Digest
		default:
			d.Reference = im.Named
			d.Believed = policy.Believed(&pw, policy.Container{Name: c.Name, Ref: im.Named}, st)
			if r, ok := st.Refs[im.Named]; ok {
				d.Tag = tagOf(r, state.WorkloadContainer(w.Namespace, w.Kind, w.Name, c.Name))
				d.Tag.Quarantines = quarantinesOf(st, im.Named, r, w.Namespace)
			}
		}
		out = append(out, d)
	}
	return out
}

func tagOf(r state.Ref, key string) *tagDoc {
	t := &tagDoc{Digest: r.Digest, Seen: timePtr(r.Seen), Checked: timePtr(r.Checked),
		FailingSince: timePtr(r.Failing), Error: r.Error}
	if r.BaseDigest() != r.Digest {
		t.Base = r.BaseDigest()
	}
	if e, ok := r.Except[key]; ok {
		t.Exception = &e
	}
	return t
}

// events lists urunner's Events on the workload, oldest first. The API
// server expires Events after its --event-ttl (1h by default).
func (c *cli) events(ctx context.Context, w kube.Workload) ([]eventDoc, error) {
	sel := fields.Set{"involvedObject.kind": w.Kind, "involvedObject.name": w.Name, "source": eventSource}.AsSelector()
	list, err := c.cs.CoreV1().Events(w.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list the Events of %s %s/%s: %w", w.Kind, w.Namespace, w.Name, err)
	}
	out := []eventDoc{}
	for _, e := range list.Items {
		out = append(out, eventDoc{Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count, LastSeen: lastSeen(&e).UTC()})
	}
	slices.SortStableFunc(out, func(a, b eventDoc) int { return a.LastSeen.Compare(b.LastSeen) })
	return out, nil
}

func lastSeen(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}

// printWhy writes why for a person.
func (c *cli) printWhy(w io.Writer, d *whyDoc) {
	fmt.Fprintf(w, "%s %s/%s, created %s\n", d.Kind, d.Namespace, d.Name, c.at(d.Created))
	switch {
	case d.Watched.Watched == nil:
		field(w, "Watched", "unknown: "+d.Watched.Why)
	case *d.Watched.Watched:
		field(w, "Watched", "yes: "+d.Watched.Why)
	default:
		field(w, "Watched", "no: "+d.Watched.Why)
	}
	if d.Paused {
		field(w, "Paused", "yes: its restarts wait until it resumes")
	}
	if d.OnDelete {
		field(w, "Updates", "OnDelete: a restart rolls nothing until its pods are deleted")
	}
	if d.RestartedAt != "" {
		field(w, "Restarted at", d.RestartedAt+" ("+kube.RestartedAtAnnotation+")")
	}
	if len(d.Ignored) > 0 {
		field(w, "Ignored", strings.Join(d.Ignored, ", ")+" ("+kube.IgnoreContainersAnnotation+")")
	}
	if d.Forecast != nil {
		c.printForecast(w, d.Forecast)
	}
	for _, ctr := range d.Containers {
		c.printContainer(w, d, &ctr)
	}
	for _, name := range slices.Sorted(maps.Keys(d.RestartedFor)) {
		if !slices.ContainsFunc(d.Containers, func(ctr containerDoc) bool { return ctr.Name == name }) {
			fmt.Fprintf(w, "\nRestarted for %s (no such container now): %s\n", name, d.RestartedFor[name])
		}
	}
	fmt.Fprintln(w)
	if len(d.Events) == 0 {
		fmt.Fprintln(w, "Events: none from urunner (Events expire after the API server's --event-ttl, 1h by default)")
		return
	}
	fmt.Fprintln(w, "Events:")
	t := newTable(w, "  LAST SEEN", "TYPE", "REASON", "MESSAGE")
	for _, e := range d.Events {
		t.row("  "+c.ago(e.LastSeen), e.Type, e.Reason, e.Message)
	}
	t.flush()
}

func (c *cli) printContainer(w io.Writer, doc *whyDoc, d *containerDoc) {
	kind := "Container"
	if d.Init {
		kind = "Init container"
	}
	fmt.Fprintf(w, "\n%s %s\n", kind, d.Name)
	line := func(label, value string) { fmt.Fprintf(w, "  %-15s%s\n", label, value) }
	line("image", d.Image)
	if d.NotFollowed != "" {
		line("not followed", d.NotFollowed)
		return
	}
	if d.Reference != d.Image {
		line("reference", d.Reference)
	}
	if d.RestartedFor != "" {
		line("restarted for", d.RestartedFor)
	}
	believed := short(d.Believed)
	if believed == "" {
		believed = "nothing yet (first sight: the next run records what the tag points to)"
	}
	line("believed runs", believed)
	t := d.Tag
	if t == nil {
		line("tag", "not in the state: never looked up (its registry, namespace or workload is not watched, or no run since it appeared)")
		return
	}
	if t.Digest == "" {
		line("tag", "never resolved")
	} else {
		line("tag points to", short(t.Digest)+" since "+c.at(deref(t.Seen)))
	}
	line("last checked", c.at(deref(t.Checked)))
	if t.Base != "" {
		line("base", short(t.Base)+" (believed of the tag's workloads that record no later restart)")
	}
	if t.FailingSince != nil {
		line("failing since", c.at(*t.FailingSince)+": "+t.Error)
	}
	held := false
	for _, q := range t.Quarantines {
		c.printQuarantine(line, doc, q)
		held = held || q.Digest == t.Digest && q.Holds
	}
	if t.Exception != nil {
		line("exception", "runs "+orDash(short(t.Exception.Runs))+", recorded apart from the tag's other workloads (held, paused or its restart failed)")
	}
	if d.Believed != "" && t.Digest != "" && d.Believed != t.Digest {
		moved := "the tag moved from " + short(d.Believed) + " to " + short(t.Digest)
		if held {
			line("held", moved+", a digest quarantined in this namespace: nothing restarts onto it until it is lifted (see above)")
		} else {
			line("due", moved+": the next run restarts it unless something holds it (kubectl urunner plan shows what)")
		}
	}
}

// forecastOf is the last run's forecast for the workload, nil when it
// foresaw nothing for it. A report that cannot be read costs the forecast,
// not the rest of why, and says so.
func (c *cli) forecastOf(in *installed, w kube.Workload) *report.Forecast {
	run, _, err := in.lastRun()
	if err != nil {
		fmt.Fprintf(c.err, "warning: no forecast: %v\n", err)
		return nil
	}
	if run == nil {
		return nil
	}
	for i, f := range run.Forecasts {
		if f.Namespace != w.Namespace || f.Kind != w.Kind || f.Name != w.Name {
			continue
		}
		if run.Version != reportVersion {
			fmt.Fprintf(c.err, "warning: the run report is version %d; this plugin reads version %d\n", run.Version, reportVersion)
		}
		return &run.Forecasts[i]
	}
	return nil
}

// printForecast writes what the last run foresaw: the run that restarts
// the workload, or what it waits for, then the holds on the way.
func (c *cli) printForecast(w io.Writer, f *report.Forecast) {
	switch {
	case f.Restarts != nil && f.Digest != "":
		field(w, "Foreseen", "restarts onto "+short(f.Digest)+" at the run of "+c.at(*f.Restarts))
	case f.Restarts != nil:
		field(w, "Foreseen", "restarts at the run of "+c.at(*f.Restarts))
	case f.Waits != "":
		field(w, "Foreseen", "no restart foreseen: "+f.Waits)
	default:
		field(w, "Foreseen", "no restart foreseen within the forecast's horizon")
	}
	for i, h := range f.Holds {
		s := h.Rule
		if h.Until != nil {
			s += " until " + c.at(*h.Until)
		}
		s += " (" + h.Why + ")"
		if i == 0 {
			field(w, "", "holds: "+s)
		} else {
			field(w, "", "       then "+s)
		}
	}
	field(w, "", "foreseen by the run of "+c.at(f.ForeseenAt))
}

// printQuarantine says what a quarantine is, where it was lifted, and
// what a person can do.
func (c *cli) printQuarantine(line func(label, value string), doc *whyDoc, q quarantineView) {
	line("quarantined", short(q.Digest)+" since "+c.at(q.Since)+": "+q.Why)
	switch {
	case q.LiftedEverywhere != nil:
		line("lifted", "everywhere at "+c.at(*q.LiftedEverywhere)+" (kubectl urunner lift)")
		return
	case len(q.LiftedIn) > 0:
		line("lifted in", strings.Join(q.LiftedIn, ", ")+" (a lift annotation there)")
	}
	if !q.Holds {
		return
	}
	line("to lift", fmt.Sprintf("in namespace %s: kubectl annotate %s/%s -n %s %s=%s", doc.Namespace, strings.ToLower(doc.Kind), doc.Name,
		doc.Namespace, policy.LiftQuarantineAnnotation, short(q.Digest)))
	line("", "everywhere (needs write access to urunner's state): kubectl urunner lift "+short(q.Digest))
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
