package run

// The model-based test: a seeded random sequence of what happens around
// urunner (pushes, a tag moved back, workloads added, deleted, switched to
// another tag or pinned by hand, holds, registry faults, a conflicting
// write between urunner's read and its patch, a run that dies before it
// saves, failed rollouts, runs restricted to one pushed reference and
// bursts of them, soaks, rings and a ring missing from the listing,
// approvals, quarantines lifted on a workload for its namespace, pods that
// come up ready on another digest than the one restarted for, signatures
// pushed after their image or by a key not trusted, and two runs at once
// while the first waits for its rollouts, with a push in between), with
// runs in between, on the real test ground. After every run, what the
// cluster and the state show is checked against a small reference model of
// the README's rules ("How it decides"), which keeps, per container, what
// it is believed to run, and knows nothing of how the state stores it.
//
// A failure prints the seed and every step so far; rerun one sequence with
//
//	go test -run 'TestModel/seed=7$' -model.seeds 7 -model.steps 400 .
//
// Seeds differ in configuration: even seeds pin and cap restarts at 3, odd
// ones verify rollouts, roll failed ones back and put workloads in rings
// (and may run twice at once); seeds 4, 9, 14, … (seed%5 == 4) do neither,
// so a restart is judged by no gate unless the workload soaks; seeds 3, 7,
// 11, … restart only approved digests; every third lists cluster-wide.
// Seeds 2, 8, 20, … (seed%6 == 2) and the seed%5 == 4 ones read the pods
// (URUNNER_CONF_RUNNING_PODS) and give half their new workloads one replica
// and one container, whose pods a stand-in kubelet may report ready on a
// digest nothing points at. Seeds 1, 2, 5, 8, 9, … (seed%4 == 1 or
// seed%6 == 2) require signatures by a cosign key, with a grace longer
// than any sequence. Each seed's last line counts what it drew. make test
// runs four seeds of 100 steps, chosen because together they draw every
// situation above: 3 (approvals, lifts, a lift let through in its run), 8
// (pods on another digest, gated: exit 1; signatures refused), 12 (the
// cap) and 13 (overlapping runs, a rollback after the other run saved,
// signatures, rings). Longer searches take more:
//
//	go test -run TestModel -model.seeds 1,2,3,4,5,6,7,8 -model.steps 1000 -timeout 2h .

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/report"
	"github.com/urunner/urunner/state"
)

var (
	modelSteps = flag.Int("model.steps", 100, "operations per seed of the model-based test")
	modelSeeds = flag.String("model.seeds", "3,8,12,13", "seeds of the model-based test, comma-separated (the defaults draw every situation: see each seed's last line)")
)

func TestModelBasedSequences(t *testing.T) {
	t.Parallel()
	for _, s := range strings.Split(*modelSeeds, ",") {
		seed, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			t.Fatalf("-model.seeds: %v", err)
		}
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			newWorld(t, seed).play(*modelSteps)
		})
	}
}

// The world: three namespaces whose workloads pull with their own secret
// (two good ones, one whose user the registry does not know), six tags on
// three repositories of a registry that requires credentials, and urunner
// configured without credentials of its own (URUNNER_CONF_PULL_SECRET_AUTH).
var (
	modelRepos = []string{"app", "api", "worker"}
	modelTags  = []string{"1", "2"}
	// each namespace's pull secret: user and password
	modelSecrets = map[string][2]string{"a": {"team-a", "pa"}, "b": {"team-b", "pb"}, "c": {"team-c", "unknown"}}
)

type world struct {
	t    *testing.T
	g    *ground
	rng  *rand.Rand
	seed uint64

	pin, verify bool
	pods        bool // URUNNER_CONF_RUNNING_PODS: the pods are read, and some workloads have a "kubelet"
	approve     bool // URUNNER_CONF_APPROVAL=approve
	// signatures: only digests signed by key restart
	// (URUNNER_CONF_SIGNATURE_KEYS), an unsigned one waits quietly
	// (URUNNER_CONF_SIGNATURE_GRACE, longer than any sequence), one signed
	// only by stranger is refused. signedBy is each repository@digest's
	// signers: a signature is stored beside its image, in its repository.
	signatures    bool
	key, stranger cosignKey
	signedBy      map[string]map[string]bool // repository@digest → "key", "stranger"
	maxRestarts   int
	// window is how many restarts the saved runs made since the last
	// saved full run started: what a pushed run's restarts add to.
	window     int
	namespaces map[string]string // group (a, b, c) → namespace

	// the registry: what each tag points at, and the seeds pushed to it
	tag   map[string]string
	seeds map[string][]string
	// what urunner must remember, as of the last saved run
	runs        int                        // runs that saved their state
	stored      map[string]string          // ref → digest
	lastOK      map[string]int             // ref → the saved run that looked it up successfully
	base        map[string]string          // ref → what its workloads run by default
	quarantined map[string]bool            // digests quarantined (in this cluster, whatever the tag)
	lifted      map[string]map[string]bool // digest → groups whose namespace lifted its quarantine since it last failed there
	knownRings  map[string]map[int]bool    // ref → the rings known to follow it (never forgotten by a run)
	healthy     map[string][]int           // ref → the rings healthy on its digest, when it has two
	nsApproved  map[string]map[string]bool // group → digests its namespace approves
	workloads   []*mw

	n        int // names
	steps    []string
	restarts int            // restarts the model predicted and the cluster showed
	heldBy   map[string]int // decisions held, by each hold that applied
	lastRun  time.Time
	// undelivered are the workloads the last run must have told "not
	// delivered": their ready pods run another digest than the one their
	// record says they were restarted for.
	undelivered []string
}

// mw is a workload of the model.
type mw struct {
	ns, group, name          string
	created                  int // w.runs when it was created
	paused, window, cooldown bool
	soak                     bool // urunner.io/soak: 1h, longer than any sequence
	ring                     int
	approved                 map[string]bool // digests its annotation approves
	lift                     string          // its urunner.io/lift-quarantine, "" for none
	fragile, deleted         bool
	restartedAt              bool // its template has a restartedAt
	patches                  int  // restarts and rollbacks of its template
	cs                       []*mc
	// kubelet: one replica and one container, whose pods a stand-in
	// kubelet (opStalePods) reports ready on a digest; podsOn is that
	// digest while those pods are the template's and ready, "" otherwise.
	kubelet bool
	podsOn  string
}

// mc is a container of the model.
type mc struct {
	name  string
	ref   string // the tag it follows; "" when pinned by a person
	image string // as written in the template
	// belief is what urunner holds it runs; lazy when no saved run has
	// decided it yet under its current reference (rule 3 or 4 then say).
	belief string
	lazy   bool
	// record is its restarted-for record: reference@digest, "" for none.
	record string
	used   map[string]bool
}

