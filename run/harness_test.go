package run

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/kube/apiclient"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/registry"
	"github.com/urunner/urunner/state"
)

// ground is one test's view of the test ground: the shared cluster, a
// registry of its own, and a state ConfigMap of its own, so that tests do
// not see each other's state or images.
type ground struct {
	t     *testing.T
	cs    kubernetes.Interface
	lean  *apiclient.Clients // the run's own kind of client, for kube and the state store
	reg   *testground.Registry
	state string // state ConfigMap name, in namespace default
	api   *apiCounter

	envMu sync.Mutex
	env   map[string]string // this test's settings (see setenv)
	// now, when set, is the runs' clock (see Hooks.now).
	now func() time.Time
}

// leanClients are the clients a run talks to the API server with
// (kube/apiclient), on cfg.
func leanClients(t *testing.T, cfg *rest.Config) *apiclient.Clients {
	t.Helper()
	api, err := apiclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

func newGround(t *testing.T, opts testground.RegistryOptions) *ground {
	t.Helper()
	reg, err := testground.StartRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	cs, err := kubernetes.NewForConfig(cluster.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	g := &ground{t: t, cs: cs, lean: leanClients(t, cluster.AdminConfig()), reg: reg, state: "urunner-" + suffix(t), api: &apiCounter{}, env: map[string]string{}}
	scheme := "http://"
	if opts.TLS {
		scheme = ""
	}
	// KUBECONFIG is the same for every test: TestMain sets it.
	g.setenv("URUNNER_CONF_KUBE_AUTH", "kubeconfig")
	g.setenv("URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH", scheme+reg.Host)
	g.setenv("URUNNER_CONF_STATE_CONFIGMAP", g.state)
	g.setenv("URUNNER_CONF_STATE_NAMESPACE", "default")
	g.setenv("URUNNER_CONF_LOG_LEVEL", "DEBUG")
	return g
}

// setenv sets one of this test's settings: a variable the runs of this
// ground see (their configuration, and the credentials a registries file
// names), in place of t.Setenv, which the process's other tests would see
// too and which forbids t.Parallel.
func (g *ground) setenv(key, value string) {
	g.envMu.Lock()
	defer g.envMu.Unlock()
	g.env[key] = value
}

// unsetenv removes one of this test's settings.
func (g *ground) unsetenv(key string) {
	g.envMu.Lock()
	defer g.envMu.Unlock()
	delete(g.env, key)
}

// hooks passes this test's settings to a run.
func (g *ground) Hooks() Hooks {
	return Hooks{loadConfig: g.loadConfig, lookupEnv: g.lookupEnv, now: g.now}
}

// configEnv serialises the loads of the tests' settings, which go through
// the process environment because that is what the real loadConfig reads.
var configEnv sync.Mutex

// configVariable says whether the real loadConfig reads key.
func configVariable(key string) bool {
	return strings.HasPrefix(key, "URUNNER_") || key == "DOCKER_API_ACCEPT_HEADER"
}

// loadConfig runs the real loadConfig with exactly this test's settings in
// the process environment, and puts the environment back.
func (g *ground) loadConfig() (Config, error) {
	g.envMu.Lock()
	env := maps.Clone(g.env)
	g.envMu.Unlock()
	configEnv.Lock()
	defer configEnv.Unlock()
	saved := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); configVariable(k) {
			saved[k] = v
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		if configVariable(k) {
			os.Setenv(k, v)
		}
	}
	defer func() {
		for k := range env {
			os.Unsetenv(k)
		}
		for k, v := range saved {
			os.Setenv(k, v)
		}
	}()
	return loadConfig()
}

// lookupEnv reads this test's settings, and the process environment for a
// variable that is not urunner's own (HOME, PATH, …).
func (g *ground) lookupEnv(key string) (string, bool) {
	g.envMu.Lock()
	v, ok := g.env[key]
	g.envMu.Unlock()
	if ok || configVariable(key) {
		return v, ok
	}
	return os.LookupEnv(key)
}

var seq struct {
	sync.Mutex
	n int
}

// suffix returns a short name unique in this test binary's run.
func suffix(t *testing.T) string {
	seq.Lock()
	defer seq.Unlock()
	seq.n++
	return fmt.Sprintf("%d-%d", seq.n, time.Now().UnixNano()%100000)
}

// afterTheListing waits for the next whole second of the clock, so that a
// workload created next is created after the last run's listing: creation
// times have whole seconds, and one created in the second of a listing
// counts as listed (policy.Believed).
func (g *ground) afterTheListing() {
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
}

// image returns the reference of repoTag on this test's registry.
func (g *ground) image(repoTag string) string { return g.reg.Host + "/" + repoTag }

// push pushes a fresh image with seed and returns its digest.
func (g *ground) push(repoTag, seed string) string {
	g.t.Helper()
	d, err := g.reg.PushImage(g.t.Context(), repoTag, seed)
	if err != nil {
		g.t.Fatal(err)
	}
	return d
}

// namespace creates a namespace, enabled or not, and on cleanup removes
// its label first so that later tests never list it.
func (g *ground) namespace(enabled bool) string {
	g.t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t-" + suffix(g.t)}}
	if enabled {
		ns.Labels = map[string]string{kube.Label: kube.LabelEnable}
	}
	if _, err := g.cs.CoreV1().Namespaces().Create(g.t.Context(), ns, metav1.CreateOptions{}); err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() {
		ctx := context.Background()
		patch := []byte(`{"metadata":{"labels":{"urunner":null}}}`)
		_, _ = g.cs.CoreV1().Namespaces().Patch(ctx, ns.Name, "application/merge-patch+json", patch, metav1.PatchOptions{})
		_ = g.cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

type deployOpt func(*appsv1.Deployment)

func optOut(d *appsv1.Deployment) { d.Labels = map[string]string{kube.Label: kube.LabelDisable} }

func pausedDeployment(d *appsv1.Deployment) { d.Spec.Paused = true }

func withInit(name, image string) deployOpt {
	return func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.InitContainers = append(d.Spec.Template.Spec.InitContainers, corev1.Container{Name: name, Image: image})
	}
}

func withContainer(name, image string) deployOpt {
	return func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: name, Image: image})
	}
}

