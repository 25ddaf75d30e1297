package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/report"
	"github.com/urunner/urunner/state"
	"sigs.k8s.io/yaml"
)

// why shows what the last run foresaw for the workload, read from the run
// report in the state ConfigMap (written here as a run writes it): the run
// that restarts it and the holds until then, or what it waits for; and
// nothing for a workload the run foresaw nothing for.
func TestWhySaysWhatTheLastRunForesaw(t *testing.T) {
	in := newInstall(t, "foresight", "foresight", "config.stateConfigMap=urunner-state")
	web := in.image("shop/web:latest")
	in.deployment("web", web, false)
	in.deployment("gated", web, false)
	in.deployment("quiet", web, false)

	now := time.Now().UTC().Truncate(time.Second)
	v2 := "sha256:" + strings.Repeat("7c", 32)
	foreseenAt, soaked, restarts := now.Add(-2*time.Minute), now.Add(5*time.Minute), now.Add(10*time.Minute)
	approve := "waiting for approval: kubectl annotate deployment/gated -n " + in.app + " " + policy.ApproveAnnotation + "=" + v2
	webForecast := report.Forecast{Namespace: in.app, Kind: "Deployment", Name: "web", Image: web, Digest: v2, Restarts: &restarts,
		Holds: []report.ForecastHold{
			{Rule: "soak", Why: "soaking: first seen 2m ago, soak 7m", From: foreseenAt, Until: &soaked},
			{Rule: "cap", Why: "3 restarts would pass URUNNER_CONF_MAX_RESTARTS=2", From: now.Add(5 * time.Minute)},
		}, ForeseenAt: foreseenAt}
	gatedForecast := report.Forecast{Namespace: in.app, Kind: "Deployment", Name: "gated", Image: web, Digest: v2,
		Holds: []report.ForecastHold{{Rule: "approval", Why: approve, From: foreseenAt}},
		Waits: approve, WaitsRule: "approval", ForeseenAt: foreseenAt}
	// Namesakes of web in another namespace and of another kind.
	other := report.Forecast{Namespace: "elsewhere", Kind: "Deployment", Name: "web", Image: web, Digest: "sha256:" + strings.Repeat("0", 64), ForeseenAt: foreseenAt}
	sts := report.Forecast{Namespace: in.app, Kind: "StatefulSet", Name: "web", Image: web, Digest: "sha256:" + strings.Repeat("1", 64), ForeseenAt: foreseenAt}
	in.writeReport(report.Run{Version: report.Version, Started: foreseenAt, Forecasts: []report.Forecast{other, sts, webForecast, gatedForecast}})

	at := func(t time.Time) string { return t.Format("2006-01-02 15:04:05 UTC") }
	code, out, errOut := in.run("why", "deploy/web", "-w", in.app)
	if code != 0 {
		t.Fatalf("why deploy/web: exit %d", code)
	}
	mustRow(t, "why deploy/web", out, "Foreseen", "restarts onto "+short(v2)+" at the run of "+at(restarts)+" (in ")
	mustRow(t, "why deploy/web", out, "holds: soak until "+at(soaked)+" (in ", ") (soaking: first seen 2m ago, soak 7m)")
	mustRow(t, "why deploy/web", out, "then cap (3 restarts would pass URUNNER_CONF_MAX_RESTARTS=2)")
	mustRow(t, "why deploy/web", out, "foreseen by the run of "+at(foreseenAt)+" (2m")
	if strings.Contains(errOut, "warning") {
		t.Errorf("why deploy/web warns: %s", errOut)
	}
	if diff := cmp.Diff(&webForecast, why(t, in, "deploy/web").Forecast); diff != "" {
		t.Errorf("why deploy/web -o json forecast (-want +got):\n%s", diff)
	}

	code, out, _ = in.run("why", "deploy/gated", "-w", in.app)
	if code != 0 {
		t.Fatalf("why deploy/gated: exit %d", code)
	}
	mustRow(t, "why deploy/gated", out, "Foreseen", "no restart foreseen: "+approve)
	mustRow(t, "why deploy/gated", out, "holds: approval ("+approve+")")
	if diff := cmp.Diff(&gatedForecast, why(t, in, "deploy/gated").Forecast); diff != "" {
		t.Errorf("why deploy/gated -o json forecast (-want +got):\n%s", diff)
	}

	// Foreseen nothing: no word of it.
	code, out, _ = in.run("why", "deploy/quiet", "-w", in.app)
	if code != 0 || strings.Contains(out, "Foreseen") || strings.Contains(out, "foreseen") {
		t.Errorf("why deploy/quiet: exit %d, speaks of a forecast:\n%s", code, out)
	}
	code, out, _ = in.run("why", "deploy/quiet", "-w", in.app, "-o", "json")
	if code != 0 || strings.Contains(out, `"forecast"`) {
		t.Errorf("why deploy/quiet -o json: exit %d, has a forecast:\n%s", code, out)
	}

	// A report of another version is read, with the warning status gives.
	in.writeReport(report.Run{Version: report.Version + 1, Started: foreseenAt, Forecasts: []report.Forecast{webForecast}})
	code, out, errOut = in.run("why", "deploy/web", "-w", in.app, "-o", "json")
	if code != 0 {
		t.Fatalf("why deploy/web with a newer report: exit %d", code)
	}
	mustContain(t, "why with a newer report", errOut, fmt.Sprintf("warning: the run report is version %d; this plugin reads version %d", report.Version+1, report.Version))
	var d whyDoc
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.Forecast == nil {
		t.Errorf("why -o json with a newer report: %v, forecast %v", err, d.Forecast)
	}
}

