package webhook

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeRuns stands for the cluster in tests of the trigger's timing alone;
// what the trigger does to a real cluster is tested in e2e/webhook_test.go.
type fakeRuns struct {
	mu      sync.Mutex
	active  bool
	fail    int // Start fails this many times first
	started [][]string
	at      []time.Time
}

func (f *fakeRuns) Active() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

func (f *fakeRuns) Start(_ context.Context, refs []string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return "", errors.New("the API server is away")
	}
	f.started = append(f.started, refs)
	f.at = append(f.at, time.Now())
	return "job", nil
}

func (f *fakeRuns) setActive(a bool) {
	f.mu.Lock()
	f.active = a
	f.mu.Unlock()
}

func (f *fakeRuns) runs() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.started)
}

func startTrigger(t *testing.T, f *fakeRuns, debounce time.Duration, maxRefs int) (*trigger, context.CancelFunc) {
	t.Helper()
	tr := newTrigger(f, debounce, maxRefs, discardLog())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return tr, func() { cancel(); <-done }
}

func push(t *testing.T, tr *trigger, refs ...string) {
	t.Helper()
	if err := tr.Push(t.Context(), refs); err != nil {
		t.Fatal(err)
	}
}

func TestPushesWithinTheWindowCoalesceIntoOneRun(t *testing.T) {
	f := &fakeRuns{}
	tr, _ := startTrigger(t, f, 300*time.Millisecond, 10)
	began := time.Now()
	push(t, tr, "r.example.com/a:1")
	push(t, tr, "r.example.com/b:1", "r.example.com/a:1")
	push(t, tr, "r.example.com/c:1")
	waitFor(t, 5*time.Second, func() bool { return len(f.runs()) == 1 })
	if diff := cmp.Diff([][]string{{"r.example.com/a:1", "r.example.com/b:1", "r.example.com/c:1"}}, f.runs()); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
	if waited := f.at[0].Sub(began); waited < 300*time.Millisecond {
		t.Errorf("the run started %s after the first push, before the window closed", waited)
	}
	// The next push opens a new window and a new run.
	push(t, tr, "r.example.com/d:1")
	waitFor(t, 5*time.Second, func() bool { return len(f.runs()) == 2 })
	if diff := cmp.Diff([]string{"r.example.com/d:1"}, f.runs()[1]); diff != "" {
		t.Errorf("second run (-want +got):\n%s", diff)
	}
}

// While a run is in progress nothing starts; everything pushed meanwhile
// waits as one batch, the union, and starts once when the run ends.
func TestPushesWaitForARunInProgressAsOneBatch(t *testing.T) {
	f := &fakeRuns{active: true}
	tr, _ := startTrigger(t, f, 50*time.Millisecond, 10)
	push(t, tr, "r.example.com/a:1")
	time.Sleep(200 * time.Millisecond) // several windows pass
	push(t, tr, "r.example.com/b:1")
	time.Sleep(200 * time.Millisecond)
	push(t, tr, "r.example.com/a:1")
	if got := f.runs(); len(got) != 0 {
		t.Fatalf("runs started during a run in progress: %v", got)
	}
	f.setActive(false)
	tr.Wake() // what a Job event does
	waitFor(t, 5*time.Second, func() bool { return len(f.runs()) == 1 })
	time.Sleep(200 * time.Millisecond)
	if diff := cmp.Diff([][]string{{"r.example.com/a:1", "r.example.com/b:1"}}, f.runs()); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

func TestTooManyReferencesMakeAFullRun(t *testing.T) {
	f := &fakeRuns{}
	tr, _ := startTrigger(t, f, 50*time.Millisecond, 2)
	push(t, tr, "r.example.com/a:1", "r.example.com/b:1", "r.example.com/c:1")
	waitFor(t, 5*time.Second, func() bool { return len(f.runs()) == 1 })
	if f.runs()[0] != nil {
		t.Errorf("run for %v, want a full run (nil)", f.runs()[0])
	}
}

func TestAFailedStartIsRetriedWithTheSameReferences(t *testing.T) {
	f := &fakeRuns{fail: 1}
	tr, _ := startTrigger(t, f, 10*time.Millisecond, 10)
	push(t, tr, "r.example.com/a:1")
	waitFor(t, retryDelay+5*time.Second, func() bool { return len(f.runs()) == 1 })
	if diff := cmp.Diff([][]string{{"r.example.com/a:1"}}, f.runs()); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

// Stopping the receiver starts what is pending rather than losing it.
func TestStoppingStartsThePendingBatch(t *testing.T) {
	f := &fakeRuns{}
	tr, stop := startTrigger(t, f, time.Hour, 10)
	push(t, tr, "r.example.com/a:1")
	stop()
	if diff := cmp.Diff([][]string{{"r.example.com/a:1"}}, f.runs()); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}
