package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/state"
)

// demo tells urunner's story on a fresh test ground: a baseline, a push,
// a restart that really rolls out, and a run with nothing to do.
func demo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	bin := fs.String("urunner", "bin/urunner", "the urunner binary to run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	urunner, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}

	step("Starting the test ground: etcd, kube-apiserver, kube-controller-manager and an OCI registry, on loopback")
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	c, err := testground.StartCluster(startCtx, testground.ClusterOptions{Log: os.Stdout})
	if err != nil {
		return err
	}
	defer func() {
		step("Stopping the test ground (only the processes it started)")
		_ = c.Stop()
	}()
	reg, err := testground.StartRegistry(testground.RegistryOptions{})
	if err != nil {
		return err
	}
	defer func() { _ = reg.Close() }()
	cs, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		return err
	}
	image := reg.Host + "/shop/web:latest"

	step("Pushing " + image)
	d1, err := reg.PushImage(ctx, "shop/web:latest", "release-1")
	if err != nil {
		return err
	}
	fmt.Println("   digest", d1)

	step("Creating namespace shop (label urunner=enable) with Deployments web and legacy (label urunner=disable), both on that image")
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "shop", Labels: map[string]string{kube.Label: kube.LabelEnable},
	}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	for _, name := range []string{"web", "legacy"} {
		d := deployment(name, image)
		if name == "legacy" {
			d.Labels = map[string]string{kube.Label: kube.LabelDisable}
		}
		if _, err := cs.AppsV1().Deployments("shop").Create(ctx, d, metav1.CreateOptions{}); err != nil {
			return err
		}
	}

	env := append(os.Environ(),
		"KUBECONFIG="+c.KubeconfigPath,
		"URUNNER_CONF_KUBE_AUTH=kubeconfig",
		"URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH=http://"+reg.Host,
		"URUNNER_CONF_STATE_NAMESPACE=default",
	)
	run := func(title string) error {
		step(title)
		fmt.Println("   $ urunner")
		cmd := exec.CommandContext(ctx, urunner)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, os.Stdout, os.Stdout
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("urunner: %w", err)
		}
		return nil
	}

	if err := run("Run 1: first sight of the image is a baseline; nothing restarts"); err != nil {
		return err
	}
	step("Pushing a rebuild to the same tag")
	d2, err := reg.PushImage(ctx, "shop/web:latest", "release-2")
	if err != nil {
		return err
	}
	fmt.Println("   digest", d1, "→", d2)
	if err := run("Run 2: the digest moved; web restarts, legacy (opted out) does not"); err != nil {
		return err
	}

	step("What the cluster shows")
	for _, name := range []string{"web", "legacy"} {
		d, err := cs.AppsV1().Deployments("shop").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		a := d.Spec.Template.Annotations
		fmt.Printf("   deployment/%s  restartedAt=%q  %s=%s\n", name, a[kube.RestartedAtAnnotation], kube.RestartedForAnnotation, a[kube.RestartedForAnnotation])
	}
	web, err := cs.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		return err
	}
	evs, err := cs.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(web.UID)})
	if err != nil {
		return err
	}
	for _, e := range evs.Items {
		if e.Source.Component == "urunner" {
			fmt.Printf("   event on deployment/web (kubectl describe shows it): %s %s: %s\n", e.Type, e.Reason, e.Message)
		}
	}
	rs, err := waitReplicaSets(ctx, cs, "web", 2)
	if err != nil {
		return err
	}
	fmt.Printf("   deployment/web has %d ReplicaSets: the controller manager rolled it out\n", len(rs))
	for _, r := range rs {
		fmt.Printf("     %s  restartedAt=%q\n", r.Name, r.Spec.Template.Annotations[kube.RestartedAtAnnotation])
	}
	fmt.Println("   (no kubelet runs here, so the pods stay Pending: the rollout is the API objects)")

	if err := run("Run 3: nothing changed; nothing restarts"); err != nil {
		return err
	}

	step("The state urunner keeps between runs (ConfigMap default/urunner-state)")
	cm, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "urunner-state", metav1.GetOptions{})
	if err != nil {
		return err
	}
	st, err := state.Decode(cm.BinaryData[state.DataKey])
	if err != nil {
		return err
	}
	for _, k := range st.Keys() {
		r := st.Refs[k]
		fmt.Printf("   %s: %s, first seen %s, last checked %s\n", k, r.Digest, r.Seen.Format(time.RFC3339), r.Checked.Format(time.RFC3339))
	}
	fmt.Println("   (one entry per image reference; each restarted workload records its own digest")
	fmt.Println("    in its pod template's urunner.io/restarted-for annotation)")
	fmt.Printf("   (%d bytes, gzip JSON under binaryData.%s)\n", len(cm.BinaryData[state.DataKey]), state.DataKey)
	return nil
}

func step(s string) { fmt.Printf("\n== %s\n", s) }

func deployment(name, image string) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

func waitReplicaSets(ctx context.Context, cs kubernetes.Interface, name string, n int) ([]appsv1.ReplicaSet, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		l, err := cs.AppsV1().ReplicaSets("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err == nil && len(l.Items) >= n {
			return l.Items, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("deployment %s: %d ReplicaSets after a minute, want %d", name, len(l.Items), n)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
