package sim

import (
	"sync"
	"time"
)

// Event is one entry of the simulator's journal: an API call, a task ending, or
// a command run on a node. Tests assert on the journal to check what phoenix
// did, and in what order.
type Event struct {
	Seq  int       `json:"seq"`
	Time time.Time `json:"time"`
	Node string    `json:"node"`
	VMID int       `json:"vmid"`
	// Kind is api, task or exec.
	Kind string `json:"kind"`
	// Name is "METHOD /path" for api, the worker type for task, and the script
	// name (feature/step) or command for exec.
	Name string `json:"name"`
	// Phase is check, apply or verify for feature steps, else empty.
	Phase  string `json:"phase"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// journal is append-only and safe for concurrent use.
type journal struct {
	mu     sync.Mutex
	events []Event
	start  time.Time
}

func (j *journal) add(now time.Time, e Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.start.IsZero() {
		j.start = now
	}
	e.Seq = len(j.events) + 1
	e.Time = now
	j.events = append(j.events, e)
}

func (j *journal) epoch() time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.start.IsZero() {
		j.start = time.Now()
	}
	return j.start
}

// snapshot returns a copy of every event so far.
func (j *journal) snapshot() []Event {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Event(nil), j.events...)
}
