package run

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/retry"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
)

// waitActivePods waits until the controller manager has created n active pods
// for the Deployment name, and total pods in all (terminating and finished
// ones included), and returns the active ones in name order.
func (g *ground) waitActivePods(ns, name string, n, total int) []corev1.Pod {
	g.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		l, err := g.cs.CoreV1().Pods(ns).List(g.t.Context(), metav1.ListOptions{
			LabelSelector: labels.SelectorFromSet(map[string]string{"app": name}).String(),
		})
		if err != nil {
			g.t.Fatal(err)
		}
		var active []corev1.Pod
		for _, p := range l.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodFailed && p.Status.Phase != corev1.PodSucceeded {
				active = append(active, p)
			}
		}
		if len(active) == n && len(l.Items) == total {
			return active
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("deployment %s/%s has %d active pods of %d, want %d of %d", ns, name, len(active), len(l.Items), n, total)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kubeletReports stands in for the kubelet, which the test ground does not run:
// it writes through the status subresource what a kubelet writes for a pod
// whose containers started from the given imageIDs (container → imageID).
// Init containers have completed; a pod in phase Failed (evicted) has all
// its containers terminated.
func (g *ground) kubeletReports(pod corev1.Pod, phase corev1.PodPhase, ready bool, imageIDs map[string]string) {
	g.t.Helper()
	if err := g.writePodStatus(pod, kubeletStatus(pod, phase, ready, imageIDs)); err != nil {
		g.t.Fatal(err)
	}
}

// reportStatus is kubeletReports for a running, ready pod, with its error
// returned: for a goroutine standing in for the kubelet during a run.
func (g *ground) reportStatus(pod corev1.Pod, imageIDs map[string]string) error {
	return g.writePodStatus(pod, kubeletStatus(pod, corev1.PodRunning, true, imageIDs))
}

// kubeletStatus is what a kubelet writes for pod (see kubeletReports).
func kubeletStatus(pod corev1.Pod, phase corev1.PodPhase, ready bool, imageIDs map[string]string) corev1.PodStatus {
	now := metav1.Now()
	readyStatus := corev1.ConditionFalse
	if ready {
		readyStatus = corev1.ConditionTrue
	}
	status := corev1.PodStatus{
		Phase: phase,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: readyStatus, LastTransitionTime: now},
		},
		StartTime: &now,
	}
	done := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed", StartedAt: now, FinishedAt: now}}
	for _, c := range pod.Spec.InitContainers {
		status.InitContainerStatuses = append(status.InitContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: imageIDs[c.Name], State: done,
		})
	}
	for _, c := range pod.Spec.Containers {
		state := corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}
		if phase == corev1.PodFailed {
			state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Evicted", StartedAt: now, FinishedAt: now}}
		}
		status.ContainerStatuses = append(status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: imageIDs[c.Name], State: state, Ready: ready, Started: new(phase == corev1.PodRunning),
		})
	}
	return status
}

