package run

import (
	"log/slog"
	"sync"
	"time"

	"github.com/urunner/urunner/exit"
	"github.com/urunner/urunner/kube"
)

// A fact is one thing a stage found or did that the run tells. Stages do
// not log, send Events or count for the report themselves: they note facts
// in the run's journal, and the reporter tells each one. Each kind of fact
// is one type in facts.go, and its tell method is the one place that says
// what it reads as: its log line, its Event, its share of the run report
// (and, through the report, of the metrics and the notifications).
type fact interface {
	tell(r *reporter)
}

// reporter is the run's one teller. It tells each fact as it is noted, so
// that the log streams as the run goes; what the run report, the metrics
// and the notifications need of the facts it keeps in the run's outcome,
// which report turns into them once the run ends. The journal is not kept
// fact by fact: at 100,000 workloads it would cost what the run's records
// do.
type reporter struct {
	log    *slog.Logger
	events *eventQueue // nil when URUNNER_CONF_EVENTS=false

	mu sync.Mutex
	o  *outcome
	// What is told once per run however many facts repeat it.
	rateLimited  map[string]bool // hosts whose rate limit was told
	refused      map[string]bool // ref@digest whose signature failure was counted
	warnings     int             // the decisions' Warning Events, up to maxWarningEvents
	retractEvent int             // the retractions' Events, up to maxWarningEvents
	// afterSave are Events sent once the state is saved (the decisions'
	// Warnings): they explain what the run remembers.
	afterSave []queuedEvent
}

func newReporter(log *slog.Logger, events *eventQueue, dryRun bool) *reporter {
	return &reporter{log: log, events: events, o: &outcome{dryRun: dryRun},
		rateLimited: map[string]bool{}, refused: map[string]bool{}}
}

// stage is where in a run a failure was found: the run report lists
// failures grouped in this order (the lookups' and the decisions' first,
// the run's own error last), each group in the order found.
type stage int

const (
	stageDecide stage = iota
	stageVerify
	stageRecord
	stageAct
	stageDiscover
	stageRun
)

// note appends f to the run's journal: the reporter tells it now.
func (a *app) note(f fact) {
	a.tell.mu.Lock()
	defer a.tell.mu.Unlock()
	f.tell(a.tell)
}

// event queues an Event on w for the sender.
func (r *reporter) event(w kube.Workload, typ, reason, msg, key string) {
	if r.events != nil {
		r.events.queue(queuedEvent{w, typ, reason, msg, key})
	}
}

// eventAfterSave keeps an Event until the state is saved (see saved).
func (r *reporter) eventAfterSave(w kube.Workload, typ, reason, msg, key string) {
	if r.events != nil {
		r.afterSave = append(r.afterSave, queuedEvent{w, typ, reason, msg, key})
	}
}

// saved queues the Events kept until the state was saved.
func (r *reporter) saved() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.afterSave {
		r.events.queue(e)
	}
	r.afterSave = nil
	if r.warnings == maxWarningEvents {
		r.log.Warn("more failed lookups than recorded as Events; see the log lines above", "events", maxWarningEvents)
	}
}

// warning reports whether one more of the decisions' Warning Events may
// be sent this run, and counts it.
func (r *reporter) warning() bool {
	if r.events == nil || r.warnings == maxWarningEvents {
		return false
	}
	r.warnings++
	return true
}

// started is when the run started.
func (r *reporter) started() time.Time { return r.o.start }

// succeeded says whether the run has failed at nothing so far.
func (r *reporter) succeeded() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.o.exitCode(nil) == exit.OK
}

// stored is the run report as the state ConfigMap keeps it, as of now.
func (r *reporter) stored(cluster string, spent spending) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return storedReport(r.o.runReport(cluster, r.o.exitCode(nil), nil, spent))
}