func newWorld(t *testing.T, seed uint64) *world {
	g := newGround(t, testground.RegistryOptions{Logins: map[string]string{"team-a": "pa", "team-b": "pb"}})
	w := &world{
		t: t, g: g, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed: seed,
		pin: seed%2 == 0 && seed%5 != 4, verify: seed%2 == 1 && seed%5 != 4,
		pods:       seed%6 == 2 || seed%5 == 4,
		namespaces: map[string]string{}, tag: map[string]string{}, seeds: map[string][]string{},
		stored: map[string]string{}, lastOK: map[string]int{}, base: map[string]string{}, quarantined: map[string]bool{}, lifted: map[string]map[string]bool{}, knownRings: map[string]map[int]bool{},
		healthy: map[string][]int{}, nsApproved: map[string]map[string]bool{},
		approve: seed%4 == 3, heldBy: map[string]int{},
		signatures: seed%4 == 1 || seed%6 == 2, signedBy: map[string]map[string]bool{},
	}
	if w.signatures {
		w.key, w.stranger = newCosignKey(t), newCosignKey(t)
		for _, k := range []cosignKey{w.key, w.stranger} {
			k.login(t, g.reg.Host, "team-a", modelSecrets["a"][1])
		}
		g.setenv("URUNNER_CONF_SIGNATURE_KEYS", w.key.keys)
		g.setenv("URUNNER_CONF_SIGNATURE_GRACE", "1h")
	}
	if w.approve {
		g.setenv("URUNNER_CONF_APPROVAL", "approve")
	}
	if w.pin {
		w.maxRestarts = 3
		g.setenv("URUNNER_CONF_RESTART_MODE", "pin")
		g.setenv("URUNNER_CONF_MAX_RESTARTS", "3")
	}
	if w.verify {
		g.setenv("URUNNER_CONF_VERIFY_ROLLOUT", "true")
		g.setenv("URUNNER_CONF_ROLLBACK", "true")
		// long enough for a run to wait while another runs (opOverlapRun);
		// a fragile rollout fails within seconds
		g.setenv("URUNNER_CONF_ROLLOUT_TIMEOUT", "90s")
	}
	if w.pods {
		g.setenv("URUNNER_CONF_RUNNING_PODS", "true")
	}
	if seed%3 == 0 {
		g.setenv("URUNNER_CONF_LIST_SCOPE", "cluster")
	} else {
		g.setenv("URUNNER_CONF_LIST_SCOPE", "namespace")
	}
	g.setenv("URUNNER_CONF_PULL_SECRET_AUTH", "true")
	// Generous: olareg checks a bcrypt password on every request, and the
	// test shares the machine; a lookup timing out is not a modelled fault
	// (the failure matrix tests hanging registries).
	g.setenv("URUNNER_CONF_REGISTRY_TIMEOUT", "30s")
	g.setenv("URUNNER_CONF_LOG_LEVEL", "INFO")
	g.setenv("URUNNER_CONF_REPORT", "json") // its forecasts (checkForecasts)
	for _, grp := range []string{"a", "b", "c"} {
		ns := g.namespace(true)
		w.namespaces[grp] = ns
		s := modelSecrets[grp]
		cfg := fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q}}}`, g.reg.Host, s[0], s[1])
		if _, err := g.cs.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "regcred"},
			Type:       corev1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ref := range w.refs() {
		w.pushSeed(ref, "s0")
		w.signedAtPush(ref)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d, %d steps; rerun: go test -run 'TestModel/seed=%d$' -model.seeds %d -model.steps %d .\n%s",
				seed, len(w.steps), seed, seed, len(w.steps), strings.Join(w.steps, "\n"))
		}
	})
	return w
}

func (w *world) refs() []string {
	var out []string
	for _, r := range modelRepos {
		for _, tg := range modelTags {
			out = append(out, w.g.image("team/"+r+":"+tg))
		}
	}
	return out
}

func (w *world) repoTag(ref string) string { return strings.TrimPrefix(ref, w.g.reg.Host+"/") }

func (w *world) pushSeed(ref, seed string) {
	d := w.g.push(w.repoTag(ref), seed)
	w.tag[ref] = d
	if !slices.Contains(w.seeds[ref], seed) {
		w.seeds[ref] = append(w.seeds[ref], seed)
	}
}

func (w *world) step(format string, args ...any) {
	w.steps = append(w.steps, fmt.Sprintf("%3d ", len(w.steps)+1)+fmt.Sprintf(format, args...))
}

func (w *world) pick(n int) int { return w.rng.IntN(n) }

func (w *world) live() []*mw {
	var out []*mw
	for _, x := range w.workloads {
		if !x.deleted {
			out = append(out, x)
		}
	}
	return out
}

// play runs steps operations, each a change around urunner or a run.
func (w *world) play(steps int) {
	type op struct {
		weight int
		do     func() bool // false: not applicable now, pick another
	}
	ops := []op{
		{22, w.opPush}, {6, w.opMoveBack}, {10, w.opAdd}, {4, w.opDelete}, {6, w.opSetImage},
		{2, w.opPinByHand}, {9, w.opHold}, {22, func() bool { return w.run(armed{}) }},
		{7, w.opFaultRun}, {5, w.opConflictRun}, {3, w.opCrashRun}, {4, w.opRestrictedRun},
		{16, w.opApprove}, {3, w.opPushBurst}, {2, w.opOptOut}, {5, w.opLift}, {8, w.opStalePods},
		{14, w.opSign}, {10, w.opOverlapRun},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	for len(w.steps) < steps && !w.t.Failed() {
		x := w.pick(total)
		for _, o := range ops {
			if x -= o.weight; x < 0 {
				o.do()
				break
			}
		}
	}
	if !w.t.Failed() {
		w.run(armed{})
	}
	kinds := map[string]int{}
	for _, st := range w.steps {
		f := strings.Fields(st)
		k := f[1]
		if k == "run" && len(f) > 2 && f[2] != "with" {
			k += " " + f[2]
		}
		kinds[k]++
	}
	w.t.Logf("seed %d: %d steps %v; %d saved runs, %d restarts; moves held by %v", w.seed, len(w.steps), kinds, w.runs, w.restarts, w.heldBy)
}

// followedRef picks, three times in four, a tag a live workload follows:
// pushes nobody follows move nothing.
func (w *world) followedRef() string {
	var followed []string
	for _, x := range w.live() {
		for _, c := range x.cs {
			if c.ref != "" && x.group != "c" {
				followed = append(followed, c.ref)
			}
		}
	}
	if len(followed) == 0 || w.pick(4) == 0 {
		return w.refs()[w.pick(6)]
	}
	return followed[w.pick(len(followed))]
}

func (w *world) opPush() bool {
	ref := w.followedRef()
	seed := fmt.Sprintf("s%d", len(w.steps)+1)
	w.pushSeed(ref, seed)
	w.step("push %s (%s)%s", w.repoTag(ref), short(w.tag[ref]), w.signedAtPush(ref))
	return true
}

// signedAtPush is a pipeline that signs half of its pushes at once; the
// others are signed later (opSign), or never.
func (w *world) signedAtPush(ref string) string {
	if !w.signatures || w.pick(2) == 0 {
		return ""
	}
	w.sign(ref, "key")
	return ", signed"
}

// repoOf is a reference's repository, host included.
func repoOf(ref string) string { return ref[:strings.LastIndex(ref, ":")] }

func (w *world) sign(ref, by string) {
	d := w.tag[ref]
	k := w.key
	if by == "stranger" {
		k = w.stranger
	}
	k.sign(w.t, repoOf(ref)+"@"+d)
	if w.signedBy[repoOf(ref)+"@"+d] == nil {
		w.signedBy[repoOf(ref)+"@"+d] = map[string]bool{}
	}
	w.signedBy[repoOf(ref)+"@"+d][by] = true
}

// opSign is a signature pushed after its image: mostly by the trusted
// key, which lets the waiting digest through in the next run; sometimes
// by a key not trusted, which refuses it at once.
func (w *world) opSign() bool {
	if !w.signatures {
		return false
	}
	var unsigned []string
	for _, x := range w.live() {
		for _, c := range x.cs {
			if c.ref != "" && !w.signedBy[repoOf(c.ref)+"@"+w.tag[c.ref]]["key"] {
				unsigned = append(unsigned, c.ref)
			}
		}
	}
	if len(unsigned) == 0 {
		return false
	}
	ref, by := unsigned[w.pick(len(unsigned))], "key"
	if w.pick(3) == 0 {
		by = "stranger"
	}
	w.sign(ref, by)
	w.step("sign %s (%s) by %s", w.repoTag(ref), short(w.tag[ref]), by)
	return true
}

func (w *world) opMoveBack() bool {
	ref := w.followedRef()
	old := w.seeds[ref]
	if len(old) < 2 {
		return false
	}
	seed := old[w.pick(len(old)-1)]
	w.pushSeed(ref, seed)
	w.step("move %s back (%s)", w.repoTag(ref), short(w.tag[ref]))
	return true
}

func (w *world) opAdd() bool {
	if len(w.live()) >= 8 {
		return false
	}
	// Created after the last run's listing (creation times have whole
	// seconds): a new workload.
	if d := time.Since(w.lastRun); d < 1100*time.Millisecond {
		time.Sleep(1100*time.Millisecond - d)
	}
	groups := []string{"a", "a", "b", "b", "c"}
	x := &mw{group: groups[w.pick(len(groups))], created: w.runs, approved: map[string]bool{}}
	x.ns = w.namespaces[x.group]
	w.n++
	x.name = fmt.Sprintf("w%d", w.n)
	fragiles := 0
	for _, y := range w.live() {
		if y.fragile {
			fragiles++
		}
	}
	x.fragile = w.verify && fragiles == 0 && w.pick(2) == 0
	if w.verify {
		x.ring = w.pick(2)
	}
	x.kubelet = w.pods && !x.fragile && w.pick(2) == 0
	for i := range 1 + w.pick(2) {
		if x.kubelet && i > 0 {
			break
		}
		ref := w.refs()[w.pick(6)]
		x.cs = append(x.cs, &mc{name: fmt.Sprintf("c%d", i), ref: ref, image: ref, lazy: true, used: map[string]bool{ref: true}})
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: x.name, Namespace: x.ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": x.name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": x.name}},
				Spec:       corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}},
			},
		},
	}
	if x.ring > 0 {
		d.Labels = map[string]string{kube.RingKey: strconv.Itoa(x.ring)}
	}
	if x.kubelet {
		// Its pods are created but never ready, until opStalePods says so.
		d.Spec.Replicas = new(int32(1))
	}
	if x.fragile {
		// No kubelet runs here: one replica never becomes available, so
		// a restart passes its progress deadline and is rolled back.
		d.Spec.Replicas, d.Spec.ProgressDeadlineSeconds = new(int32(1)), new(int32(1))
	}
	for _, c := range x.cs {
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: c.name, Image: c.image, ImagePullPolicy: corev1.PullAlways})
	}
	if _, err := w.g.cs.AppsV1().Deployments(x.ns).Create(w.t.Context(), d, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
	w.workloads = append(w.workloads, x)
	var imgs []string
	for _, c := range x.cs {
		imgs = append(imgs, w.repoTag(c.ref))
	}
	w.step("add %s/%s %v fragile=%v ring=%d kubelet=%v", x.group, x.name, imgs, x.fragile, x.ring, x.kubelet)
	return true
}

func (w *world) anyWorkload() *mw {
	l := w.live()
	if len(l) == 0 {
		return nil
	}
	return l[w.pick(len(l))]
}

func (w *world) opDelete() bool {
	x := w.anyWorkload()
	if x == nil {
		return false
	}
	if err := w.g.cs.AppsV1().Deployments(x.ns).Delete(w.t.Context(), x.name, metav1.DeleteOptions{}); err != nil {
		w.t.Fatal(err)
	}
	x.deleted = true
	w.step("delete %s/%s", x.group, x.name)
	return true
}

// opOptOut labels a workload urunner=disable: it leaves the listing (and
// the model) but stays in the cluster, as a tenant opting out does. Its
// ring, when a ring after it follows the same tag, is then missing from
// every listing: the rings after it hold until a person forgets it.
func (w *world) opOptOut() bool {
	x := w.anyWorkload()
	if x == nil {
		return false
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, kube.Label, kube.LabelDisable)
	if _, err := w.g.cs.AppsV1().Deployments(x.ns).Patch(w.t.Context(), x.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		w.t.Fatal(err)
	}
	x.deleted = true
	w.step("opt out %s/%s (ring %d)", x.group, x.name, x.ring)
	return true
}

// switchable picks a tracked container and a tag it never followed.
func (w *world) switchable(x *mw) (*mc, string) {
	var cs []*mc
	for _, c := range x.cs {
		if c.ref != "" {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return nil, ""
	}
	c := cs[w.pick(len(cs))]
	var fresh []string
	for _, r := range w.refs() {
		if !c.used[r] {
			fresh = append(fresh, r)
		}
	}
	if len(fresh) == 0 {
		return nil, ""
	}
	return c, fresh[w.pick(len(fresh))]
}

// setImage is `kubectl set image`: a person's edit of one container.
func (w *world) setImage(x *mw, c *mc, image string) {
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":%q,"image":%q}]}}}}`, c.name, image)
	if _, err := w.g.cs.AppsV1().Deployments(x.ns).Patch(w.t.Context(), x.name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		w.t.Fatal(err)
	}
	c.image = image
	x.podsOn = "" // a new template: its pod is not ready
}

