package main

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/policy"
	"github.com/urunner/urunner/state"
)

// A ring urunner remembers holds the rings after it while it is missing
// from a listing (here: its workload deleted); only a person forgets it,
// with forget-ring, which edits urunner's state as a run does. Then ring
// 1 restarts.
func TestForgetRingLetsTheRingsAfterAVanishedOneGo(t *testing.T) {
	in := newInstall(t, "rings", "rings", "config.stateConfigMap=urunner-state")
	web := in.image("shop/web:latest")
	in.push("shop/web:latest", "v1")
	in.deployment("canary", web, false)
	in.label("canary", policy.RingAnnotation, "0")
	in.deployment("main", web, false)
	in.label("main", policy.RingAnnotation, "1")
	if code, _, _ := in.run("run"); code != 0 {
		t.Fatalf("baseline run: exit %d", code)
	}
	if got := ringMembersOf(t, in, web); len(got) != 2 {
		t.Fatalf("rings remembered after the baseline = %v, want rings 0 and 1", got)
	}

	// Ring 0 is gone; the tag moves: ring 1 waits and says how to go on.
	if err := in.cs.AppsV1().Deployments(in.app).Delete(t.Context(), "canary", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	in.push("shop/web:latest", "v2")
	code, out, _ := in.run("run")
	if code != 0 {
		t.Fatalf("run without ring 0: exit %d", code)
	}
	if in.restartedAt("main") != "" {
		t.Fatal("ring 1 restarted while the ring 0 it follows is missing")
	}
	mustContain(t, "the held run's log", out, "ring 1: waits — ring 0 of "+web+" (namespace "+in.app+") is missing from this listing",
		"kubectl urunner forget-ring "+web+" 0")

	// Mistakes: a ring not remembered, a reference not remembered, not a ring.
	code, _, errOut := in.run("forget-ring", web, "3")
	if code != exitError {
		t.Errorf("forget-ring of an unknown ring: exit %d, want %d", code, exitError)
	}
	mustContain(t, "forget-ring of an unknown ring", errOut, "ring 3 of "+web+" is not remembered (remembered rings: 0, 1)")
	code, _, errOut = in.run("forget-ring", in.image("shop/other:latest"), "0")
	if code != exitError {
		t.Errorf("forget-ring of an unknown reference: exit %d, want %d", code, exitError)
	}
	mustContain(t, "forget-ring of an unknown reference", errOut, "no reference "+in.image("shop/other:latest")+" is remembered")
	if code, _, _ = in.run("forget-ring", web, "first"); code != exitUsage {
		t.Errorf("forget-ring with no ring number: exit %d, want %d", code, exitUsage)
	}

	before := in.stateCM().ResourceVersion
	code, out, _ = in.run("forget-ring", web, "0")
	if code != 0 {
		t.Fatalf("forget-ring: exit %d", code)
	}
	mustContain(t, "forget-ring", out, "ring 0 of "+web+" forgotten")
	if got := ringMembersOf(t, in, web); len(got) != 1 || got[1] == nil {
		t.Errorf("rings remembered after forget-ring = %v, want ring 1 only", got)
	}
	if in.stateCM().ResourceVersion == before {
		t.Error("forget-ring did not write the state")
	}
	if code, _, _ = in.run("run"); code != 0 {
		t.Fatalf("run after forget-ring: exit %d", code)
	}
	if in.restartedAt("main") == "" {
		t.Error("ring 1 still held once the vanished ring 0 was forgotten")
	}
}

func ringMembersOf(t *testing.T, in *install, ref string) map[int][]string {
	t.Helper()
	st, err := state.Decode(in.stateCM().BinaryData[state.DataKey])
	if err != nil {
		t.Fatal(err)
	}
	return st.Refs[ref].RingMembers
}
