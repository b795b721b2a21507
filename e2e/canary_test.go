package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/phoenixhv/phoenix/reconciler"
)

// Every rig runs with canary credentials (sim.CanaryCredentials): a token
// secret, a root@pam password and an SSH key (given as key material, as
// terraform users give it) that exist nowhere else. The rig keeps what
// phoenix writes (its logs, each plan as text and JSON, each apply's
// progress, summary, JSON report and errors, the status) and, when the test
// ends, looks for the canaries there, in every configuration the simulator
// stores (the descriptions phoenix wrote its state records into) and in its
// journal. Any of them found fails the test: nothing phoenix writes
// anywhere may hold a credential value, whatever the test was about.

// outputs collects what phoenix wrote during a test. It is written from
// several goroutines.
type outputs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *outputs) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *outputs) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// logger logs everything, down to debug, as JSON into o.
func (o *outputs) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(o, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// event keeps an engine event as the progress printer would show it.
func (o *outputs) event(e reconciler.Event) {
	fmt.Fprintf(o, "event %s %s %s %s %s: %s %v\n", e.Guest, e.Action, e.Step, e.Phase, e.Outcome, e.Output, e.Err)
}

// recordPlan keeps a plan as plan renders it, as text and as JSON.
func (r *rig) recordPlan(p *reconciler.Plan) {
	_ = p.WriteText(r.out, reconciler.TextOptions{})
	_ = p.WriteJSON(r.out)
}

// recordApply keeps what apply and status print about an apply.
func (r *rig) recordApply(obs *reconciler.Observed, p *reconciler.Plan, res *reconciler.ApplyResult) {
	_ = res.WriteSummary(r.out, p)
	_ = res.WriteJSON(r.out, p)
	for _, g := range res.Guests {
		if g.Err != nil {
			fmt.Fprintf(r.out, "%s: %v\n", g.Name, g.Err)
		}
	}
	_ = json.NewEncoder(r.out).Encode(reconciler.Report{Guests: reconciler.Status(r.res, obs, p)})
}

// leaks returns where a canary turned up: the outputs, a stored
// configuration, the journal.
func (r *rig) leaks() []string {
	journal, err := json.Marshal(r.sim.Journal())
	if err != nil {
		return []string{"the journal: " + err.Error()}
	}
	places := map[string]string{"phoenix's output": r.out.String(), "the simulator's journal": string(journal)}
	for vmid, cfg := range r.sim.StoredConfigs() {
		places[fmt.Sprintf("the stored config of %d", vmid)] = cfg
	}
	var out []string
	for _, place := range slices.Sorted(func(yield func(string) bool) {
		for p := range places {
			if !yield(p) {
				return
			}
		}
	}) {
		for _, c := range r.creds.Canaries() {
			if i := strings.Index(places[place], c); i >= 0 {
				text := places[place]
				out = append(out, fmt.Sprintf("%s holds a credential (%q): ...%s...", place, c,
					text[max(0, i-80):min(len(text), i+len(c)+40)]))
			}
		}
	}
	return out
}

// checkLeaks fails the test for each canary found.
func (r *rig) checkLeaks() {
	for _, l := range r.leaks() {
		r.t.Errorf("canary credentials: %s", l)
	}
}

// TestCanaryCheckFindsLeaks plants each kind of canary where the check
// looks (the outputs, a description in Proxmox) and sees it found: a check
// that cannot fail would prove nothing in the other tests.
func TestCanaryCheckFindsLeaks(t *testing.T) {
	r := newRig(t, nil)
	if l := r.leaks(); len(l) != 0 {
		t.Fatalf("leaks before anything was planted: %v", l)
	}
	canaries := r.creds.Canaries()
	fmt.Fprintf(r.out, "an error quoting %s\n", canaries[0])
	if err := r.cluster.SetConfig(context.Background(), "pve2", 120, map[string]string{"description": "key line " + canaries[len(canaries)-1]}, nil, ""); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(r.leaks(), "\n")
	for _, want := range []string{"phoenix's output holds a credential (" + fmt.Sprintf("%q", canaries[0]), "the stored config of 120 holds a credential"} {
		if !strings.Contains(got, want) {
			t.Errorf("the check missed a planted canary: want %q in\n%s", want, got)
		}
	}
	// Clean up what was planted, so that the rig's own check passes.
	r.out.mu.Lock()
	r.out.buf.Reset()
	r.out.mu.Unlock()
	if err := r.cluster.SetConfig(context.Background(), "pve2", 120, nil, []string{"description"}, ""); err != nil {
		t.Fatal(err)
	}
}