func (w *world) switchTo(x *mw, c *mc, ref string) {
	w.setImage(x, c, ref)
	c.ref, c.lazy, c.belief = ref, true, ""
	c.used[ref] = true
}

func (w *world) opSetImage() bool {
	x := w.anyWorkload()
	if x == nil {
		return false
	}
	c, ref := w.switchable(x)
	if c == nil {
		return false
	}
	w.switchTo(x, c, ref)
	w.step("set image %s/%s %s=%s", x.group, x.name, c.name, w.repoTag(ref))
	return true
}

// opPinByHand pins a container to a digest urunner did not pin: it is
// no longer followed, and never changed again.
func (w *world) opPinByHand() bool {
	x := w.anyWorkload()
	if x == nil {
		return false
	}
	c, _ := w.switchable(x)
	if c == nil {
		return false
	}
	_, recorded, _ := strings.Cut(c.record, "@")
	d := w.tag[c.ref]
	if d == recorded {
		return false
	}
	w.setImage(x, c, c.ref+"@"+d)
	c.ref = ""
	w.step("pin by hand %s/%s %s=%s", x.group, x.name, c.name, short(d))
	return true
}

func (w *world) opHold() bool {
	x := w.anyWorkload()
	if x == nil {
		return false
	}
	ctx := w.t.Context()
	var patch string
	switch w.pick(4) {
	case 0:
		x.paused = !x.paused
		patch = fmt.Sprintf(`{"spec":{"paused":%v}}`, x.paused)
	case 1:
		x.window = !x.window
		v := "null"
		if x.window {
			h := (time.Now().UTC().Hour() + 6) % 24
			v = strconv.Quote(fmt.Sprintf("%02d:00-%02d:30 UTC", h, h))
		}
		patch = fmt.Sprintf(`{"metadata":{"annotations":{%q:%s}}}`, policy.WindowAnnotation, v)
	case 2:
		x.cooldown = !x.cooldown
		v := "null"
		if x.cooldown {
			v = `"1h"`
		}
		patch = fmt.Sprintf(`{"metadata":{"annotations":{%q:%s}}}`, policy.CooldownAnnotation, v)
	default:
		x.soak = !x.soak
		v := "null"
		if x.soak {
			v = `"1h"`
		}
		patch = fmt.Sprintf(`{"metadata":{"annotations":{%q:%s}}}`, policy.SoakAnnotation, v)
	}
	if _, err := w.g.cs.AppsV1().Deployments(x.ns).Patch(ctx, x.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		w.t.Fatal(err)
	}
	w.step("hold %s/%s paused=%v window=%v cooldown=%v soak=%v", x.group, x.name, x.paused, x.window, x.cooldown, x.soak)
	return true
}

