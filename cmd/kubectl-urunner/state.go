package main

import (
	"context"
	"encoding/json"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/state"
)

// installed is what status and why read of urunner's install: its
// CronJob (nil when missing or not readable, with why) and its state.
type installed struct {
	cronJob    *batchv1.CronJob
	cronJobErr error
	// stateCM names the state ConfigMap; cm is nil when it does not exist
	// yet (no run has written it).
	stateCM string
	cm      *corev1.ConfigMap
	state   state.State
}

// readInstall reads the CronJob, then the state ConfigMap it names. A
// CronJob that cannot be read is not fatal (helm uninstall leaves the
// state; a user may read ConfigMaps but not CronJobs); a state that cannot
// be read is.
func (c *cli) readInstall(ctx context.Context) (*installed, error) {
	in := &installed{state: state.State{Refs: map[string]state.Ref{}}}
	cj, err := c.cs.BatchV1().CronJobs(c.namespace).Get(ctx, c.cronJob, metav1.GetOptions{})
	if err != nil {
		in.cronJobErr = c.notFoundHint(err, "CronJob "+c.cronJob)
	} else {
		in.cronJob = cj
	}
	in.stateCM = firstOf(c.stateCM, stateConfigMapOf(cj), defaultStateCM)
	cm, err := c.cs.CoreV1().ConfigMaps(c.namespace).Get(ctx, in.stateCM, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && in.cronJob == nil:
		return nil, fmt.Errorf("neither CronJob %s nor state ConfigMap %s found in namespace %s: is urunner installed there? (-n NAMESPACE, --release or --cronjob, --state-configmap)", c.cronJob, in.stateCM, c.namespace)
	case apierrors.IsNotFound(err):
		return in, nil
	case err != nil:
		return nil, fmt.Errorf("read state ConfigMap %s/%s: %w", c.namespace, in.stateCM, err)
	}
	in.cm = cm
	if data, ok := cm.BinaryData[state.DataKey]; ok {
		st, err := state.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("state ConfigMap %s/%s key %s: %w", c.namespace, in.stateCM, state.DataKey, err)
		}
		in.state = st
	}
	return in, nil
}

// lastRun decodes the report of the last run that wrote the state
// (data["last-run.json"]), and returns it with its text as stored; nil
// before any run did.
func (in *installed) lastRun() (*lastRun, string, error) {
	if in.cm == nil || in.cm.Data[state.ReportKey] == "" {
		return nil, "", nil
	}
	raw := in.cm.Data[state.ReportKey]
	run := &lastRun{}
	if err := json.Unmarshal([]byte(raw), run); err != nil {
		return nil, "", fmt.Errorf("state ConfigMap %s/%s key %s: %w", in.cm.Namespace, in.stateCM, state.ReportKey, err)
	}
	return run, raw, nil
}

// stateConfigMapOf is the state ConfigMap the CronJob's urunner container
// is configured with, "" when it does not say (the default).
func stateConfigMapOf(cj *batchv1.CronJob) string {
	v, _ := envOf(cj, stateConfigMapEnv)
	return v
}

// envOf is a plain variable of the CronJob's urunner container; the last
// of several wins, as in a pod. False when it is not set (or the CronJob
// is nil).
func envOf(cj *batchv1.CronJob, name string) (string, bool) {
	if cj == nil {
		return "", false
	}
	cs := cj.Spec.JobTemplate.Spec.Template.Spec.Containers
	i := runContainer(cs)
	if i < 0 {
		return "", false
	}
	value, ok := "", false
	for _, e := range cs[i].Env {
		if e.Name == name && e.ValueFrom == nil {
			value, ok = e.Value, true
		}
	}
	return value, ok
}