// writePodStatus writes status through the pod's status subresource.
func (g *ground) writePodStatus(pod corev1.Pod, status corev1.PodStatus) error {
	pods := g.cs.CoreV1().Pods(pod.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := pods.Get(g.t.Context(), pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Status = status
		_, err = pods.UpdateStatus(g.t.Context(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("report status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// holdTerminating deletes pod and keeps it terminating with a finalizer, as a
// kubelet does during the grace period; the test's cleanup lets it go.
func (g *ground) holdTerminating(pod corev1.Pod) {
	g.t.Helper()
	pods := g.cs.CoreV1().Pods(pod.Namespace)
	const finalizer = "urunner.io/test-hold"
	if _, err := pods.Patch(g.t.Context(), pod.Name, "application/merge-patch+json",
		[]byte(`{"metadata":{"finalizers":["`+finalizer+`"]}}`), metav1.PatchOptions{}); err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() {
		_, _ = pods.Patch(g.t.Context(), pod.Name, "application/merge-patch+json",
			[]byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
	if err := pods.Delete(g.t.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
		g.t.Fatal(err)
	}
}

// Serial: it counts the pages of a cluster-wide LIST of pods (one while the
// cluster holds fewer than 500), to which other tests' pods add.
func TestRunningReadsTheDigestsReadyPodsReport(t *testing.T) {
	threeReplicas := func(d *appsv1.Deployment) { d.Spec.Replicas = new(int32(3)) }
	g := newGround(t, testground.RegistryOptions{})
	app1 := g.push("team/app:1", "app v1")
	app2 := g.push("team/app:2", "app v2")
	app3 := g.push("team/app:3", "app v3")
	setup1 := g.push("team/setup:1", "setup v1")
	setup2 := g.push("team/setup:2", "setup v2")
	other := g.push("team/other:1", "other v1")
	evicted := g.push("team/other:0", "other v0")
	leaving := g.push("team/other:2", "other v2")
	twin := g.push("team/app:twin", "twin")
	id := func(repo, digest string) string { return g.image(repo) + "@" + digest }

	ns := g.namespace(true)
	g.deploy(ns, "web", g.image("team/app:1"), threeReplicas, withInit("setup", g.image("team/setup:1")))
	g.deploy(ns, "other", g.image("team/other:1"), threeReplicas)
	// Same name and labels in a namespace urunner does not watch.
	elsewhere := g.namespace(false)
	g.deploy(elsewhere, "web", g.image("team/app:1"))

	// web is mid-rollout: two Ready pods on different digests, and one
	// that pulled a third but is not Ready yet.
	web := g.waitActivePods(ns, "web", 3, 3)
	g.kubeletReports(web[0], corev1.PodRunning, true, map[string]string{"setup": id("team/setup", setup1), "app": id("team/app", app2)})
	g.kubeletReports(web[1], corev1.PodRunning, true, map[string]string{"setup": id("team/setup", setup1), "app": "docker-pullable://" + id("team/app", app1)})
	g.kubeletReports(web[2], corev1.PodRunning, false, map[string]string{"setup": id("team/setup", setup2), "app": id("team/app", app3)})

	// other: one Ready pod, one evicted and one terminating, each replaced
	// by the ReplicaSet controller with a pod that never starts.
	pods := g.waitActivePods(ns, "other", 3, 3)
	g.kubeletReports(pods[0], corev1.PodRunning, true, map[string]string{"app": id("team/other", other)})
	g.kubeletReports(pods[1], corev1.PodFailed, false, map[string]string{"app": id("team/other", evicted)})
	g.kubeletReports(pods[2], corev1.PodRunning, true, map[string]string{"app": id("team/other", leaving)})
	g.holdTerminating(pods[2])
	g.waitActivePods(ns, "other", 3, 5)

	g.kubeletReports(g.waitActivePods(elsewhere, "web", 1, 1)[0], corev1.PodRunning, true, map[string]string{"app": id("team/app", twin)})

	var workloads []kube.Workload
	if _, err := kube.New(g.lean).List(t.Context(), kube.Scope{Namespaces: []string{ns}}, []string{"Deployment", "StatefulSet", "DaemonSet"}, func(w kube.Workload) {
		workloads = append(workloads, w)
	}); err != nil {
		t.Fatal(err)
	}
	workloads = append(workloads, kube.Workload{Kind: "Deployment", Namespace: ns, Name: "no-selector"})

	cfg := cluster.AdminConfig()
	cfg.Wrap(g.api.wrap)
	counted := leanClients(t, cfg)
	g.api.reset()
	got, err := kube.New(counted).Running(t.Context(), kube.Scope{Namespaces: []string{ns}}, workloads)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]kube.Running{
		ns + "/Deployment/web": {
			Digests: map[string][]string{"app": slices.Sorted(slices.Values([]string{app1, app2})), "setup": {setup1}},
			Pods:    3,
			Ready:   2,
		},
		ns + "/Deployment/other":       {Digests: map[string][]string{"app": {other}}, Pods: 3, Ready: 1},
		ns + "/Deployment/no-selector": {},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Running (-want +got):\n%s", diff)
	}
	if n, all := g.api.get("GET pods"), g.api.total(); n != 1 || all != 1 {
		t.Errorf("API requests = %v, want a single LIST of pods", g.api.counts)
	}
}

// With URUNNER_CONF_RUNNING_PODS, the pods' own report decides: a workload
// whose ready pods all run the new digest (restarted by someone else) is
// not restarted again; converge restarts a drifted one on first sight.
// Serial: it counts LISTs of pods, one per enabled namespace when the run
// lists per namespace, and other tests' enabled namespaces add some.
func TestRunningPodsSuppressAndConverge(t *testing.T) {
	g := newGround(t, testground.RegistryOptions{})
	g.setenv("URUNNER_CONF_RUNNING_PODS", "true")
	old := g.push("team/app:latest", "v1")
	ns := g.namespace(true)
	g.deploy(ns, "done", g.image("team/app:latest"))
	g.mustRun()
	moved := g.push("team/app:latest", "v2")
	// Someone restarted "done" by hand: its (only) pod runs the new digest.
	for _, p := range g.waitActivePods(ns, "done", 1, 1) {
		g.kubeletReports(p, corev1.PodRunning, true, map[string]string{"app": g.image("team/app") + "@" + moved})
	}
	o := g.mustRun()
	if g.restartedAt(ns, "done") != "" {
		t.Errorf("restarted although every ready pod runs the new digest:\n%s", o.logs)
	}
	if got := g.believes(ns, "done", "app"); got != moved {
		t.Errorf("done believed to run %s, want the new digest recorded", got)
	}

	// converge: a new workload whose pods run the old digest restarts at
	// once instead of being baselined.
	g.setenv("URUNNER_CONF_FIRST_RUN", "converge")
	g.afterTheListing()
	g.deploy(ns, "drifted", g.image("team/app:latest"))
	for _, p := range g.waitActivePods(ns, "drifted", 1, 1) {
		g.kubeletReports(p, corev1.PodRunning, true, map[string]string{"app": g.image("team/app") + "@" + old})
	}
	g.mustRun()
	if g.restartedAt(ns, "drifted") == "" {
		t.Error("converge did not restart a drifted workload on first sight")
	}
	if g.api.get("GET pods") != 1 {
		t.Errorf("pods LISTs = %d, want 1", g.api.get("GET pods"))
	}
}