// opApprove approves, in approve mode, the digest one of a workload's tags
// points at now, on the workload or on its namespace.
func (w *world) opApprove() bool {
	x := w.anyWorkload()
	if !w.approve || x == nil {
		return false
	}
	// Mostly a digest a container waits for; sometimes one it runs.
	var c *mc
	for _, y := range x.cs {
		if y.ref != "" && (c == nil || w.believe(x, y) != w.tag[y.ref]) {
			c = y
		}
	}
	if c == nil {
		return false
	}
	d := w.tag[c.ref]
	ctx := w.t.Context()
	approved, where := x.approved, "workload"
	if w.pick(3) == 0 {
		if w.nsApproved[x.group] == nil {
			w.nsApproved[x.group] = map[string]bool{}
		}
		approved, where = w.nsApproved[x.group], "namespace"
	}
	approved[d] = true
	var prefixes []string
	for _, dg := range slices.Sorted(maps.Keys(approved)) {
		prefixes = append(prefixes, dg) // a prefix approves nothing: full digests only
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, policy.ApproveAnnotation, strings.Join(prefixes, ","))
	var err error
	if where == "namespace" {
		_, err = w.g.cs.CoreV1().Namespaces().Patch(ctx, x.ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	} else {
		_, err = w.g.cs.AppsV1().Deployments(x.ns).Patch(ctx, x.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	}
	if err != nil {
		w.t.Fatal(err)
	}
	w.step("approve %s on %s of %s/%s", short(d), where, x.group, x.name)
	return true
}

// settle waits until the controller has seen every workload's template:
// a workload's health at the listing (rings) is then known, not a race.
// Fragile workloads never become healthy.
func (w *world) settle(x *mw) error {
	if !w.verify || x.fragile {
		return nil
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		d, err := w.g.cs.AppsV1().Deployments(x.ns).Get(w.t.Context(), x.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.ObservedGeneration >= d.Generation {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: the controller did not see generation %d", x.name, d.Generation)
		}
	}
}

func (w *world) opFaultRun() bool {
	faults := []string{"401", "403", "404", "500", "429"}
	return w.run(armed{fault: faults[w.pick(len(faults))], faultRef: w.refs()[w.pick(6)]})
}

func (w *world) opConflictRun() bool {
	x := w.anyWorkload()
	if x == nil || x.lift != "" {
		// the conflicting write fires on the first PATCH of x: with a
		// lift it could be the annotation's removal, not a restart
		return false
	}
	a := armed{conflict: x, conflictEdit: "label"}
	if c, ref := w.switchable(x); c != nil && w.pick(2) == 0 {
		a.conflictEdit, a.conflictContainer, a.conflictRef = "set image", c, ref
	}
	return w.run(a)
}

func (w *world) opCrashRun() bool { return w.run(armed{crash: true}) }

// opOverlapRun is two runs at once while a rollout is verified: the first
// restarts and waits for its rollouts (held here until the second ends);
// a push may come meanwhile; the second lists, decides, acts and saves
// first; then the first ends its wait, rolls back what failed unless the
// second patched it since, and saves, merging with the second's save.
func (w *world) opOverlapRun() bool {
	if !w.verify {
		return false
	}
	if !slices.ContainsFunc(w.live(), w.wouldRestart) {
		// Mostly the rollout that fails: a push to a fragile workload's tag.
		i := slices.IndexFunc(w.live(), func(x *mw) bool { return x.fragile && x.cs[0].ref != "" })
		if i < 0 {
			return false
		}
		x, signed := w.live()[i], ""
		w.pushSeed(x.cs[0].ref, fmt.Sprintf("s%d", len(w.steps)+1))
		if w.signatures {
			w.sign(x.cs[0].ref, "key")
			signed = ", signed"
		}
		w.step("push %s (%s)%s", w.repoTag(x.cs[0].ref), short(w.tag[x.cs[0].ref]), signed)
		if !w.wouldRestart(x) {
			return true
		}
	}
	w.step("run, and another run while it waits for its rollouts")
	for _, x := range w.live() {
		if err := w.settle(x); err != nil {
			w.t.Fatal(err)
		}
	}
	w.g.reg.ResetRequests()
	blocked, release, done := make(chan struct{}), make(chan struct{}), make(chan result, 1)
	go func() { done <- w.runWaiting(blocked, release) }()
	select {
	case <-blocked:
	case o := <-done:
		// it restarted nothing: no rollout to wait for
		w.lastRun = time.Now()
		w.check(o, w.predict(armed{}))
		return true
	}
	p := w.predictAct(armed{})
	if w.pick(2) == 0 {
		ref := w.followedRef()
		w.pushSeed(ref, fmt.Sprintf("s%d", len(w.steps)+1))
		w.step("push %s (%s)%s, during the rollout", w.repoTag(ref), short(w.tag[ref]), w.signedAtPush(ref))
	}
	w.heldBy["(runs overlapped)"]++
	// The state keeps whole seconds: two listings in one second are a tie,
	// which the later save wins (state.Merge); the model's second run
	// lists in a later second than the first, as overlapping CronJob and
	// pushed runs do.
	w.g.afterTheListing()
	w.run(armed{})
	close(release)
	o := <-done
	w.step("the first run ends its wait")
	w.lastRun = time.Now()
	w.check(o, w.predictFinish(p, true))
	return true
}

// wouldRestart is whether the next full run restarts x, as far as the
// model's decision says (the cap aside).
func (w *world) wouldRestart(x *mw) bool {
	counted := maps.Clone(w.heldBy)
	defer func() { w.heldBy = counted }()
	made := map[[2]string]lookup{}
	for _, c := range x.cs {
		if c.ref != "" {
			made[[2]string{c.ref, x.group}] = w.lookupOutcome(armed{}, c.ref, x.group)
		}
	}
	return w.decide(x, made, w.fleet()).restart
}

// runWaiting runs urunner once, as run does, but holds its rollout wait
// (its GETs of a workload it patched) until release is closed, and closes
// blocked when it first waits. A GET after a conflict (409) is not held.
func (w *world) runWaiting(blocked, release chan struct{}) result {
	var (
		stdout, stderr bytes.Buffer
		once           sync.Once
		mu             sync.Mutex
		patched        = map[string]bool{}
	)
	w.g.api.reset()
	wrap := func(rt http.RoundTripper) http.RoundTripper {
		next := w.g.api.wrap(rt)
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			mu.Lock()
			wait := req.Method == http.MethodGet && patched[req.URL.Path]
			mu.Unlock()
			if wait {
				once.Do(func() { close(blocked) })
				select {
				case <-release:
				case <-req.Context().Done():
				}
			}
			resp, err := next.RoundTrip(req)
			if err == nil && req.Method == http.MethodPatch && resp.StatusCode == http.StatusOK && strings.Contains(req.URL.Path, "/deployments/") {
				mu.Lock()
				patched[req.URL.Path] = true
				mu.Unlock()
			}
			return resp, err
		})
	}
	h := w.g.Hooks()
	h.wrapKube = wrap
	code := Main(w.t.Context(), nil, &stdout, &stderr, h)
	w.t.Logf("urunner (waiting) → exit %d\n%s%s", code, stdout.String(), stderr.String())
	return result{code: code, logs: stdout.String() + stderr.String()}
}

func (w *world) opRestrictedRun() bool {
	return w.run(armed{restrict: w.refs()[w.pick(6)]})
}

// opPushBurst is a CI pipeline pushing several tags, each push starting
// its own pushed run at once (a rebuilt base image): the cap counts them
// together until the next full run.
func (w *world) opPushBurst() bool {
	for range 2 + w.pick(3) {
		if w.t.Failed() {
			return true
		}
		ref := w.followedRef()
		w.pushSeed(ref, fmt.Sprintf("s%d", len(w.steps)+1))
		w.step("push %s (%s)%s", w.repoTag(ref), short(w.tag[ref]), w.signedAtPush(ref))
		w.run(armed{restrict: ref})
	}
	return true
}

// armed is what a run meets besides the world as it is.
type armed struct {
	fault, faultRef   string // a registry fault: for one tag's HEAD, or every HEAD (429)
	conflict          *mw    // a write to this workload between urunner's read and its patch
	conflictEdit      string // label, or set image
	conflictContainer *mc
	conflictRef       string
	crash             bool   // the run dies before it saves its state
	restrict          string // the run looks up only this reference (a push)
	fired             *bool  // set when the conflicting write happened
}

func (a armed) String() string {
	var parts []string
	if a.fault != "" {
		parts = append(parts, "fault "+a.fault)
	}
	if a.conflict != nil {
		parts = append(parts, "conflict "+a.conflictEdit+" on "+a.conflict.name)
	}
	if a.crash {
		parts = append(parts, "dies before saving")
	}
	if a.restrict != "" {
		parts = append(parts, "restricted")
	}
	return strings.Join(parts, ", ")
}

// outcome of a lookup in the model: a digest, "" for failed; looked is
// false for a reference a restricted run does not look up.
type lookup struct {
	digest string
	looked bool
}

// run arms the perturbations, runs urunner once, predicts with the model
// what it must have done, and checks the cluster and the state against it.
func (w *world) run(a armed) bool {
	g := w.g
	if a.faultRef != "" {
		w.step("run with %s on %s", a, w.repoTag(a.faultRef))
	} else if a.restrict != "" {
		w.step("run with %s to %s", a, w.repoTag(a.restrict))
	} else {
		w.step("run %s", a)
	}
	for _, x := range w.live() {
		if err := w.settle(x); err != nil {
			w.t.Fatal(err)
		}
	}
	g.reg.ResetRequests()
	g.reg.SetFault(w.registryFault(a))
	var once sync.Once
	a.fired = new(bool)
	g.api.setFault(func(r *http.Request) *http.Response {
		if a.crash && strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"+g.state), "/configmaps") && (r.Method == http.MethodPut || r.Method == http.MethodPost) {
			return apiStatus(r, http.StatusInternalServerError, "InternalError")
		}
		if a.conflict != nil && r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/namespaces/"+a.conflict.ns+"/deployments/"+a.conflict.name) {
			once.Do(func() { w.conflictingWrite(a) })
		}
		return nil
	})
	if a.restrict != "" {
		w.g.setenv("URUNNER_CONF_REFERENCES", a.restrict)
	}
	o := g.run()
	w.lastRun = time.Now()
	g.reg.SetFault(nil)
	g.api.setFault(nil)
	if a.restrict != "" {
		w.g.setenv("URUNNER_CONF_REFERENCES", "")
	}
	p := w.predictAct(a)
	exit := w.predictFinish(p, false)
	w.check(o, exit)
	w.checkForecasts(o, p.decs)
	return true
}

