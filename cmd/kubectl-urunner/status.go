package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urunner/urunner/report"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"

	"github.com/urunner/urunner/notify"
	"github.com/urunner/urunner/state"
)

// lastRun is the report of the last run that wrote the state
// (data["last-run.json"]).
type lastRun = report.Run

// reportVersion is the run report version this plugin reads.
const reportVersion = report.Version

// maxJobs bounds the Jobs status lists: the CronJob's history limits keep
// about that many.
const maxJobs = 10

// statusDoc is `status -o json`.
type statusDoc struct {
	Namespace      string      `json:"namespace"`
	CronJob        *cronJobDoc `json:"cronJob"`
	StateConfigMap string      `json:"stateConfigMap"`
	// StateExists is false before a run has written the state.
	StateExists bool `json:"stateExists"`
	// ConfigMapExists is false when the state ConfigMap is missing (the
	// chart creates it; charts before it let the first run create it).
	ConfigMapExists bool `json:"configMapExists"`
	// LastRun is the report of the last run that wrote the state, as
	// urunner stored it; null before any did.
	LastRun json.RawMessage `json:"lastRun"`
	// LastSuccess is when the last run that exited 0 started.
	LastSuccess   *time.Time      `json:"lastSuccess"`
	References    int             `json:"references"`
	FailingImages []failingDoc    `json:"failingImages"`
	Quarantined   []quarantineDoc `json:"quarantined"`
	Jobs          []jobDoc        `json:"jobs"`
}

type cronJobDoc struct {
	Name           string     `json:"name"`
	Schedule       string     `json:"schedule"`
	Suspended      bool       `json:"suspended"`
	LastSchedule   *time.Time `json:"lastSchedule"`
	LastSuccessful *time.Time `json:"lastSuccessful"`
}

type failingDoc struct {
	Image string    `json:"image"`
	Since time.Time `json:"since"`
	Error string    `json:"error"`
}

type quarantineDoc struct {
	// Image names the references whose rollouts failed with the digest.
	Image  string    `json:"image"`
	Digest string    `json:"digest"`
	Why    string    `json:"why"`
	Since  time.Time `json:"since"`
	// LiftedIn are the namespaces where a lift annotation lifted it.
	LiftedIn []string `json:"liftedIn,omitempty"`
}

// jobDoc is one Job of the CronJob.
type jobDoc struct {
	Name string `json:"name"`
	// Trigger is scheduled, manual (kubectl create job), push (the
	// receiver), plan or run (this plugin).
	Trigger  string     `json:"trigger"`
	Created  time.Time  `json:"created"`
	Started  *time.Time `json:"started"`
	Finished *time.Time `json:"finished"`
	// Result is active, succeeded or failed.
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"`
	// ExitCode is urunner's, from its last pod, while the pod is kept.
	ExitCode *int `json:"exitCode"`
}

func (c *cli) status(ctx context.Context, out io.Writer) error {
	in, err := c.readInstall(ctx)
	if err != nil {
		return err
	}
	doc := statusDoc{Namespace: c.namespace, StateConfigMap: in.stateCM, References: len(in.state.Refs),
		LastSuccess: timePtr(in.state.LastSuccess), FailingImages: failing(in.state), Quarantined: quarantined(in.state),
		Jobs: []jobDoc{}, StateExists: in.cm != nil && in.cm.BinaryData[state.DataKey] != nil, ConfigMapExists: in.cm != nil}
	if in.cronJob != nil {
		doc.CronJob = cronJobSummary(in.cronJob)
		if doc.Jobs, err = c.jobs(ctx, in.cronJob); err != nil {
			return err
		}
	}
	run, raw, err := in.lastRun()
	if err != nil {
		return err
	}
	if run != nil {
		doc.LastRun = json.RawMessage(raw)
		if doc.LastSuccess == nil {
			doc.LastSuccess = run.LastSuccess
		}
	}
	if c.output == "json" {
		if in.cronJobErr != nil {
			fmt.Fprintf(c.err, "warning: %v\n", in.cronJobErr)
		}
		return writeJSON(out, doc)
	}
	c.printStatus(out, &doc, run, in.cronJobErr)
	return nil
}

// cronJobSummary summarises the CronJob's schedule and its controller's view.
func cronJobSummary(cj *batchv1.CronJob) *cronJobDoc {
	d := &cronJobDoc{Name: cj.Name, Schedule: cj.Spec.Schedule, Suspended: ptrTrue(cj.Spec.Suspend)}
	if t := cj.Status.LastScheduleTime; t != nil {
		d.LastSchedule = timePtr(t.Time)
	}
	if t := cj.Status.LastSuccessfulTime; t != nil {
		d.LastSuccessful = timePtr(t.Time)
	}
	return d
}

