package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/urunner/urunner/e2e/testground"
)

// A run that cannot start, and one that fails before it writes anything:
// run waits no longer than --timeout and says why the pod is not running;
// the run's own exit code (2, bad configuration) is the plugin's; status
// points at the failed Job, which left no report; and a user who may not
// read pods/log still learns how the run ended.
func TestRunsThatDoNotStartOrFailEarly(t *testing.T) {
	in := newInstall(t, "early", "early",
		"extraEnv[1].name=URUNNER_CONF_LIST_SCOPE", "extraEnv[1].value=sideways")

	in.kubelet.paused.Store(true)
	code, _, errOut := in.run("run", "--timeout", "2s")
	if code != exitError {
		t.Errorf("run with no node to run it: exit %d, want %d", code, exitError)
	}
	mustContain(t, "a run whose pod never starts", errOut,
		"no pod started within 2s; last: pod early-urunner-run-", ": Pending (not scheduled yet)",
		"(the Job goes on: kubectl logs -f job/early-urunner-run-")
	in.kubelet.paused.Store(false)

	code, out, errOut := in.run("run")
	if code != 2 {
		t.Errorf("run with a bad variable: exit %d, want the run's 2", code)
	}
	mustContain(t, "the log of a run with a bad variable", out, `urunner: bad configuration: URUNNER_CONF_LIST_SCOPE: want auto, cluster or namespace, got "sideways"`)
	mustContain(t, "the end of a run with a bad variable", errOut, "the run exited 2")

	code, out, _ = in.run("status")
	if code != 0 {
		t.Fatalf("status: exit %d", code)
	}
	mustRow(t, "status after runs that wrote nothing", out, "Last run", "none recorded yet")
	mustRow(t, "status after runs that wrote nothing", out, "early-urunner-run-", "run", "failed (BackoffLimitExceeded)", "2")
	mustContain(t, "status after runs that wrote nothing", out, "failed after the last recorded run; its log says why: kubectl logs job/early-urunner-run-")

	// A user who may start runs but not read pods/log.
	ctx := t.Context()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "runner", Namespace: in.namespace}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"batch"}, Resources: []string{"cronjobs"}, Verbs: []string{"get"}},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"create", "get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
	}}
	if _, err := in.cs.RbacV1().Roles(in.namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "runner", Namespace: in.namespace},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "runner"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "runner", Namespace: in.namespace}}}
	if _, err := in.cs.RbacV1().RoleBindings(in.namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	saCfg, err := cluster.ServiceAccountConfig(ctx, in.namespace, "runner")
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "runner.kubeconfig")
	if err := testground.WriteKubeconfig(kc, saCfg); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = plugin(t, "--kubeconfig", kc, "-n", in.namespace, "--release", in.release, "plan")
	if code != 2 {
		t.Errorf("plan without pods/log: exit %d, want the run's 2", code)
	}
	if out != "" {
		t.Errorf("plan without pods/log printed a log:\n%s", out)
	}
	mustContain(t, "plan without pods/log", errOut, "warning: cannot read the log of pod early-urunner-plan-", `cannot get resource "pods/log"`, "the run exited 2")
}

// The binary, run as kubectl runs a plugin, connects as kubectl does:
// $KUBECONFIG, --context, the context's namespace as urunner's, -n over
// it; and finds the state ConfigMap the CronJob names.
func TestTheBinaryConnectsAsKubectlDoes(t *testing.T) {
	in := newInstall(t, "ctx", "ctx", "config.stateConfigMap=ctx-state")
	in.push("shop/web:latest", "v1")
	in.deployment("web", in.image("shop/web:latest"), false)
	if code, _, _ := in.run("run"); code != 0 {
		t.Fatalf("run: exit %d", code)
	}
	bin := filepath.Join(t.TempDir(), "kubectl-urunner")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var ground *clientcmdapi.Context
	for _, c := range cfg.Contexts {
		ground = c.DeepCopy()
	}
	ground.Namespace = in.namespace
	cfg.Contexts["ground"] = ground
	cfg.Clusters["nowhere"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
	cfg.Contexts["elsewhere"] = &clientcmdapi.Context{Cluster: "nowhere", AuthInfo: ground.AuthInfo}
	cfg.CurrentContext = "elsewhere"
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kc); err != nil {
		t.Fatal(err)
	}

	exe := func(args ...string) (int, string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), bin, args...)
		cmd.Env = []string{"KUBECONFIG=" + kc, "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		t.Logf("kubectl-urunner %s → %v\n%s", strings.Join(args, " "), err, out)
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	code, out := exe("--context", "ground", "--release", "ctx", "status")
	if code != 0 {
		t.Fatalf("status in context ground: exit %d", code)
	}
	mustRow(t, "status in the context's namespace", out, "State", "ConfigMap ctx/ctx-state, 1 image reference")
	mustRow(t, "status in the context's namespace", out, "Last run", "exit 0 (ok)")

	if code, out := exe("status", "--release", "ctx"); code != exitError || !strings.Contains(out, "127.0.0.1:1") {
		t.Errorf("status in the current context (unreachable): exit %d, want 1 naming its server", code)
	}
	code, out = exe("status", "--context", "ground", "-n", "default", "--release", "ctx")
	if code != exitError || !strings.Contains(out, "neither CronJob ctx-urunner nor state ConfigMap urunner-state found in namespace default: is urunner installed there?") {
		t.Errorf("status -n default: exit %d, want 1 saying urunner is not there", code)
	}
	code, out = exe("status", "--context", "ground", "--release", "other")
	if code != exitError || !strings.Contains(out, "neither CronJob other-urunner nor state ConfigMap urunner-state found in namespace ctx") {
		t.Errorf("status --release other: exit %d, want 1 naming CronJob other-urunner", code)
	}
	if code, out := exe("--context", "ground", "--release", "ctx", "why", "deploy/missing", "-w", in.app); code != exitError || !strings.Contains(out, "Deployment ctx-app/missing not found (-w for the workload's namespace)") {
		t.Errorf("why of a missing Deployment: exit %d", code)
	}
}