// checkForecasts checks the run's forecasts (its report's, as kept for
// kubectl urunner why) against the model's decisions: a forecast for each
// workload the run held, and for no other; its first hold one of the rules
// the model says hold it (or a quarantine this run's failed rollout
// started), and its digest one the workload moves to. The next run may
// let through what only a ring or the cap held: this run's
// ring-0 restarts are foreseen rolled out, and a full run's cap counts
// its own restarts only.
func (w *world) checkForecasts(o result, decs []decision) {
	t := w.t
	fcs := map[string]report.Forecast{}
	for _, fc := range reportOf(t, o).Forecasts {
		fcs[fc.Namespace+"/"+fc.Name] = fc
	}
	for _, d := range decs {
		key := d.x.ns + "/" + d.x.name
		fc, ok := fcs[key]
		delete(fcs, key)
		held := len(d.moves) > 0 && !d.restart
		switch {
		case !held && ok:
			t.Errorf("step %d: %s has a forecast (%+v), the model holds nothing of it", len(w.steps), d.x.name, fc)
		case held && !ok:
			t.Errorf("step %d: %s is held by %v (capped %v), but has no forecast", len(w.steps), d.x.name, d.holds, d.capped)
		case held:
			allowed := slices.Clone(d.holds)
			if d.capped {
				allowed = append(allowed, "cap")
			}
			for _, to := range d.moves {
				if w.holdsIn(to, d.x.group) {
					// quarantined by this run's failed rollout elsewhere:
					// the next run holds it first by that
					allowed = append(allowed, "quarantine")
				}
			}
			liftable := !slices.ContainsFunc(allowed, func(r string) bool { return r != "ring" && r != "cap" })
			switch {
			case len(fc.Holds) == 0 && !liftable:
				t.Errorf("step %d: %s is foreseen restarting at %v with no hold, the model holds it by %v", len(w.steps), d.x.name, fc.Restarts, allowed)
			case len(fc.Holds) > 0 && !slices.Contains(allowed, fc.Holds[0].Rule):
				t.Errorf("step %d: %s is foreseen held by %s first (%s), the model holds it by %v", len(w.steps), d.x.name, fc.Holds[0].Rule, fc.Holds[0].Why, allowed)
			}
			if !slices.Contains(slices.Collect(maps.Values(d.moves)), fc.Digest) {
				t.Errorf("step %d: %s is foreseen moving to %s, the model moves it to %v", len(w.steps), d.x.name, short(fc.Digest), shortAll(slices.Collect(maps.Values(d.moves))))
			}
		}
	}
	for key, fc := range fcs {
		t.Errorf("step %d: a forecast for %s, which the model did not decide: %+v", len(w.steps), key, fc)
	}
	if t.Failed() {
		t.Logf("run output:\n%s", o.logs)
		t.FailNow()
	}
}

func (w *world) registryFault(a armed) func(http.ResponseWriter, *http.Request) bool {
	if a.fault == "" {
		return nil
	}
	path := "/v2/" + strings.Replace(w.repoTag(a.faultRef), ":", "/manifests/", 1)
	return func(rw http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodHead || a.fault != "429" && r.URL.Path != path {
			return false
		}
		switch a.fault {
		case "429":
			rw.Header().Set("Retry-After", "3600")
			rw.WriteHeader(http.StatusTooManyRequests)
		default:
			code, _ := strconv.Atoi(a.fault)
			rw.WriteHeader(code)
		}
		return true
	}
}

// conflictingWrite is a person's edit landing between urunner's read and
// its patch: the patch then meets a changed object. The model learns of it
// in predict.
func (w *world) conflictingWrite(a armed) {
	x := a.conflict
	patch := fmt.Sprintf(`{"metadata":{"labels":{"edited":%q}}}`, strconv.Itoa(len(w.steps)))
	pt := types.MergePatchType
	if a.conflictEdit == "set image" {
		patch = fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":%q,"image":%q}]}}}}`, a.conflictContainer.name, a.conflictRef)
		pt = types.StrategicMergePatchType
	}
	if _, err := w.g.cs.AppsV1().Deployments(x.ns).Patch(w.t.Context(), x.name, pt, []byte(patch), metav1.PatchOptions{}); err != nil {
		w.t.Error(err)
	}
	if err := w.settle(x); err != nil {
		w.t.Error(err) // on urunner's goroutine: no Fatal
	}
	*a.fired = true
}

func (w *world) template(x *mw) corev1.PodTemplateSpec {
	return w.g.deployment(x.ns, x.name).Spec.Template
}

// believe is what the model holds c runs: its decided belief, else the
// README's rules 2 to 4 from what the last saved run left.
func (w *world) believe(x *mw, c *mc) string {
	if !c.lazy {
		return c.belief
	}
	if ref, d, ok := strings.Cut(c.record, "@"); ok && ref == c.ref {
		return d
	}
	if _, known := w.stored[c.ref]; known && x.created < w.lastOK[c.ref] {
		return w.base[c.ref]
	}
	return ""
}

// lookupOutcome is what the registry answers for ref with group's pull
// secret, faults included.
func (w *world) lookupOutcome(a armed, ref, group string) lookup {
	if a.restrict != "" && ref != a.restrict {
		return lookup{}
	}
	failed := group == "c" || a.fault == "429" || a.fault != "" && ref == a.faultRef
	if failed {
		return lookup{looked: true}
	}
	return lookup{digest: w.tag[ref], looked: true}
}

// decision is the model's verdict on a workload.
type decision struct {
	x       *mw
	restart bool
	moves   map[*mc]string // container → the digest it moves to
	from    map[*mc]string // container → what it was believed to run
	decided map[*mc]string // container → the digest looked up (baseline, unchanged, moved)
	failed  map[*mc]bool
	// undelivered: its pods run another digest than the one it is
	// believed to run because it was restarted for it; the move is due
	// again, from what the pods run.
	undelivered bool
	// refused: a digest it moves to is signed, but not by a trusted key:
	// a failure, held or not
	refused bool
	// holds are the rules that hold its moves (policy.Holds' names), and
	// capped whether the cap held its restart
	holds  []string
	capped bool
}

// fleet is, per reference, the rings of the listed workloads following it.
type fleet map[string]map[int]bool