// writeReport stores rep as the last run's report, as the record stage
// keeps it in the state ConfigMap.
func (in *install) writeReport(rep report.Run) {
	in.t.Helper()
	b, err := json.Marshal(rep)
	if err != nil {
		in.t.Fatal(err)
	}
	cm := in.stateCM()
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[state.ReportKey] = string(b)
	if _, err := in.cs.CoreV1().ConfigMaps(in.namespace).Update(in.t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		in.t.Fatal(err)
	}
}

// plan IMAGE[@DIGEST] on the test ground: the dry run looks up that
// reference alone (the other moved image is not looked up), over the
// CronJob's schedule in its time zone, and with @DIGEST it is told the
// digest to take as just pushed.
func TestPlanAnImageAsIfPushed(t *testing.T) {
	in := newInstall(t, "whatif", "whatif", "config.stateConfigMap=urunner-state", "timeZone=Europe/Rome")
	web, api := in.image("shop/web:latest"), in.image("shop/api:latest")
	v1 := in.push("shop/web:latest", "v1")
	in.push("shop/api:latest", "a1")
	in.deployment("web", web, false)
	in.deployment("api", api, false)
	if code, _, _ := in.run("run"); code != 0 {
		t.Fatalf("baseline run: exit %d", code)
	}
	v2 := in.push("shop/web:latest", "v2")
	in.push("shop/api:latest", "a2")

	// Spelled without its tag: :latest, as the pods pull it.
	code, out, _ := in.run("plan", strings.TrimSuffix(web, ":latest"))
	if code != 0 {
		t.Fatalf("plan %s: exit %d", web, code)
	}
	mustRow(t, "plan of web alone", out, web, short(v1), short(v2), "restart", in.app+"/deployment/web:app")
	mustRow(t, "plan of web alone", out, api, "not looked up", "keep (not looked up)")
	mustContain(t, "plan of web alone", out, "images=1 resolved=1", `FORECAST (runs on URUNNER_CONF_SCHEDULE "CRON_TZ=Europe/Rome */5 * * * *")`)
	mustRow(t, "the forecast of web alone", out, in.app+"/deployment/web", web, short(v2), "nothing holds it")
	env := in.jobs()[0].Spec.Template.Spec.Containers[0].Env
	for name, want := range map[string][]string{
		dryRunEnv: {"true"}, referencesEnv: {web}, scheduleEnv: {"CRON_TZ=Europe/Rome */5 * * * *"}, planDigestEnv: nil,
	} {
		if got := envValues(env, name); !slices.Equal(got, want) {
			t.Errorf("plan Job %s = %q, want %q", name, got, want)
		}
	}

	v3 := in.push("shop/web:next", "v3")
	code, out, _ = in.run("plan", web+"@"+v3)
	if code != 0 {
		t.Fatalf("plan %s@%s: exit %d", web, v3, code)
	}
	// The tag still points at v2: the plan takes v3 as if pushed.
	mustRow(t, "plan of web@v3", out, web, short(v1), short(v3), "restart", in.app+"/deployment/web:app")
	mustRow(t, "the forecast of web@v3", out, in.app+"/deployment/web", web, short(v3), "nothing holds it")
	mustContain(t, "plan of web@v3", out, "planned as if just pushed")
	env = in.jobs()[0].Spec.Template.Spec.Containers[0].Env
	if got := envValues(env, planDigestEnv); !slices.Equal(got, []string{v3}) {
		t.Errorf("plan Job %s = %q, want [%s]", planDigestEnv, got, v3)
	}
	if got := envValues(env, referencesEnv); !slices.Equal(got, []string{web}) {
		t.Errorf("plan Job %s = %q, want [%s]", referencesEnv, got, web)
	}
}

// The chart tells the run its CronJob's schedule, in the CronJob's time
// zone, as the plugin tells a plan or run Job it: one value, whoever
// starts the run.
func TestTheChartAndThePluginTellTheRunOneSchedule(t *testing.T) {
	for _, tc := range []struct {
		name string
		sets []string
		want string
	}{
		{"the default schedule, no time zone", nil, "*/5 * * * *"},
		{"a schedule in a time zone", []string{"schedule=15 3 * * 1-5", "timeZone=Europe/Rome"}, "CRON_TZ=Europe/Rome 15 3 * * 1-5"},
	} {
		args := []string{"template", "urunner", root + "/chart/urunner", "-n", "urunner", "-s", "templates/cronjob.yaml", "--set", "registry.host=registry.example.com"}
		for _, s := range tc.sets {
			args = append(args, "--set", s)
		}
		var cj batchv1.CronJob
		if err := yaml.UnmarshalStrict([]byte(helm(t, args...)), &cj); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := envValues(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Env, scheduleEnv); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("%s: the chart's %s = %q, want [%q]", tc.name, scheduleEnv, got, tc.want)
		}
		job, err := jobFromCronJob(&cj, "plan", true, planTarget{})
		if err != nil {
			t.Fatal(err)
		}
		if got := envValues(job.Spec.Template.Spec.Containers[0].Env, scheduleEnv); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("%s: the plan Job's %s = %q, want [%q]", tc.name, scheduleEnv, got, tc.want)
		}
	}
}
