package testground

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeVersion is KUBE_VERSION in hack/tools.sh.
const kubeVersion = "v1.37.2"

const restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

func TestClusterRollsOutDeployment(t *testing.T) {
	c, err := StartCluster(t.Context(), ClusterOptions{Log: t.Output()})
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	admin, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}

	t.Run("kubeconfig reaches the pinned server version", func(t *testing.T) {
		cfg, err := clientcmd.BuildConfigFromFlags("", c.KubeconfigPath)
		if err != nil {
			t.Fatalf("load %s: %v", c.KubeconfigPath, err)
		}
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			t.Fatalf("discovery client: %v", err)
		}
		v, err := dc.ServerVersion()
		if err != nil {
			t.Fatalf("server version: %v", err)
		}
		if v.GitVersion != kubeVersion {
			t.Errorf("server version = %q, want %q", v.GitVersion, kubeVersion)
		}
	})

	t.Run("restart annotation creates a second ReplicaSet", func(t *testing.T) {
		ctx := t.Context()
		ns := createNamespace(t, admin, "rollout")
		labels := map[string]string{"app": "web"}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name: "web",
						// Never pulled: the test ground has no kubelet.
						Image: "127.0.0.1:1/none:latest",
					}}},
				},
			},
		}
		if _, err := admin.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create deployment: %v", err)
		}
		waitForReplicaSets(t, admin, ns, 1)

		restartedAt := time.Now().UTC().Format(time.RFC3339)
		patch := `{"spec":{"template":{"metadata":{"annotations":{"` + restartedAtAnnotation + `":"` + restartedAt + `"}}}}}`
		if _, err := admin.AppsV1().Deployments(ns).Patch(ctx, "web", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatalf("patch deployment: %v", err)
		}
		rss := waitForReplicaSets(t, admin, ns, 2)

		var got []string
		for _, rs := range rss {
			got = append(got, rs.Spec.Template.Annotations[restartedAtAnnotation])
		}
		slices.Sort(got)
		if diff := cmp.Diff([]string{"", restartedAt}, got); diff != "" {
			t.Errorf("ReplicaSet %s annotations (-want +got):\n%s", restartedAtAnnotation, diff)
		}
	})

	t.Run("service account token has no admin rights", func(t *testing.T) {
		ctx := t.Context()
		ns := createNamespace(t, admin, "rbac")
		cfg, err := c.ServiceAccountConfig(ctx, ns, "reader")
		if err != nil {
			t.Fatalf("service account config: %v", err)
		}
		sa, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatalf("service account client: %v", err)
		}
		// Anonymous requests are forbidden too; make sure the token is
		// the service account's before reading anything into Forbidden.
		review, err := sa.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("self subject review: %v", err)
		}
		if got, want := review.Status.UserInfo.Username, "system:serviceaccount:"+ns+":reader"; got != want {
			t.Errorf("token authenticates as %q, want %q", got, want)
		}
		_, err = sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("list secrets as service account: err = %v, want Forbidden", err)
		}
	})

	t.Run("stop ends every process it started", func(t *testing.T) {
		pids := c.PIDs()
		if len(pids) != 3 {
			t.Errorf("PIDs() = %v, want 3 (etcd, kube-apiserver, kube-controller-manager)", pids)
		}
		began := time.Now()
		if err := c.Stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		t.Logf("stopped in %s", time.Since(began).Round(time.Millisecond))
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("signal 0 to pid %d after Stop: err = %v, want ESRCH", pid, err)
			}
		}
		if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat %s after Stop: err = %v, want it removed", c.Dir, err)
		}
	})
}

// A quiet ground runs etcd and kube-apiserver only: objects are stored
// and served, and nothing acts on them.
func TestClusterWithoutControllerManager(t *testing.T) {
	c, err := StartCluster(t.Context(), ClusterOptions{Log: t.Output(), NoControllerManager: true})
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	var names []string
	for _, pid := range c.PIDs() {
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if err != nil {
			t.Fatalf("read the name of pid %d: %v", pid, err)
		}
		names = append(names, strings.TrimSpace(string(comm)))
	}
	if d := cmp.Diff([]string{"etcd", "kube-apiserver"}, names); d != "" {
		t.Errorf("processes (-want +got):\n%s", d)
	}
	admin, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	ns := createNamespace(t, admin, "quiet")
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "127.0.0.1:1/none:latest"}}},
			},
		},
	}
	if _, err := admin.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	// The deployment controller makes a ReplicaSet within milliseconds
	// (TestClusterRollsOutDeployment); two seconds without one show that
	// none runs.
	time.Sleep(2 * time.Second)
	rss, err := admin.AppsV1().ReplicaSets(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list ReplicaSets: %v", err)
	}
	if len(rss.Items) != 0 {
		t.Errorf("%d ReplicaSets on a ground without controller manager, want 0", len(rss.Items))
	}
}

func TestClusterWithoutBinariesSaysHowToBuildThem(t *testing.T) {
	c, err := StartCluster(t.Context(), ClusterOptions{BinDir: t.TempDir()})
	if err == nil {
		c.Stop()
		t.Fatal("StartCluster with an empty bin dir succeeded")
	}
	if !strings.Contains(err.Error(), "hack/tools.sh") {
		t.Errorf("error %q does not say to run hack/tools.sh", err)
	}
}

func createNamespace(t *testing.T, client kubernetes.Interface, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

// waitForReplicaSets polls until namespace ns holds exactly n ReplicaSets
// and returns them.
func waitForReplicaSets(t *testing.T, client kubernetes.Interface, ns string, n int) []appsv1.ReplicaSet {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		list, err := client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err == nil && len(list.Items) == n {
			return list.Items
		}
		select {
		case <-ctx.Done():
			if err != nil {
				t.Fatalf("waiting for %d ReplicaSets in %s: %v, last list: %v", n, ns, ctx.Err(), err)
			}
			t.Fatalf("waiting for %d ReplicaSets in %s: %v, last saw %d", n, ns, ctx.Err(), len(list.Items))
		case <-tick.C:
		}
	}
}