func (w *world) fleet() fleet {
	f := fleet{}
	for _, x := range w.live() {
		for _, c := range x.cs {
			if c.ref == "" {
				continue
			}
			if f[c.ref] == nil {
				f[c.ref] = map[int]bool{}
			}
			f[c.ref][x.ring] = true
		}
	}
	return f
}

// bound is whether x's restarts set tag@digest (README "A gate binds what
// runs"): pin mode, or a gate.
func (w *world) bound(x *mw, rings fleet) bool { return w.pin || w.gated(x, rings) }

// gated is whether a gate judges x's digests: verified rollouts'
// quarantine, signatures, approve mode, a soak, a ring above 0, or ring 0
// of a reference later rings follow.
func (w *world) gated(x *mw, rings fleet) bool {
	if w.verify || w.signatures || w.approve || x.soak || x.ring > 0 {
		return true
	}
	for _, c := range x.cs {
		if c.ref != "" && len(rings[c.ref]) > 1 {
			return true
		}
	}
	return false
}

// ringHolds is the ring gate: ring 1 moves onto to once every ring-0
// workload following the reference in this listing runs it healthily (is
// believed to run it, and its rollout is complete: a fragile one's never
// is), and while a ring 0 known to follow the reference is missing from
// the listing it holds (only a person forgets a ring).
func (w *world) ringHolds(x *mw, c *mc, to string, rings fleet) bool {
	if x.ring != 1 {
		return false
	}
	if w.knownRings[c.ref][0] && !rings[c.ref][0] {
		return true
	}
	for _, y := range w.live() {
		if y.ring != 0 {
			continue
		}
		for _, yc := range y.cs {
			if yc.ref == c.ref && (w.believe(y, yc) != to || y.fragile) {
				return true
			}
		}
	}
	return false
}

func (w *world) decide(x *mw, made map[[2]string]lookup, rings fleet) decision {
	d := decision{x: x, moves: map[*mc]string{}, from: map[*mc]string{}, decided: map[*mc]string{}, failed: map[*mc]bool{}}
	for _, c := range x.cs {
		if c.ref == "" {
			continue
		}
		l, ok := made[[2]string{c.ref, x.group}]
		if !ok || !l.looked {
			continue
		}
		if l.digest == "" {
			d.failed[c] = true
			continue
		}
		b := w.believe(x, c)
		d.from[c], d.decided[c] = b, l.digest
		if b != "" && b != l.digest {
			d.moves[c] = l.digest
		}
		if ref, rec, _ := strings.Cut(c.record, "@"); b == l.digest && ref == c.ref && rec == b && x.podsOn != "" {
			d.moves[c], d.from[c], d.undelivered = l.digest, x.podsOn, true
		}
	}
	if len(d.moves) == 0 {
		return d
	}
	w.heldBy["(moves)"]++
	holds := map[string]bool{"paused": x.paused, "cooldown": x.cooldown && x.restartedAt, "window": x.window, "soak": x.soak}
	lifted := false
	for c, to := range d.moves {
		// a quarantine holds in its namespaces not lifted, unless a lift
		// annotation of this listing in the namespace names the digest
		lifted = lifted || w.holdsIn(to, x.group) && w.liftListed(x.group, to)
		holds["quarantine"] = holds["quarantine"] || w.holdsIn(to, x.group) && !w.liftListed(x.group, to)
		// approve mode: each digest approved, on the workload or its namespace
		holds["approval"] = holds["approval"] || w.approve && !x.approved[to] && !w.nsApproved[x.group][to]
		// ring 1 follows ring 0 once ring 0 ran the digest healthily
		holds["ring"] = holds["ring"] || w.ringHolds(x, c, to, rings)
		// signatures: only a digest the trusted key signed; one with no
		// signature waits quietly, one signed by others is refused
		signers := w.signedBy[repoOf(c.ref)+"@"+to]
		holds["signature"] = holds["signature"] || w.signatures && !signers["key"]
		d.refused = d.refused || w.signatures && !signers["key"] && len(signers) > 0
	}
	d.restart = true
	for why, held := range holds {
		if held {
			d.restart = false
			w.heldBy[why]++
			d.holds = append(d.holds, why)
		}
	}
	if d.restart && lifted {
		w.heldBy["(let through by a lift)"]++
	}
	return d
}

// predict applies one run to the model, the README's rules step by step,
// and returns the exit code the run must have had.
func (w *world) predict(a armed) int {
	p := w.predictAct(a)
	return w.predictFinish(p, false)
}

// acting is a run of the model once it has patched its restarts: what its
// verified rollouts and its save will do.
type acting struct {
	a     armed
	exit  int
	decs  []decision
	made  map[[2]string]lookup
	rings fleet
	// failing are its restarts whose verified rollout fails, each with
	// what the restart changed and its workload's patches right after it
	failing []failing
	patched int
}

type failing struct {
	d       decision
	saved   []undo
	patches int
}

// undo is what a restart changed in a container of the model.
type undo struct {
	c                   *mc
	belief, record, img string
	lazy                bool
	restartedAt         bool
}

// predictAct applies a run to the model up to its patches: lookups,
// decisions, the cap, a person's conflicting write, the restarts.
func (w *world) predictAct(a armed) *acting {
	p := &acting{a: a, made: map[[2]string]lookup{}, rings: w.fleet()}
	listed := w.live()
	for _, x := range listed {
		for _, c := range x.cs {
			if c.ref != "" && (a.restrict == "" || c.ref == a.restrict) {
				l := w.lookupOutcome(a, c.ref, x.group)
				p.made[[2]string{c.ref, x.group}] = l
				if l.digest == "" {
					p.exit = 1
				}
			}
		}
	}
	restarts := 0
	w.undelivered = nil
	for _, x := range listed {
		d := w.decide(x, p.made, p.rings)
		p.decs = append(p.decs, d)
		if d.restart {
			restarts++
		}
		if d.refused {
			p.exit = 1
			w.heldBy["(signature refused)"]++
		}
		if d.undelivered {
			// told, held or not; a failure when a gate judged the digest
			w.undelivered = append(w.undelivered, x.name)
			w.heldBy["(not delivered)"]++
			if w.gated(x, p.rings) {
				p.exit = 1
				w.heldBy["(not delivered, gated: exit 1)"]++
			}
		}
	}
	already := 0
	if a.restrict != "" {
		already = w.window // a pushed run counts with the runs since the last full one
	}
	if w.maxRestarts > 0 && restarts > 0 && restarts+already > w.maxRestarts {
		p.exit = 1
		for i := range p.decs {
			if p.decs[i].restart {
				w.heldBy["cap"]++
				p.decs[i].capped = true
			}
			p.decs[i].restart = false
		}
	}
	// A person's write between urunner's read and its patch: urunner reads
	// the workload again and decides again, never sending the old patch.
	for i, d := range p.decs {
		if d.x != a.conflict {
			continue
		}
		if *a.fired != d.restart {
			w.t.Errorf("the conflicting write on %s happened = %v, but the model restarts it = %v", d.x.name, *a.fired, d.restart)
		}
		if *a.fired && a.conflictEdit == "set image" {
			w.switchTo(d.x, a.conflictContainer, a.conflictRef)
			p.decs[i] = w.decide(d.x, p.made, p.rings)
		}
	}
	// act: one patch per restart; the records are the workload's own.
	for _, d := range p.decs {
		if !d.restart {
			continue
		}
		var saved []undo
		for c, to := range d.moves {
			saved = append(saved, undo{c, c.belief, c.record, c.image, c.lazy, d.x.restartedAt})
			c.belief, c.lazy, c.record = to, false, c.ref+"@"+to
			if w.bound(d.x, p.rings) {
				c.image = c.ref + "@" + to
			}
		}
		d.x.restartedAt = true
		d.x.podsOn = "" // a new template: its new pod is not ready
		d.x.patches++
		w.restarts++
		p.patched++
		if w.verify && d.x.fragile {
			p.failing = append(p.failing, failing{d, saved, d.x.patches})
		}
	}
	return p
}