// deploy creates a Deployment whose container "app" runs image.
func (g *ground) deploy(ns, name, image string, opts ...deployOpt) {
	g.t.Helper()
	sel := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
	for _, o := range opts {
		o(d)
	}
	if _, err := g.cs.AppsV1().Deployments(ns).Create(g.t.Context(), d, metav1.CreateOptions{}); err != nil {
		g.t.Fatal(err)
	}
}

func (g *ground) deployment(ns, name string) *appsv1.Deployment {
	g.t.Helper()
	d, err := g.cs.AppsV1().Deployments(ns).Get(g.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		g.t.Fatal(err)
	}
	return d
}

// restartedAt is the restart annotation of a Deployment's pod template,
// "" when urunner never restarted it.
func (g *ground) restartedAt(ns, name string) string {
	return g.deployment(ns, name).Spec.Template.Annotations[kube.RestartedAtAnnotation]
}

// waitReplicaSets waits until the controller manager has made n
// ReplicaSets for the Deployment: the proof that a restart really rolls.
func (g *ground) waitReplicaSets(ns, name string, n int) {
	g.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rs, err := g.cs.AppsV1().ReplicaSets(ns).List(g.t.Context(), metav1.ListOptions{
			LabelSelector: labels.SelectorFromSet(map[string]string{"app": name}).String(),
		})
		if err != nil {
			g.t.Fatal(err)
		}
		if len(rs.Items) == n {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("deployment %s/%s has %d ReplicaSets, want %d", ns, name, len(rs.Items), n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// settled waits until the workload controller has written the status of
// a new workload of kind: its status then stays as it is (no pod of the
// test ground ever becomes ready), so a run that reads the workload next
// patches it without a conflict. A test counting PATCHes calls it first:
// on a loaded machine the controller's write may otherwise land between a
// run's listing and its patch, and the run patches twice.
func (g *ground) settled(kind, ns, name string) {
	g.t.Helper()
	ctx := g.t.Context()
	done := func() (bool, error) {
		switch kind {
		case "Deployment":
			d, err := g.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			st := d.Status
			return st.ObservedGeneration == d.Generation && st.Replicas == want && st.UpdatedReplicas == want && len(st.Conditions) > 0, nil
		case "StatefulSet":
			s, err := g.cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			want := int32(1)
			if s.Spec.Replicas != nil {
				want = *s.Spec.Replicas
			}
			return s.Status.ObservedGeneration == s.Generation && s.Status.Replicas == want, nil
		case "DaemonSet":
			d, err := g.cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return d.Status.ObservedGeneration == d.Generation, nil
		}
		return false, fmt.Errorf("settled: no kind %s", kind)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, err := done()
		if err != nil {
			g.t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%s %s/%s: its controller wrote no settled status in 60s", kind, ns, name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stateBytes returns the stored document's bytes, nil if none.
func (g *ground) stateBytes() []byte {
	g.t.Helper()
	cm, err := g.cs.CoreV1().ConfigMaps("default").Get(g.t.Context(), g.state, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return cm.BinaryData[state.DataKey]
}

func (g *ground) stored() state.State {
	g.t.Helper()
	b := g.stateBytes()
	if b == nil {
		g.t.Fatalf("no state ConfigMap default/%s", g.state)
	}
	s, err := state.Decode(b)
	if err != nil {
		g.t.Fatal(err)
	}
	return s
}

// remembered counts the references the state holds a digest for.
func remembered(s state.State) int {
	n := 0
	for _, r := range s.Refs {
		if r.Digest != "" {
			n++
		}
	}
	return n
}

// seen returns the digest the state says image's tag pointed at when last
// looked up, "" when it is not remembered.
func (g *ground) seen(image string) string {
	g.t.Helper()
	im, err := registry.Canonical(image)
	if err != nil {
		g.t.Fatal(err)
	}
	return g.stored().Refs[im.Named].Digest
}

// believes returns the digest urunner believes a Deployment's container
// runs, from the state and the Deployment's own records, as the next run
// will: what it restarted it for, what it recorded, or its image's base.
func (g *ground) believes(ns, name, container string) string {
	g.t.Helper()
	return g.believesOf("Deployment", ns, name, container)
}

func (g *ground) believesOf(kind, ns, name, container string) string {
	g.t.Helper()
	return g.believesKindIn(g.stored(), kind, ns, name, container)
}

// storedOrEmpty is the stored state, empty before the first save.
func (g *ground) storedOrEmpty() state.State {
	g.t.Helper()
	if g.stateBytes() == nil {
		return state.State{Refs: map[string]state.Ref{}}
	}
	return g.stored()
}

// believesIn is believes with a state already read.
func (g *ground) believesIn(st state.State, ns, name, container string) string {
	g.t.Helper()
	return g.believesKindIn(st, "Deployment", ns, name, container)
}

func (g *ground) believesKindIn(st state.State, kind, ns, name, container string) string {
	g.t.Helper()
	dc, err := dynamic.NewForConfig(cluster.AdminConfig())
	if err != nil {
		g.t.Fatal(err)
	}
	kw, err := kube.New(g.lean).WithDynamic(dc).Get(g.t.Context(), kind, ns, name)
	if err != nil {
		g.t.Fatal(err)
	}
	w := policy.Workload{Kind: kw.Kind, Namespace: kw.Namespace, Name: kw.Name, Created: kw.Created, RestartedFor: policy.Records(kw.RestartedFor)}
	for _, c := range kw.Containers {
		if c.Name != container {
			continue
		}
		im, err := registry.Canonical(c.Image)
		if err != nil {
			g.t.Fatal(err)
		}
		ref := im.Named
		if im.Digest != "" {
			if rec := w.RestartedFor[c.Name]; rec.Digest != im.Digest {
				return im.Digest // pinned by a person: it runs what it names
			}
		}
		return policy.Believed(&w, policy.Container{Name: c.Name, Ref: ref}, st)
	}
	g.t.Fatalf("%s %s/%s has no container %s", kind, ns, name, container)
	return ""
}

// result is what a run left for a user to see.
type result struct {
	code int
	logs string
}

// run runs urunner once, in-process, as the CronJob would.
func (g *ground) run(args ...string) result {
	g.t.Helper()
	return g.runCtx(g.t.Context(), args...)
}

// runCtx runs urunner with ctx standing for the process's signals:
// cancelling it is SIGTERM.
func (g *ground) runCtx(ctx context.Context, args ...string) result {
	g.t.Helper()
	var stdout, stderr bytes.Buffer
	g.api.reset()
	h := g.Hooks()
	h.wrapKube = g.api.wrap
	code := Main(ctx, args, &stdout, &stderr, h)
	g.t.Logf("urunner %s → exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return result{code: code, logs: stdout.String() + stderr.String()}
}

func (g *ground) mustRun(args ...string) result {
	g.t.Helper()
	o := g.run(args...)
	if o.code != 0 {
		g.t.Fatalf("urunner exited %d, want 0", o.code)
	}
	return o
}

// heads is the number of manifest HEAD requests the registry served.
func (g *ground) heads() int { return g.reg.Requests()["HEAD manifest"] }

// apiCounter counts Kubernetes API requests by verb and resource.
type apiCounter struct {
	mu     sync.Mutex
	counts map[string]int
	// fault, when set, may answer a request in place of the API server:
	// a fault-injecting proxy in front of the real one.
	fault func(*http.Request) *http.Response
	// after, when set, sees each answer of the real API server.
	after func(*http.Request, *http.Response)
}

func (c *apiCounter) setAfter(f func(*http.Request, *http.Response)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.after = f
}

func (c *apiCounter) setFault(f func(*http.Request) *http.Response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fault = f
}

func (c *apiCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = map[string]int{}
}

func (c *apiCounter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[key]
}

func (c *apiCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		c.mu.Lock()
		c.counts[req.Method+" "+resourceOf(req.URL.Path)]++
		fault, after := c.fault, c.after
		c.mu.Unlock()
		if fault != nil {
			if resp := fault(req); resp != nil {
				return resp, nil
			}
		}
		resp, err := rt.RoundTrip(req)
		if err == nil && after != nil {
			after(req, resp)
		}
		return resp, err
	})
}

// resourceOf returns the resource of an API path:
// /apis/apps/v1/namespaces/x/deployments/y → deployments.
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var res []string
	for i := 0; i < len(parts); i++ {
		switch {
		case i == 0 && (parts[0] == "api" || parts[0] == "apis"):
			if parts[0] == "apis" {
				i++ // group
			}
			i++ // version
		case parts[i] == "namespaces" && i+2 < len(parts):
			i++ // namespace name
		default:
			res = append(res, parts[i])
		}
	}
	if len(res) > 0 {
		return res[0]
	}
	return filepath.Base(path)
}

func (c *apiCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.counts {
		n += v
	}
	return n
}

// apiStatus is an API server error answer: a metav1.Status with code.
func apiStatus(req *http.Request, code int, reason string) *http.Response {
	body := fmt.Sprintf(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected %d","reason":%q,"code":%d}`, code, reason, code)
	return &http.Response{
		StatusCode: code,
		Header:     http.Header{"Content-Type": []string{"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
		Request:    req,
	}
}

// storedReport is the report of the last run, as kept in the state.
func (g *ground) storedReport() runReport {
	g.t.Helper()
	cm, err := g.cs.CoreV1().ConfigMaps("default").Get(g.t.Context(), g.state, metav1.GetOptions{})
	if err != nil {
		g.t.Fatal(err)
	}
	var kept runReport
	if err := json.Unmarshal([]byte(cm.Data[state.ReportKey]), &kept); err != nil {
		g.t.Fatal(err)
	}
	return kept
}
