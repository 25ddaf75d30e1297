package e2e

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/state"
)

// The state design holds at ten times the benchmark cluster: 50,000
// Deployments with three containers each on 10,000 references fit in one
// ConfigMap of the real API server, and read back unchanged.
func TestStateOfFiftyThousandWorkloadsFitsOneConfigMap(t *testing.T) {
	ctx := t.Context()
	s := state.State{}
	var changes state.Changes
	for i := range 50000 {
		k := state.Key{Namespace: fmt.Sprintf("team-%03d", i%500), Kind: "Deployment", Name: fmt.Sprintf("service-%05d", i)}
		for j, c := range []string{"app", "sidecar", "migrate"} {
			r := (i*7 + j*13) % 10000
			e := state.Entry{
				Image:  fmt.Sprintf("registry-%d.example.com/team-%03d/image-%05d:latest", r%3, r%500, r),
				Digest: fmt.Sprintf("sha256:%x", sha256.Sum256(fmt.Append(nil, r))),
			}
			changes.Put(k, c, e)
		}
	}
	s = changes.Apply(s)
	ensureNamespace(t, "state-scale")
	store := state.NewStore(clientset(t).CoreV1(), "state-scale", "urunner-state")
	snap, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(ctx, snap, &changes); err != nil {
		t.Fatalf("save 50,000 workloads: %v", err)
	}
	cm, err := clientset(t).CoreV1().ConfigMaps("state-scale").Get(ctx, "urunner-state", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	size := len(cm.BinaryData[state.DataKey])
	t.Logf("50,000 workloads, 150,000 containers, 10,000 references: %d bytes (%.0f%% of the 1 MiB limit)", size, 100*float64(size)/float64(state.MaxConfigMapBytes))
	back, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, back.State); diff != "" {
		t.Errorf("read back differs (-saved +read):\n%.2000s", diff)
	}
}