// predictFinish applies the rest of the run p: its verified rollouts, its
// rollbacks and its save. merged is a run that saved after another run
// that listed later (while it waited for its rollouts): that run's
// references win the save, and only what this run saw after that listing
// stays — its quarantines, and what it rolled back (state.Merge).
func (w *world) predictFinish(p *acting, merged bool) int {
	exit := p.exit
	var quarantine []failedIn
	rolled := 0
	for _, f := range p.failing {
		// Its rollout fails, its new digest is quarantined; it is rolled
		// back to what it ran before, unless another run patched it since.
		exit = 1
		for _, to := range f.d.moves {
			quarantine = append(quarantine, failedIn{to, f.d.x.group})
		}
		if f.d.x.patches != f.patches {
			w.heldBy["(not rolled back: changed since)"]++
			continue
		}
		rolled++
		f.d.x.patches++
		if merged {
			w.heldBy["(rolled back after the other run saved)"]++
		}
		for _, u := range f.saved {
			u.c.belief, u.c.record, u.c.image, u.c.lazy = u.belief, u.record, u.img, u.lazy
			f.d.x.restartedAt = u.restartedAt
			if merged {
				// remembered on what it ran before, as of the rollback
				u.c.belief, u.c.lazy = f.d.from[u.c], false
			}
		}
	}
	if p.a.crash {
		// Nothing the state would have kept is kept: only what each
		// restarted workload records in its own template.
		return 1
	}
	if merged {
		// The other run's save stands, with this run's quarantines: its
		// window, beliefs and rings are the other run's.
		w.runs++
		w.spendLifts()
		w.quarantine(quarantine)
		return exit
	}
	if p.a.restrict == "" {
		w.window = p.patched - rolled
	} else {
		w.window += p.patched - rolled
	}
	for _, d := range p.decs {
		if d.undelivered && !d.restart {
			// held: believed to run what its pods run, as the state records
			for c, from := range d.from {
				if _, moved := d.moves[c]; moved {
					c.belief, c.lazy = from, false
				}
			}
		}
	}
	w.record(p.decs, p.made, quarantine)
	if p.a.restrict == "" {
		// A complete listing forgets the references no workload follows.
		for ref := range w.stored {
			if !slices.ContainsFunc(slices.Collect(maps.Keys(p.made)), func(k [2]string) bool { return k[0] == ref }) {
				delete(w.stored, ref)
				delete(w.lastOK, ref)
				delete(w.base, ref)
				delete(w.knownRings, ref)
				delete(w.healthy, ref)
			}
		}
	}
	return exit
}

// record is the model's save: what the state remembers after the run.
func (w *world) record(decs []decision, made map[[2]string]lookup, quarantine []failedIn) {
	w.runs++
	w.spendLifts()
	w.quarantine(quarantine)
	ok := map[string]string{}
	for k, l := range made {
		if l.digest != "" {
			ok[k[0]] = l.digest
		}
	}
	type entry struct {
		x               *mw
		c               *mc
		after, recorded string
	}
	entries := map[string][]entry{}
	for _, d := range decs {
		for _, c := range d.x.cs {
			if c.ref == "" {
				continue
			}
			if _, looked := made[[2]string{c.ref, d.x.group}]; !looked {
				continue
			}
			after := w.believe(d.x, c)
			if to, baseline := d.decided[c]; baseline && d.from[c] == "" {
				after = to
			}
			recorded := ""
			if ref, dg, found := strings.Cut(c.record, "@"); found && ref == c.ref {
				recorded = dg
			}
			entries[c.ref] = append(entries[c.ref], entry{d.x, c, after, recorded})
		}
	}
	for ref, digest := range ok {
		// The base is what most of its containers without a record run;
		// ties go to the tag's digest, then to the smaller digest.
		count := map[string]int{}
		for _, e := range entries[ref] {
			if e.recorded == "" && e.after != "" {
				count[e.after]++
			}
		}
		base := digest
		for _, dg := range slices.Sorted(maps.Keys(count)) {
			if count[dg] > count[base] || count[dg] == count[base] && base != digest && dg < base {
				base = dg
			}
		}
		// Beliefs are decided now, with the previous run's base.
		for _, e := range entries[ref] {
			if e.after != "" {
				e.c.belief, e.c.lazy = e.after, false
			}
		}
		w.stored[ref], w.lastOK[ref], w.base[ref] = digest, w.runs, base
		// Rings known to follow it: this listing's, and those known before
		// that it lacks, while there are two or more.
		known := map[int]bool{}
		for _, e := range entries[ref] {
			known[e.x.ring] = true
		}
		for ring := range w.knownRings[ref] {
			known[ring] = true
		}
		if len(known) < 2 {
			known = nil
		}
		w.knownRings[ref] = known
		// Rings, while its containers are in two: a ring is healthy when
		// all of them run the digest and their rollout is complete (a
		// fragile workload's never is; the others' is, once settled).
		ringOK := map[int]bool{}
		for _, e := range entries[ref] {
			was, seen := ringOK[e.x.ring]
			ringOK[e.x.ring] = (was || !seen) && e.after == digest && !e.x.fragile
		}
		w.healthy[ref] = nil
		if len(ringOK) > 1 {
			for _, ring := range slices.Sorted(maps.Keys(ringOK)) {
				if ringOK[ring] {
					w.healthy[ref] = append(w.healthy[ref], ring)
				}
			}
		}
	}
}

// check compares what the cluster and the state show with the model.
func (w *world) check(o result, exit int) {
	t, g := w.t, w.g
	if o.code != exit {
		t.Errorf("step %d: exit code %d, the model says %d", len(w.steps), o.code, exit)
	}
	st := g.storedOrEmpty()
	for _, x := range w.live() {
		dep := w.g.deployment(x.ns, x.name)
		tpl := dep.Spec.Template
		if got := dep.Annotations[policy.LiftQuarantineAnnotation]; got != x.lift {
			t.Errorf("step %d: %s has lift annotation %q, the model says %q (spent once a run saved the state)", len(w.steps), x.name, got, x.lift)
		}
		got := map[string]string{}
		if v := tpl.Annotations[kube.RestartedForAnnotation]; v != "" {
			if err := json.Unmarshal([]byte(v), &got); err != nil {
				t.Errorf("%s: restarted-for %q: %v", x.name, v, err)
			}
		}
		want := map[string]string{}
		images := map[string]string{}
		for _, c := range x.cs {
			if c.record != "" {
				want[c.name] = c.record
			}
			images[c.name] = c.image
		}
		if !maps.Equal(want, got) {
			t.Errorf("step %d: %s records %v, the model says %v", len(w.steps), x.name, got, want)
		}
		for _, c := range tpl.Spec.Containers {
			if images[c.Name] != c.Image {
				t.Errorf("step %d: %s container %s runs image %s, the model says %s (a person's edit reverted?)", len(w.steps), x.name, c.Name, c.Image, images[c.Name])
			}
		}
		for _, c := range x.cs {
			if c.ref == "" {
				continue
			}
			if got, want := g.believesIn(st, x.ns, x.name, c.name), w.believe(x, c); got != want {
				t.Errorf("step %d: %s container %s believed to run %s, the model says %s", len(w.steps), x.name, c.name, short(got), short(want))
			}
		}
	}
	for ref, d := range w.stored {
		if got := st.Refs[ref].Digest; got != d {
			t.Errorf("step %d: %s remembered at %s, the model (what the registry served) says %s", len(w.steps), w.repoTag(ref), short(got), short(d))
		}
		if got, want := slices.Sorted(maps.Keys(st.Refs[ref].RingMembers)), slices.Sorted(maps.Keys(w.knownRings[ref])); !slices.Equal(got, want) {
			t.Errorf("step %d: %s has rings %v known, the model says %v", len(w.steps), w.repoTag(ref), got, want)
		}
		if got := slices.Sorted(maps.Keys(st.Refs[ref].Rings)); !slices.Equal(got, w.healthy[ref]) {
			t.Errorf("step %d: %s has rings %v healthy on %s, the model says %v", len(w.steps), w.repoTag(ref), got, short(d), w.healthy[ref])
		}
	}
	w.checkQuarantines(st)
	var told []string
	for _, line := range strings.Split(o.logs, "\n") {
		if !strings.Contains(line, "not delivered") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if name, ok := strings.CutPrefix(f, "deployment="); ok {
				told = append(told, name)
			}
		}
	}
	slices.Sort(told)
	if want := slices.Sorted(slices.Values(w.undelivered)); !slices.Equal(told, want) {
		t.Errorf("step %d: told not delivered %v, the model says %v", len(w.steps), told, want)
	}
	// Pull-secret credentials are used only for their own namespace's images.
	allowed := map[string]map[string]bool{}
	for _, x := range w.workloads {
		user := modelSecrets[x.group][0]
		if allowed[user] == nil {
			allowed[user] = map[string]bool{}
		}
		for _, c := range x.cs {
			for ref := range c.used {
				repo, _, _ := strings.Cut(w.repoTag(ref), ":")
				allowed[user][repo] = true
			}
		}
	}
	for user, repos := range g.reg.Users() {
		for _, repo := range repos {
			// "": the API's version check (GET /v2/), which names none
			if repo != "" && !allowed[user][repo] {
				t.Errorf("step %d: %s's credentials were used for %s, which no workload of its namespace names", len(w.steps), user, repo)
			}
		}
	}
	if t.Failed() {
		t.Logf("run output:\n%s", o.logs)
		t.FailNow()
	}
}

