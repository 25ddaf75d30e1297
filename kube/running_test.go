package kube_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/urunner/urunner/kube"
)

const digestC = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

// pod creates a pod of labels app=app with an init container "setup" and
// a container "app", and writes its status as the kubelet would: phase,
// Ready, and the digests its containers ran (init container terminated).
func pod(t *testing.T, ns, name, app string, phase corev1.PodPhase, ready bool, appDigest, setupDigest string) *corev1.Pod {
	t.Helper()
	cs := admin(t)
	p, err := cs.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "setup", Image: "registry.example.com/team/setup:1"}},
			Containers:     []corev1.Container{{Name: "app", Image: "registry.example.com/team/app:1"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status = corev1.PodStatus{
		Phase:      phase,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}},
		InitContainerStatuses: []corev1.ContainerStatus{{
			Name: "setup", Image: "registry.example.com/team/setup:1", ImageID: "registry.example.com/team/setup@" + setupDigest,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}},
		}},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", Image: "registry.example.com/team/app:1", ImageID: "registry.example.com/team/app@" + appDigest, Ready: ready,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		}},
	}
	if p, err = cs.CoreV1().Pods(ns).UpdateStatus(t.Context(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return p
}

// Running counts the active pods each workload's selector matches in its
// own namespace (not finished, not terminating), how many are Ready, and
// the digests the Ready ones ran, per container, init containers that ran
// included; listed cluster-wide or per namespace alike. A workload with no
// selector matches nothing.
func TestRunning(t *testing.T) {
	t.Parallel()
	ns, other := namespace(t, nil), namespace(t, nil)
	c := newClient(t, nil)
	deployment(t, ns, "web", 0) // no replicas: the pods below are the test's
	pod(t, ns, "web-a", "web", corev1.PodRunning, true, digestA, digestC)
	pod(t, ns, "web-b", "web", corev1.PodRunning, true, digestB, digestC)
	pod(t, ns, "web-starting", "web", corev1.PodRunning, false, digestC, digestC)
	pod(t, ns, "web-evicted", "web", corev1.PodFailed, false, digestC, digestC)
	pod(t, ns, "db-a", "db", corev1.PodRunning, true, digestC, digestC)
	pod(t, other, "web-a", "web", corev1.PodRunning, true, digestC, digestC)
	// A pod on no node is deleted at once: a finalizer keeps it terminating.
	going := pod(t, ns, "web-going", "web", corev1.PodRunning, true, digestC, digestC)
	cs := admin(t)
	hold := []byte(`{"metadata":{"finalizers":["example.com/hold"]}}`)
	if _, err := cs.CoreV1().Pods(ns).Patch(t.Context(), going.Name, types.MergePatchType, hold, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods(ns).Delete(t.Context(), going.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cs.CoreV1().Pods(ns).Patch(t.Context(), going.Name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})

	web := get(t, c, "Deployment", ns, "web")
	ghost := kube.Workload{Kind: "Deployment", Namespace: ns, Name: "ghost"}
	want := map[string]kube.Running{
		ns + "/Deployment/web":   {Pods: 3, Ready: 2, Digests: map[string][]string{"app": {digestA, digestB}, "setup": {digestC}}},
		ns + "/Deployment/ghost": {},
	}
	for _, perNamespace := range []bool{false, true} {
		got, err := c.Running(t.Context(), kube.Scope{Namespaces: []string{ns}, PerNamespace: perNamespace}, []kube.Workload{web, ghost})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("per namespace %v (-want +got):\n%s", perNamespace, diff)
		}
	}
}