func ptrTrue(b *bool) bool { return b != nil && *b }

func failing(st state.State) []failingDoc {
	out := []failingDoc{}
	for _, k := range st.Keys() {
		if r := st.Refs[k]; !r.Failing.IsZero() {
			out = append(out, failingDoc{Image: k, Since: r.Failing.UTC(), Error: r.Error})
		}
	}
	return out
}

func quarantined(st state.State) []quarantineDoc {
	out := []quarantineDoc{}
	for _, d := range slices.Sorted(maps.Keys(st.Quarantines)) {
		if q := st.Quarantines[d]; !q.LiftedEverywhere() {
			out = append(out, quarantineDoc{Image: strings.Join(q.Refs, ", "), Digest: d, Why: q.Why, Since: q.At.UTC(), LiftedIn: q.LiftedNamespaces()})
		}
	}
	return out
}

// jobs lists the CronJob's Jobs, newest first, with the exit code of each
// one's last pod where the pod is still there.
func (c *cli) jobs(ctx context.Context, cj *batchv1.CronJob) ([]jobDoc, error) {
	list, err := c.cs.BatchV1().Jobs(c.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list the Jobs of CronJob %s/%s: %w", c.namespace, cj.Name, err)
	}
	var own []batchv1.Job
	for _, j := range list.Items {
		if ref := metav1.GetControllerOf(&j); ref != nil && ref.Kind == "CronJob" && ref.UID == cj.UID {
			own = append(own, j)
		}
	}
	slices.SortFunc(own, func(a, b batchv1.Job) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) })
	own = own[:min(len(own), maxJobs)]
	codes, err := c.exitCodes(ctx, own)
	if err != nil {
		return nil, err
	}
	docs := []jobDoc{}
	for _, j := range own {
		d := jobDoc{Name: j.Name, Trigger: triggerOf(&j), Created: j.CreationTimestamp.UTC(), Result: "active"}
		if j.Status.StartTime != nil {
			d.Started = timePtr(j.Status.StartTime.Time)
		}
		for _, cond := range j.Status.Conditions {
			if cond.Status != corev1.ConditionTrue {
				continue
			}
			switch cond.Type {
			case batchv1.JobComplete:
				d.Result, d.Finished = "succeeded", timePtr(cond.LastTransitionTime.Time)
			case batchv1.JobFailed:
				d.Result, d.Reason, d.Finished = "failed", cond.Reason, timePtr(cond.LastTransitionTime.Time)
			}
		}
		if code, ok := codes[j.UID]; ok {
			d.ExitCode = &code
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// triggerOf says what started a Job of the CronJob.
func triggerOf(j *batchv1.Job) string {
	if t := j.Annotations[triggerAnnotation]; t != "" {
		return t
	}
	if j.Annotations[instantiateAnnotation] == "manual" {
		return "manual"
	}
	return "scheduled"
}

// exitCodes reads the exit code of urunner's container in the newest
// terminated pod of each Job, with one LIST per selector label (Jobs
// select their pods by batch.kubernetes.io/controller-uid, before
// Kubernetes 1.27 by controller-uid).
func (c *cli) exitCodes(ctx context.Context, jobs []batchv1.Job) (map[types.UID]int, error) {
	byKey := map[string][]string{}
	for _, j := range jobs {
		if j.Spec.Selector == nil {
			continue
		}
		for k, v := range j.Spec.Selector.MatchLabels {
			if strings.HasSuffix(k, "controller-uid") {
				byKey[k] = append(byKey[k], v)
			}
		}
	}
	codes := map[types.UID]int{}
	newest := map[types.UID]time.Time{}
	for key, uids := range byKey {
		req, err := labels.NewRequirement(key, selection.In, uids)
		if err != nil {
			continue // not a label value: a Job made by hand
		}
		pods, err := c.cs.CoreV1().Pods(c.namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.NewSelector().Add(*req).String()})
		if apierrors.IsForbidden(err) {
			return codes, nil // the exit codes are a detail; the Jobs' results stand
		}
		if err != nil {
			return nil, fmt.Errorf("list the pods of the CronJob's Jobs: %w", err)
		}
		for _, p := range pods.Items {
			uid := types.UID(p.Labels[key])
			s := runStatus(&p)
			if s == nil || s.State.Terminated == nil || p.CreationTimestamp.Time.Before(newest[uid]) {
				continue
			}
			codes[uid], newest[uid] = int(s.State.Terminated.ExitCode), p.CreationTimestamp.Time
		}
	}
	return codes, nil
}

// printStatus writes status for a person.
func (c *cli) printStatus(w io.Writer, d *statusDoc, run *lastRun, cronJobErr error) {
	if cj := d.CronJob; cj != nil {
		s := fmt.Sprintf("%s/%s, schedule %q", d.Namespace, cj.Name, cj.Schedule)
		if cj.Suspended {
			s += ", suspended"
		}
		field(w, "CronJob", s)
		if cj.LastSchedule != nil {
			field(w, "Scheduled", c.at(*cj.LastSchedule))
		}
	} else {
		field(w, "CronJob", "not read: "+cronJobErr.Error())
	}
	switch {
	case d.StateExists:
		field(w, "State", fmt.Sprintf("ConfigMap %s/%s, %s", d.Namespace, d.StateConfigMap, count(d.References, "image reference")))
	case d.ConfigMapExists:
		field(w, "State", fmt.Sprintf("ConfigMap %s/%s, not written by a run yet", d.Namespace, d.StateConfigMap))
	default:
		field(w, "State", fmt.Sprintf("ConfigMap %s/%s missing (helm upgrade creates it; with a chart that does not, the first run does)", d.Namespace, d.StateConfigMap))
	}
	if run == nil {
		field(w, "Last run", "none recorded yet (the first run writes it)")
	} else {
		c.printRun(w, run)
	}
	last := "never"
	if d.LastSuccess != nil {
		last = c.at(*d.LastSuccess)
	}
	field(w, "Last success", last)
	if run != nil {
		c.printRunLists(w, run)
	}
	c.printFailing(w, d)
	c.printJobs(w, d, run)
}

func (c *cli) printRun(w io.Writer, run *lastRun) {
	if run.Version != reportVersion {
		fmt.Fprintf(w, "warning: the run report is version %d; this plugin reads version %d\n", run.Version, reportVersion)
	}
	result := "ok"
	if run.ExitCode != 0 {
		result = "failed"
	}
	dur := (time.Duration(run.Duration * float64(time.Second))).Round(time.Millisecond)
	s := fmt.Sprintf("%s, took %s, exit %d (%s)", c.at(run.Started), dur, run.ExitCode, result)
	if run.DryRun {
		s += ", dry run"
	}
	field(w, "Last run", s)
	field(w, "Counts", fmt.Sprintf("%s, %s, %s (%d resolved), %d changed, %d restarted, %d baselined, %d held, %d failed",
		count(run.Namespaces, "namespace"), count(run.Workloads, "workload"), count(run.Images, "image"), run.Resolved,
		run.Changed, run.Restarted, run.Baselined, run.Held, run.Failed))
	if run.CapExceeded {
		field(w, "Cap", "more restarts than URUNNER_CONF_MAX_RESTARTS: none was made")
	}
	if run.Error != "" {
		field(w, "Error", run.Error)
	}
}

func (c *cli) printRunLists(w io.Writer, run *lastRun) {
	fmt.Fprintln(w)
	if len(run.Restarts) == 0 {
		fmt.Fprintln(w, "Restarts: none")
	} else {
		fmt.Fprintln(w, "Restarts:")
		header := []string{"  WORKLOAD", "CONTAINER", "IMAGE", "FROM", "TO"}
		pending := slices.ContainsFunc(run.Restarts, func(r notify.Restart) bool { return r.Pending != "" })
		if pending {
			header = append(header, "PENDING")
		}
		t := newTable(w, header...)
		for _, r := range run.Restarts {
			row := []string{"  " + r.Namespace + "/" + strings.ToLower(r.Kind) + "/" + r.Name, r.Container, r.Image, orDash(short(r.From)), short(r.To)}
			if pending {
				row = append(row, orDash(r.Pending))
			}
			t.row(row...)
		}
		t.flush()
	}
	if len(run.Failures) == 0 {
		fmt.Fprintln(w, "Failures: none")
	} else {
		fmt.Fprintln(w, "Failures:")
		t := newTable(w, "  WORKLOAD", "IMAGE", "ERROR")
		for _, f := range run.Failures {
			wl := "-"
			if f.Name != "" {
				wl = f.Namespace + "/" + strings.ToLower(f.Kind) + "/" + f.Name
			} else if f.Namespace != "" {
				wl = "namespace " + f.Namespace
			}
			t.row("  "+wl, orDash(f.Image), f.Error)
		}
		t.flush()
	}
	if len(run.Rollouts) > 0 {
		fmt.Fprintln(w, "Rollouts:")
		t := newTable(w, "  WORKLOAD", "RESULT", "ROLLED BACK", "MESSAGE")
		for _, r := range run.Rollouts {
			t.row("  "+r.Namespace+"/"+strings.ToLower(r.Kind)+"/"+r.Name, r.Result, strconv.FormatBool(r.RolledBack), r.Message)
		}
		t.flush()
	}
	printRegistries(w, run.Registries)
}

// printRegistries prints what the run spent per registry and credentials,
// and what each registry said is left of its rate limit.
func printRegistries(w io.Writer, rs []report.Registry) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w, "Registries:")
	t := newTable(w, "  REGISTRY", "CREDENTIAL", "MANIFEST HEAD", "MANIFEST GET", "BLOB GET", "TOKEN", "PULLS", "RATE LIMIT LEFT", "429")
	for _, r := range rs {
		left := "-"
		if rl := r.RateLimit; rl != nil {
			left = fmt.Sprintf("%d of %d", rl.Remaining, rl.Limit)
			if rl.Window > 0 {
				left += " per " + window(time.Duration(rl.Window*float64(time.Second)))
			}
		}
		limited := "-"
		if r.Limited > 0 {
			limited = fmt.Sprintf("%d, retry after %s", r.Limited, time.Duration(r.RetryAfter*float64(time.Second)))
		}
		t.row("  "+r.Registry, orDash(r.Credential), strconv.Itoa(r.ManifestHeads), strconv.Itoa(r.ManifestGets),
			strconv.Itoa(r.BlobGets), strconv.Itoa(r.Tokens), strconv.Itoa(r.Pulls), left, limited)
	}
	t.flush()
}

