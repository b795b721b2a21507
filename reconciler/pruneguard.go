package reconciler

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// The loop's guard on --prune. A spec tree is not always whole: a deploy that
// is not atomic (rsync writing a file in place, a file moved from one folder
// to another, a checkout swapping a directory) leaves moments in which guests
// that are wanted are in no spec, and a prune in such a moment destroys them
// only for the next pass to make them again, empty. So the loop prunes only
// on a full pass (one the interval started, never one a file event started),
// and only once the spec tree has been unchanged for a grace period: no file
// event, no change in what the specs say, and no file or folder of the tree
// modified, within it. The plan's own limit on how many guests one prune
// deletes comes on top.

// DefaultPruneGrace is how long the spec tree must be unchanged before the
// loop prunes.
const DefaultPruneGrace = 5 * time.Minute

// pruneGuard is what the loop knows of the spec tree's changes.
type pruneGuard struct {
	mu sync.Mutex
	// event is set by a file event until a pass takes it; lastEvent is
	// when the last one came.
	event     bool
	lastEvent time.Time
	// specs identifies what the specs said at the last pass; changed is when
	// a pass last found them different from the pass before.
	specs   string
	changed time.Time
}

// noteEvent records a file event.
func (g *pruneGuard) noteEvent(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.event, g.lastEvent = true, now
}

// takeEvent reports whether a file event came since the last pass began,
// and clears it: the pass it starts is not a full pass.
func (g *pruneGuard) takeEvent() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.event
	g.event = false
	return e
}

// pruneHold says why a pass must not prune, or "" when it may. triggered
// marks a pass a file event started.
func (l *Loop) pruneHold(res *spec.Resolution, triggered bool, now time.Time) string {
	g := &l.guard
	id := specsIdentity(res)
	g.mu.Lock()
	if g.specs != "" && id != g.specs {
		g.changed = now
	}
	g.specs = id
	since := g.lastEvent
	if g.changed.After(since) {
		since = g.changed
	}
	g.mu.Unlock()
	grace := l.opts.PruneGrace
	if l.opts.SpecsModified != nil {
		t, err := l.opts.SpecsModified()
		if err != nil {
			return fmt.Sprintf("when the spec files last changed cannot be read (%v)", err)
		}
		if t.After(since) {
			since = t
		}
	}
	switch {
	case triggered:
		return "this pass was started by a change to the spec files, and only a full pass prunes, once they have been unchanged for " + graceText(grace)
	case grace > 0 && !since.IsZero() && now.Sub(since) < grace:
		return fmt.Sprintf("the spec files changed %s ago; a full pass prunes once they have been unchanged for %s",
			max(now.Sub(since), 0).Round(time.Second), graceText(grace))
	}
	return ""
}

func graceText(d time.Duration) string {
	if d <= 0 {
		return "a moment"
	}
	return d.String()
}

// specsIdentity identifies what a spec set says, so that a pass sees that the
// specs changed even when no file event told it (a directory swapped for
// another, an event missed).
func specsIdentity(res *spec.Resolution) string {
	type guest struct {
		Name    string
		VMID    int
		Renewal []int
		Spec    string
	}
	gs := make([]guest, 0, len(res.Guests))
	for _, r := range res.Guests {
		gs = append(gs, guest{r.Name, r.VMID, r.RenewalVMIDs, guestHash(r)})
	}
	b, _ := json.Marshal(struct {
		D string
		G []guest
	}{res.Deployment, gs})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// heldBack counts the plan's guests a held prune left alone.
func heldBack(p *Plan, hold string) int {
	n := 0
	for _, g := range p.Guests {
		for _, note := range g.Notes {
			if strings.HasSuffix(note, hold) {
				n++
				break
			}
		}
	}
	return n
}
