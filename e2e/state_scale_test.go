package e2e

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/kube/apiclient"
	"github.com/urunner/urunner/state"
	"github.com/urunner/urunner/state/configmaps"
)

// The state holds what the largest benchmark cluster needs: 10,000
// references on 3 registries, a thousand workloads held behind their base,
// a quarantined digest per hundred references. It fits one ConfigMap of the
// real API server whatever the number of workloads (it holds no entry per
// workload in a steady state), and reads back unchanged.
func TestStateOfTenThousandReferencesFitsOneConfigMap(t *testing.T) {
	t.Parallel() // a namespace of its own, never labelled for urunner
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	digest := func(i int) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(fmt.Append(nil, i))) }
	s := state.State{ListedAt: now, LastSuccess: now, Workloads: 100000, CountedAt: now, Refs: map[string]state.Ref{},
		Quarantines: map[string]state.Quarantine{}}
	for r := range 10000 {
		ref := state.Ref{Digest: digest(r), Seen: now.Add(-time.Duration(r) * time.Minute), Checked: now}
		if r%10 == 0 {
			ref.Base = digest(r + 1_000_000)
			ref.Except = map[string]state.Exception{}
			for w := range 10 {
				ref.Except[fmt.Sprintf("team-%03d/Deployment/service-%05d/app", r%500, r*10+w)] = state.Exception{Runs: digest(r)}
			}
		}
		key := fmt.Sprintf("registry-%d.example.com/team-%03d/image-%05d:latest", r%3, r%500, r)
		if r%100 == 0 {
			why := "rollout failed in team/deployment/service: progress deadline exceeded"
			s.Quarantines[digest(r)] = state.Quarantine{Why: why, At: now, Refs: []string{key},
				Failed: map[string]time.Time{fmt.Sprintf("team-%03d", r%500): now}}
			ref.Quarantine = map[string]string{digest(r): why} // the view Load fills
		}
		s.Refs[key] = ref
	}
	ensureNamespace(t, "state-scale")
	lean, err := apiclient.New(cluster.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	store := state.NewStore(configmaps.New(lean), "state-scale", "urunner-state")
	snap, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(ctx, snap, s, nil, now); err != nil {
		t.Fatalf("save 10,000 references: %v", err)
	}
	cm, err := clientset(t).CoreV1().ConfigMaps("state-scale").Get(ctx, "urunner-state", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	size := len(cm.BinaryData[state.DataKey])
	t.Logf("10,000 references, 10,000 exceptions, 100 quarantined digests: %d bytes (%.0f%% of the 1 MiB limit)", size, 100*float64(size)/float64(state.MaxConfigMapBytes))
	back, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, back.State); diff != "" {
		t.Errorf("read back differs (-saved +read):\n%.2000s", diff)
	}
}
