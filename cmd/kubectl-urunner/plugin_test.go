package main

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/state"
)

// The plugin's commands on one install, in the order a person uses them:
// status before any run, run (a baseline), plan after a push (nothing
// changes), run (the restarts), status, why for each kind; then a failing
// image and a quarantined digest as status and why show them.
func TestOperatingUrunnerWithThePlugin(t *testing.T) {
	in := newInstall(t, "story", "urunner")
	web, agent := in.image("shop/web:latest"), in.image("shop/agent:latest")
	v1 := in.push("shop/web:latest", "v1")
	agent1 := in.push("shop/agent:latest", "a1")
	in.deployment("web", web, false)
	in.deployment("paused", web, true)
	in.statefulSet("db", web)
	in.daemonSet("agent", agent)

	// Before any run: the CronJob, and nothing recorded.
	code, out, _ := in.run("status")
	if code != 0 {
		t.Fatalf("status before any run: exit %d", code)
	}
	mustRow(t, "status before any run", out, "CronJob", `story/urunner, schedule "*/5 * * * *", suspended`)
	// The chart creates the ConfigMap, empty.
	mustRow(t, "status before any run", out, "State", "ConfigMap story/urunner-state, not written by a run yet")
	mustRow(t, "status before any run", out, "Last run", "none recorded yet")
	mustRow(t, "status before any run", out, "Last success", "never")
	mustContain(t, "status before any run", out, "Jobs: none")

	// run: a Job from the CronJob, its log followed to the end.
	code, out, errOut := in.run("run")
	if code != 0 {
		t.Fatalf("first run: exit %d", code)
	}
	mustContain(t, "the first run's log", out, "run finished", "baselined=4")
	mustContain(t, "the first run's progress", errOut, "job.batch/urunner-run-", "created in namespace story")

	// plan after a push: the dry run's table, and nothing changed.
	v2 := in.push("shop/web:latest", "v2")
	before := in.stateCM()
	code, out, _ = in.run("plan")
	if code != 0 {
		t.Fatalf("plan: exit %d", code)
	}
	mustRow(t, "plan", out, "IMAGE", "RUNS", "CURRENT", "ACTION", "WORKLOADS")
	mustRow(t, "plan", out, web, short(v1), short(v2), "restart", "story-app/deployment/web:app, story-app/statefulset/db:app")
	mustRow(t, "plan", out, web, short(v1), short(v2), "wait (paused", "story-app/deployment/paused:app")
	mustRow(t, "plan", out, agent, short(agent1), short(agent1), "none", "story-app/daemonset/agent:app")
	if got := in.restartedAt("web"); got != "" {
		t.Errorf("plan restarted web (restartedAt %q)", got)
	}
	if after := in.stateCM(); after.ResourceVersion != before.ResourceVersion {
		t.Error("plan wrote the state")
	}
	planJob := in.jobs()[0]
	if diff := cmp.Diff(map[string]string{instantiateAnnotation: "manual", triggerAnnotation: "plan"}, planJob.Annotations); diff != "" {
		t.Errorf("plan Job annotations (-want +got):\n%s", diff)
	}
	if ref := metav1.GetControllerOf(&planJob); ref == nil || ref.Kind != "CronJob" || ref.Name != "urunner" {
		t.Errorf("plan Job controller = %+v, want CronJob urunner", ref)
	}
	if got := envValues(planJob.Spec.Template.Spec.Containers[0].Env, dryRunEnv); !slices.Equal(got, []string{"true"}) {
		t.Errorf("plan Job %s = %q, want exactly [true]", dryRunEnv, got)
	}

	// run: the restarts, with the registry's own count of what it spent.
	in.reg.ResetRequests()
	code, out, _ = in.run("run")
	if code != 0 {
		t.Fatalf("second run: exit %d", code)
	}
	mustContain(t, "the second run's log", out, "restarted", "restart deferred")
	if in.restartedAt("web") == "" {
		t.Fatal("the second run did not restart web")
	}

	code, out, _ = in.run("status")
	if code != 0 {
		t.Fatalf("status: exit %d", code)
	}
	mustRow(t, "status after the restarts", out, "Last run", "exit 0 (ok)")
	mustRow(t, "status after the restarts", out, "Counts", "1 namespace, 4 workloads, 2 images (2 resolved), 3 changed, 2 restarted, 0 baselined, 1 held, 0 failed")
	mustRow(t, "status after the restarts", out, "WORKLOAD", "CONTAINER", "IMAGE", "FROM", "TO")
	mustRow(t, "status after the restarts", out, "story-app/deployment/web", "app", web, short(v1), short(v2))
	mustRow(t, "status after the restarts", out, "story-app/statefulset/db", "app", web, short(v1), short(v2))
	mustRow(t, "status after the restarts", out, "NAME", "TRIGGER", "CREATED", "DURATION", "RESULT", "EXIT")
	served := in.reg.Requests()
	mustRow(t, "status after the restarts", out, "REGISTRY", "CREDENTIAL", "MANIFEST HEAD", "MANIFEST GET", "BLOB GET", "TOKEN", "PULLS", "RATE LIMIT LEFT", "429")
	mustRow(t, "status after the restarts", out, in.reg.Host, "-", " "+strconv.Itoa(served["HEAD manifest"])+" ",
		" "+strconv.Itoa(served["GET manifest"])+" ", " "+strconv.Itoa(served["GET blob"])+" ", " 0 ", " "+strconv.Itoa(served["GET manifest"])+" ", " - ", " -")
	mustRow(t, "status after the restarts", out, "urunner-plan-", "plan")
	mustContain(t, "status after the restarts", out, "Failures: none")
	if strings.Contains(out, "Failing images") || strings.Contains(out, "Quarantined") {
		t.Errorf("status shows failing or quarantined images that are not:\n%s", out)
	}
	var doc statusDoc
	code, out, _ = in.run("status", "-o", "json")
	if code != 0 {
		t.Fatalf("status -o json: exit %d", code)
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	var lastRunDoc struct {
		Version   int `json:"version"`
		ExitCode  int `json:"exitCode"`
		Restarted int `json:"restarted"`
		Held      int `json:"held"`
	}
	if err := json.Unmarshal(doc.LastRun, &lastRunDoc); err != nil {
		t.Fatalf("lastRun: %v", err)
	}
	if diff := cmp.Diff(struct{ Version, ExitCode, Restarted, Held int }{2, 0, 2, 1}, struct{ Version, ExitCode, Restarted, Held int }(lastRunDoc)); diff != "" {
		t.Errorf("status -o json lastRun (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"run succeeded 0", "plan succeeded 0", "run succeeded 0"}, jobSummaries(doc.Jobs)); diff != "" {
		t.Errorf("status -o json jobs (-want +got):\n%s", diff)
	}
	if doc.References != 2 || doc.LastSuccess == nil || doc.CronJob == nil || !doc.CronJob.Suspended {
		t.Errorf("status -o json: references %d, lastSuccess %v, cronJob %+v", doc.References, doc.LastSuccess, doc.CronJob)
	}

	// why, for each kind.
	code, out, _ = in.run("why", "deploy/web", "-w", in.app)
	if code != 0 {
		t.Fatalf("why deploy/web: exit %d", code)
	}
	mustContain(t, "why deploy/web", out, "Deployment story-app/web, created ")
	mustRow(t, "why deploy/web", out, "Watched", "yes: namespace story-app is listed in URUNNER_CONF_NAMESPACES")
	mustRow(t, "why deploy/web", out, "restarted for", web+"@"+v2)
	mustRow(t, "why deploy/web", out, "believed runs", short(v2))
	mustRow(t, "why deploy/web", out, "tag points to", short(v2)+" since ")
	mustRow(t, "why deploy/web", out, "Normal", "ImageDigestChanged", "restarted by urunner: container app image "+web)
	got := why(t, in, "deploy/web")
	if diff := cmp.Diff(containerDoc{Name: "app", Image: web, Reference: web, RestartedFor: web + "@" + v2, Believed: v2}, got.Containers[0], ignoreTag); diff != "" {
		t.Errorf("why deploy/web container (-want +got):\n%s", diff)
	}
	if got.Containers[0].Tag == nil || got.Containers[0].Tag.Digest != v2 || got.Containers[0].Tag.Exception != nil {
		t.Errorf("why deploy/web tag = %+v, want digest %s, no exception", got.Containers[0].Tag, v2)
	}
	if diff := cmp.Diff([]string{"Normal ImageDigestChanged"}, eventSummaries(got.Events)); diff != "" {
		t.Errorf("why deploy/web events (-want +got):\n%s", diff)
	}

	// The paused Deployment was held: it runs the tag's base, v1, and
	// its move is due.
	code, out, _ = in.run("why", "deploy/paused", "-w", in.app)
	if code != 0 {
		t.Fatalf("why deploy/paused: exit %d", code)
	}
	mustRow(t, "why deploy/paused", out, "Paused", "yes: its restarts wait until it resumes")
	mustRow(t, "why deploy/paused", out, "believed runs", short(v1))
	mustRow(t, "why deploy/paused", out, "base", short(v1))
	mustRow(t, "why deploy/paused", out, "due", "the tag moved from "+short(v1)+" to "+short(v2))
	paused := why(t, in, "deployment.apps/paused")
	if tag := paused.Containers[0].Tag; paused.Containers[0].Believed != v1 || !paused.Paused || tag == nil || tag.Base != v1 || tag.Exception != nil {
		t.Errorf("why deploy/paused: believed %s, paused %v, tag %+v; want v1 %s as the base, paused, no exception", paused.Containers[0].Believed, paused.Paused, tag, v1)
	}

	if db := why(t, in, "sts/db"); db.Kind != "StatefulSet" || db.Containers[0].Believed != v2 {
		t.Errorf("why sts/db: kind %s believed %s, want StatefulSet on %s", db.Kind, db.Containers[0].Believed, v2)
	}
	if ds := why(t, in, "ds/agent"); ds.Kind != "DaemonSet" || ds.Containers[0].Believed != agent1 || len(ds.Events) != 0 {
		t.Errorf("why ds/agent: kind %s believed %s events %v, want DaemonSet on %s, no Event", ds.Kind, ds.Containers[0].Believed, ds.Events, agent1)
	}

	// A tag gone from the registry: the run fails, and says so.
	if err := in.reg.DeleteTag(t.Context(), "shop/agent:latest"); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = in.run("run")
	if code != 1 {
		t.Errorf("run with a missing tag: exit %d, want the run's 1", code)
	}
	mustContain(t, "a failed run's end", errOut, "the run exited 1")
	// And what only a verified rollout's failure or a failed restart
	// leaves, written here as the record stage stores it, with urunner's
	// own encoder: a quarantined digest, and an exception for the paused
	// Deployment (what it runs apart from the tag's base).
	v3, v0 := "sha256:"+strings.Repeat("3", 64), "sha256:"+strings.Repeat("0", 64)
	in.editState(func(st *state.State) {
		r := st.Refs[web]
		failed := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
		st.Quarantines = map[string]state.Quarantine{v3: {Why: "rollout failed in story-app/deployment/web: progress deadline exceeded",
			At: failed, Refs: []string{web}, Failed: map[string]time.Time{in.app: failed}, Lifted: map[string]time.Time{"elsewhere": failed.Add(time.Second)}}}
		r.Except = map[string]state.Exception{state.WorkloadContainer(in.app, "Deployment", "paused", "app"): {Runs: v0}}
		st.Refs[web] = r
	})
	code, out, _ = in.run("status")
	if code != 0 {
		t.Fatalf("status after a failed run: exit %d", code)
	}
	mustRow(t, "status after a failed run", out, "Last run", "exit 1 (failed)")
	mustRow(t, "status after a failed run", out, "Counts", "1 held, 1 failed")
	mustRow(t, "status after a failed run", out, "WORKLOAD", "IMAGE", "ERROR")
	mustRow(t, "status after a failed run", out, "-", agent, "resolve "+agent+": ", "not found")
	mustRow(t, "status after a failed run", out, "IMAGE", "FAILING SINCE", "LAST ERROR")
	mustRow(t, "status after a failed run", out, agent, "UTC (", "not found")
	mustRow(t, "status after a failed run", out, "IMAGE", "DIGEST", "SINCE", "LIFTED IN", "WHY")
	mustRow(t, "status after a failed run", out, web, short(v3), "UTC (", "elsewhere", "rollout failed in story-app/deployment/web: progress deadline exceeded")
	mustRow(t, "status after a failed run", out, "urunner-run-", "run", "ago", "failed (BackoffLimitExceeded)", "1")
	code, out, _ = in.run("why", "deploy/paused", "-w", in.app)
	if code != 0 {
		t.Fatalf("why deploy/paused: exit %d", code)
	}
	mustRow(t, "why deploy/paused with an exception", out, "believed runs", short(v0))
	mustRow(t, "why deploy/paused with an exception", out, "exception", "runs "+short(v0))
	mustRow(t, "why deploy/paused with an exception", out, "quarantined", short(v3)+" since", "rollout failed")
	mustRow(t, "why deploy/paused with a quarantine", out, "lifted in", "elsewhere (a lift annotation there)")
	mustRow(t, "why deploy/paused with a quarantine", out, "to lift", "in namespace "+in.app+": kubectl annotate deployment/paused -n "+in.app+" urunner.io/lift-quarantine="+short(v3))
	mustRow(t, "why deploy/paused with a quarantine", out, "everywhere", "kubectl urunner lift "+short(v3))

	// lift: the quarantine lifted everywhere, in the state ConfigMap.
	if code, _, errOut := in.run("lift", "sha256:"+strings.Repeat("4", 12)); code != 1 || !strings.Contains(errOut, "no quarantined digest starts with 444444444444") {
		t.Errorf("lift of a digest not quarantined: exit %d, %q; want 1 saying so", code, errOut)
	}
	code, out, _ = in.run("lift", short(v3))
	if code != 0 {
		t.Fatalf("lift: exit %d", code)
	}
	mustContain(t, "lift", out, "lifted the quarantine of "+v3+" everywhere")
	if q := in.state().Quarantines[v3]; !q.LiftedEverywhere() || q.HoldsIn(in.app) {
		t.Errorf("after lift, the stored quarantine is %+v, want lifted everywhere", q)
	}
	code, out, _ = in.run("why", "deploy/paused", "-w", in.app)
	if code != 0 {
		t.Fatalf("why deploy/paused after lift: exit %d", code)
	}
	mustRow(t, "why deploy/paused after lift", out, "lifted", "everywhere at", "(kubectl urunner lift)")
	code, out, _ = in.run("status")
	if code != 0 || strings.Contains(out, "Quarantined digests") {
		t.Errorf("status after lift: exit %d, still lists quarantines:\n%s", code, out)
	}
	ds := why(t, in, "ds/agent")
	if tag := ds.Containers[0].Tag; tag == nil || tag.FailingSince == nil || tag.Error == "" {
		t.Errorf("why ds/agent: tag %+v, want failing since and an error", tag)
	}
	if diff := cmp.Diff([]string{"Warning ImageLookupFailed"}, eventSummaries(ds.Events)); diff != "" {
		t.Errorf("why ds/agent events (-want +got):\n%s", diff)
	}

	// A workload that opted out, on a registry urunner does not watch.
	in.deployment("proxy", "nginx:1.27", false)
	in.label("proxy", kube.Label, kube.LabelDisable)
	code, out, _ = in.run("why", "deploy/proxy", "-w", in.app)
	if code != 0 {
		t.Fatalf("why deploy/proxy: exit %d", code)
	}
	mustRow(t, "why deploy/proxy", out, "Watched", "no: the workload is labelled urunner=disable")
	mustRow(t, "why deploy/proxy", out, "not followed", "registry docker.io is not watched (URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH is "+in.reg.Host+")")
}

var ignoreTag = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Tag" }, cmp.Ignore())

// why is `why KIND/NAME -o json` for a workload of the app namespace.
func why(t *testing.T, in *install, workload string) whyDoc {
	t.Helper()
	code, out, _ := in.run("why", workload, "-w", in.app, "-o", "json")
	if code != 0 {
		t.Fatalf("why %s -o json: exit %d", workload, code)
	}
	var d whyDoc
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Containers) == 0 {
		t.Fatalf("why %s: no container", workload)
	}
	return d
}

func envValues(env []corev1.EnvVar, name string) []string {
	var out []string
	for _, e := range env {
		if e.Name == name {
			out = append(out, e.Value)
		}
	}
	return out
}

func jobSummaries(jobs []jobDoc) []string {
	var out []string
	for _, j := range jobs {
		code := "-"
		if j.ExitCode != nil {
			code = strconv.Itoa(*j.ExitCode)
		}
		out = append(out, j.Trigger+" "+j.Result+" "+code)
	}
	return out
}

func eventSummaries(events []eventDoc) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Type+" "+e.Reason)
	}
	return out
}
