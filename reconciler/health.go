package reconciler

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// DefaultStallTimeout is how long a pass may go without progress before the
// loop calls itself stalled. Every wait phoenix makes has a bound of its
// own; the longest one that reports nothing while it waits is a create or
// clone task (30 minutes), so a pass silent for longer waits on something
// unbounded: a bug, which only a restart cures.
const DefaultStallTimeout = 35 * time.Minute

// progress is what the loop knows of the pass in flight: when it started,
// and the last sign of life, for /healthz.
//
// Progress is any event of the apply (an action or a step started, done,
// retried, failed; a line a step printed; the heartbeat of a step still
// running, which its own timeout bounds), and each stage of the pass
// (loaded, observed, planned). A wait for a Proxmox task reports nothing:
// a task that hangs is no progress, and its own bound ends it.
type progress struct {
	mu      sync.Mutex
	running bool
	started time.Time
	last    time.Time
	what    string
}

// begin marks a pass as started.
func (p *progress) begin(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running, p.started, p.last, p.what = true, now, now, "the pass started"
}

// mark records a sign of life.
func (p *progress) mark(now time.Time, what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		p.last, p.what = now, what
	}
}

// event records an apply event as a sign of life.
func (p *progress) event(now time.Time, ev Event) {
	var b strings.Builder
	b.WriteString(ev.Guest)
	if ev.Feature != "" || ev.Step != "" {
		fmt.Fprintf(&b, ": %s", strings.TrimSpace(ev.Step+" "+ev.Phase))
	} else {
		fmt.Fprintf(&b, ": %s", ev.Action)
	}
	fmt.Fprintf(&b, " %s", ev.Outcome)
	p.mark(now, b.String())
}

// end marks the pass as over.
func (p *progress) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running = false
}

// stalled says why a pass in flight counts as stalled at now, or "".
func (p *progress) stalled(now time.Time, bound time.Duration) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running || now.Sub(p.last) <= bound {
		return ""
	}
	return fmt.Sprintf("the pass started at %s has made no progress for %v (more than %v); the last was %s at %s",
		p.started.Format(time.RFC3339), now.Sub(p.last).Round(time.Second), bound, p.what, p.last.Format(time.RFC3339))
}

// Health reports whether the loop is alive: an error while the pass in
// flight has made no progress for longer than StallTimeout (see progress),
// nil otherwise, between passes too.
func (l *Loop) Health() error {
	if why := l.progress.stalled(l.opts.Now(), l.opts.StallTimeout); why != "" {
		return fmt.Errorf("stalled: %s", why)
	}
	return nil
}