func shortAll(ds []string) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = short(d)
	}
	return out
}

// quarantine records failed rollouts: each digest is quarantined.
func (w *world) quarantine(failed []failedIn) {
	for _, f := range failed {
		w.quarantined[f.digest] = true // the digest, not the tag: never forgotten
		w.heldBy["(quarantined)"]++
		// a failure in a namespace quarantines it there again, lifted or
		// not; the lifts of other namespaces stand
		delete(w.lifted[f.digest], f.group)
	}
}

// failedIn is a digest whose verified rollout failed in a group's namespace.
type failedIn struct{ digest, group string }

// holdsIn is whether the quarantine of digest, as the last saved run left
// it, holds in group's namespace.
func (w *world) holdsIn(digest, group string) bool {
	return w.quarantined[digest] && !w.lifted[digest][group]
}

// liftListed is whether a listed workload of group carries a lift
// annotation naming digest (a prefix of its hex).
func (w *world) liftListed(group, digest string) bool {
	for _, y := range w.live() {
		if y.group == group && y.lift != "" && strings.HasPrefix(strings.TrimPrefix(digest, "sha256:"), strings.TrimPrefix(y.lift, "sha256:")) {
			return true
		}
	}
	return false
}

// spendLifts is a saved run's handling of the lift annotations it listed:
// each lifts, in its own namespace only, the quarantines of the last saved
// state that it names and that hold there; every one is then removed,
// whether it lifted something or not (one set before a quarantine must
// not lift it).
func (w *world) spendLifts() {
	for _, dg := range slices.Sorted(maps.Keys(w.quarantined)) {
		for _, grp := range []string{"a", "b", "c"} {
			if w.holdsIn(dg, grp) && w.liftListed(grp, dg) {
				if w.lifted[dg] == nil {
					w.lifted[dg] = map[string]bool{}
				}
				w.lifted[dg][grp] = true
				w.heldBy["(quarantine lifted)"]++
			}
		}
	}
	for _, x := range w.live() {
		x.lift = ""
	}
}

// checkQuarantines compares, per namespace, the quarantines the state
// holds there with the model's.
func (w *world) checkQuarantines(st state.State) {
	for _, grp := range []string{"a", "b", "c"} {
		var got, want []string
		for dg, q := range st.Quarantines {
			if q.HoldsIn(w.namespaces[grp]) {
				got = append(got, dg)
			}
		}
		for dg := range w.quarantined {
			if w.holdsIn(dg, grp) {
				want = append(want, dg)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			w.t.Errorf("step %d: quarantined in %s's namespace %v, the model says %v", len(w.steps), grp, shortAll(got), shortAll(want))
		}
	}
}

// opLift is a person of a workload's namespace lifting a quarantine with
// urunner.io/lift-quarantine (the full digest, or 12 or more of its hex):
// mostly of a digest quarantined there, sometimes of one a fragile
// workload is about to move to (set before its quarantine, it must not
// lift it).
func (w *world) opLift() bool {
	x := w.anyWorkload()
	if !w.verify || x == nil {
		return false
	}
	var held, soon []string
	for _, dg := range slices.Sorted(maps.Keys(w.quarantined)) {
		if w.holdsIn(dg, x.group) {
			held = append(held, dg)
		}
	}
	// Mostly a digest a workload of the namespace waits for, as a person
	// whose workload is held would.
	var wanted []string
	for _, y := range w.live() {
		for _, c := range y.cs {
			if dg := w.tag[c.ref]; y.group == x.group && c.ref != "" && slices.Contains(held, dg) && w.believe(y, c) != dg {
				wanted = append(wanted, dg)
			}
		}
	}
	if len(wanted) > 0 && w.pick(4) > 0 {
		held = wanted
	}
	for _, y := range w.live() {
		for _, c := range y.cs {
			if y.fragile && c.ref != "" && !w.quarantined[w.tag[c.ref]] {
				soon = append(soon, w.tag[c.ref])
			}
		}
	}
	var dg, why string
	switch {
	case len(held) > 0 && (len(soon) == 0 || w.pick(4) > 0):
		dg, why = held[w.pick(len(held))], "quarantined"
	case len(soon) > 0:
		dg, why = soon[w.pick(len(soon))], "not quarantined yet"
	default:
		return false
	}
	v := dg
	if w.pick(2) == 0 {
		v = strings.TrimPrefix(dg, "sha256:")[:12+w.pick(53)]
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, policy.LiftQuarantineAnnotation, v)
	if _, err := w.g.cs.AppsV1().Deployments(x.ns).Patch(w.t.Context(), x.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		w.t.Fatal(err)
	}
	x.lift = v
	w.step("lift %s (%s) on %s/%s", short(dg), why, x.group, x.name)
	if w.pick(2) == 0 {
		// the next run comes before the tag moves on: the lift takes
		// effect in it
		return w.run(armed{})
	}
	return true
}

// opStalePods is the kubelet of a workload urunner restarted: its pod
// comes up ready on another digest than the one its record says it was
// restarted for (a stale mirror, a cached image, a push during the
// rollout). The digest is one no tag ever points at, so the pods never
// run what a later lookup finds by chance. The next run that looks its
// tag up on the recorded digest tells "not delivered" and restarts it
// again unless held (a held one is believed to run what its pods run).
func (w *world) opStalePods() bool {
	var xs []*mw
	for _, x := range w.live() {
		// restarted for what its tag still points at: the next run that
		// looks the tag up checks the delivery
		if ref, rec, ok := strings.Cut(x.cs[0].record, "@"); x.kubelet && !x.paused && ok && ref == x.cs[0].ref && rec == w.tag[ref] {
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return false
	}
	x := xs[w.pick(len(xs))]
	c := x.cs[0]
	sum := sha256.Sum256([]byte(fmt.Sprintf("stale %d %d", w.seed, len(w.steps))))
	stale := "sha256:" + hex.EncodeToString(sum[:])
	repo := c.ref[:strings.LastIndex(c.ref, ":")]
	w.g.rolloutReadyOn(x.ns, x.name, map[string]string{c.name: repo + "@" + stale})
	x.podsOn = stale
	_, rec, _ := strings.Cut(c.record, "@")
	w.step("pods of %s/%s ready on %s, restarted for %s", x.group, x.name, short(stale), short(rec))
	return true
}

// login gives the cosign CLI credentials for host, as docker login
// would: the model's registry serves no anonymous user.
func (k cosignKey) login(t *testing.T, host, user, pass string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)
	if err := os.MkdirAll(filepath.Join(k.dir, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(k.dir, ".docker", "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}