// window writes a rate limit's window as people say it: 6h, 1h30m, 90s.
func window(d time.Duration) string {
	s := d.String()
	if d >= time.Minute {
		s = strings.TrimSuffix(s, "0s")
		if d >= time.Hour {
			s = strings.TrimSuffix(s, "0m")
		}
	}
	return s
}

func (c *cli) printFailing(w io.Writer, d *statusDoc) {
	if len(d.FailingImages) > 0 {
		fmt.Fprintln(w, "Failing images:")
		t := newTable(w, "  IMAGE", "FAILING SINCE", "LAST ERROR")
		for _, f := range d.FailingImages {
			t.row("  "+f.Image, c.at(f.Since), f.Error)
		}
		t.flush()
	}
	if len(d.Quarantined) > 0 {
		fmt.Fprintln(w, "Quarantined digests:")
		t := newTable(w, "  IMAGE", "DIGEST", "SINCE", "LIFTED IN", "WHY")
		for _, q := range d.Quarantined {
			t.row("  "+orDash(q.Image), short(q.Digest), c.at(q.Since), orDash(strings.Join(q.LiftedIn, ",")), q.Why)
		}
		t.flush()
	}
}

func (c *cli) printJobs(w io.Writer, d *statusDoc, run *lastRun) {
	if d.CronJob == nil {
		return
	}
	fmt.Fprintln(w)
	if len(d.Jobs) == 0 {
		fmt.Fprintln(w, "Jobs: none")
		return
	}
	fmt.Fprintln(w, "Jobs:")
	t := newTable(w, "  NAME", "TRIGGER", "CREATED", "DURATION", "RESULT", "EXIT")
	for _, j := range d.Jobs {
		dur := "-"
		if j.Started != nil && j.Finished != nil {
			dur = j.Finished.Sub(*j.Started).Round(time.Second).String()
		}
		result := j.Result
		if j.Reason != "" {
			result += " (" + j.Reason + ")"
		}
		code := "-"
		if j.ExitCode != nil {
			code = strconv.Itoa(*j.ExitCode)
		}
		t.row("  "+j.Name, j.Trigger, c.ago(j.Created), dur, result, code)
	}
	t.flush()
	// A run that exits before saving (bad configuration, a crash) leaves
	// no report: the failed Job is where its story is.
	for _, j := range d.Jobs {
		if j.Trigger == "plan" || j.Result == "active" {
			continue
		}
		if j.Result == "failed" && (run == nil || j.Created.After(run.Started)) {
			fmt.Fprintf(w, "\nJob %s failed after the last recorded run; its log says why: kubectl logs job/%s -n %s\n", j.Name, j.Name, d.Namespace)
		}
		break
	}
}
