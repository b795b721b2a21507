package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// description reads a guest's description as Proxmox gives it back, with
// the user's text and phoenix's record in it.
func (r *rig) description(name string) (desc, user string, st *reconciler.State, digest string) {
	r.t.Helper()
	g, _ := r.res.Guest(name)
	cfg, err := r.cluster.GuestConfig(context.Background(), g.Settings.Node, g.VMID)
	if err != nil {
		r.t.Fatal(err)
	}
	desc = cfg.Values["description"]
	user, st, err = reconciler.ParseDescription(desc)
	if err != nil || st == nil {
		r.t.Fatalf("record of %s: %v %v", name, st, err)
	}
	return desc, user, st, cfg.Digest
}

// setNotes writes the user's notes beside a guest's record, as a person
// does in Proxmox's web interface.
func (r *rig) setNotes(name, notes string, st *reconciler.State, digest string) {
	r.t.Helper()
	g, _ := r.res.Guest(name)
	desc := reconciler.RenderDescription(notes, st)
	if err := r.cluster.SetConfig(context.Background(), g.Settings.Node, g.VMID, map[string]string{"description": desc}, nil, digest); err != nil {
		r.t.Fatalf("notes on %s (%d characters): %v", name, utf8.RuneCountInString(desc), err)
	}
}

// longStep is a feature whose failures say a lot: its name and its step's
// are long, and a failure's message names both.
const longStep = "reports-every-gpu-and-every-container-to-the-inventory-service"

// A guest whose notes leave less room than its last error takes still gets
// the error recorded: its message is cut, oldest output first, and the
// notes and the records are as they were. The notes are as long as the plan
// lets them be: room for the records to come and a failure cut to the bone.
func TestLongNotesKeepTheirRecordAndTheLastError(t *testing.T) {
	r := newRig(t, func(w *sim.World) {
		w.Spec.Faults.Exec.Scripts = map[string]float64{longStep + "/" + longStep: 1}
	})
	r.respec(
		specEdit{"containers.yaml", "  features: [nginx]\n", "  features: [nginx, " + longStep + "]\n"},
		specEdit{"features/inventory.yaml", "", "apiVersion: phoenix/v1alpha1\nkind: Feature\nmetadata: {name: " + longStep + "}\n" +
			"spec:\n  version: \"1.0.0\"\n  steps:\n    - {name: " + longStep + ", check: \"false\", apply: \"true\"}\n"},
	)
	r.apply(context.Background(), r.options())
	_, _, failed, digest := r.description("nginx")
	if failed.Error == nil || !strings.Contains(failed.Error.Message, "E: Could not get lock") {
		t.Fatalf("the first failure was not recorded: %+v", failed.Error)
	}
	full := failed.Error.Message
	clean := *failed
	clean.Error = nil
	notes := strings.Repeat("Bitte nicht neu starten. ", reconciler.DescriptionLimit)[:reconciler.DescriptionLimit-utf8.RuneCountInString(reconciler.RenderDescription("", &clean))-1]
	r.setNotes("nginx", notes, &clean, digest)
	// The plan says by how much the notes are too long: shortened by that,
	// they pass.
	_, p := r.plan(reconciler.PlanOptions{})
	var over int
	if errs := mustGuest(t, p, "nginx").Errors; len(errs) != 1 || !strings.Contains(errs[0].Message, "shorten the notes") {
		t.Fatalf("notes that fill the description: %v", errs)
	} else if _, err := fmt.Sscanf(errs[0].Message[strings.Index(errs[0].Message, "together "):], "together %d over", &over); err != nil {
		t.Fatalf("%q: %v", errs[0].Message, err)
	}
	notes = notes[:len(notes)-over]
	_, _, _, digest = r.description("nginx")
	r.setNotes("nginx", notes, &clean, digest)
	if _, p := r.plan(reconciler.PlanOptions{}); len(mustGuest(t, p, "nginx").Errors) > 0 {
		t.Fatalf("notes shortened as the plan said: %v", mustGuest(t, p, "nginx").Errors)
	}

	r.apply(context.Background(), r.options())
	desc, user, st, _ := r.description("nginx")
	// Proxmox reads a description back with a line break added.
	if n := utf8.RuneCountInString(strings.TrimSuffix(desc, "\n")); n > reconciler.DescriptionLimit {
		t.Errorf("the description has %d characters", n)
	}
	if strings.TrimRight(user, "\n") != notes {
		t.Errorf("the notes changed")
	}
	if st.Error == nil {
		t.Fatal("the failure was not recorded")
	}
	cut := strings.Index(st.Error.Message, "[...]")
	if cut < 0 || !strings.HasSuffix(full, st.Error.Message[cut+len("[...]"):]) || !strings.HasPrefix(full, st.Error.Message[:cut]) {
		t.Errorf("recorded message %q: want the start and the end of %q around the cut", st.Error.Message, full)
	}
	if diff := cmp.Diff(failed.Features, st.Features); diff != "" {
		t.Errorf("records (-before +after):\n%s", diff)
	}
}

func mustGuest(t *testing.T, p *reconciler.Plan, name string) *reconciler.GuestPlan {
	t.Helper()
	g, ok := p.Guest(name)
	if !ok {
		t.Fatalf("no plan for %s", name)
	}
	return g
}

// Notes that leave no room for phoenix's record are the plan's problem for
// that guest: it is left alone, notes and all, and the plan says by how
// much to shorten them. A converged guest with such notes gets a note.
func TestNotesWithoutRoomForTheRecordAreAPlanProblem(t *testing.T) {
	r := newRig(t, nil)
	r.mustConverge(r.options())
	_, _, st, digest := r.description("nginx")
	block := utf8.RuneCountInString(reconciler.RenderDescription("", st))
	notes := strings.Repeat("n", reconciler.DescriptionLimit-block-1-10)
	r.setNotes("nginx", notes, st, digest)
	before, _, _, _ := r.description("nginx")

	_, p := r.plan(reconciler.PlanOptions{})
	if g := mustGuest(t, p, "nginx"); len(g.Errors) > 0 || len(g.Notes) != 1 || !strings.Contains(g.Notes[0], "shorten the notes") {
		t.Errorf("converged: errors %v, notes %q", g.Errors, g.Notes)
	}
	r.respec(specEdit{"containers.yaml", "    cores: 1\n    memory: 1024\n", "    cores: 2\n    memory: 1024\n"})
	_, p = r.plan(reconciler.PlanOptions{})
	g := mustGuest(t, p, "nginx")
	if len(g.Errors) != 1 || g.Errors[0].Kind != reconciler.ProblemSpec || !strings.Contains(g.Errors[0].Message, "shorten the notes") || len(g.Changes) != 0 {
		t.Fatalf("with a change: errors %v, changes %v", g.Errors, g.Changes)
	}
	t.Log(g.Errors[0].Message)
	r.apply(context.Background(), r.options())
	if after, _, _, _ := r.description("nginx"); after != before {
		t.Errorf("the description changed:\n%q\n%q", before, after)
	}
}

// TestRecordedErrorsAreRedactedBeforeTheyAreCut: a failure written into a
// guest passes through ApplyOptions.Redact whole, before it is cut to its
// bound: a credential cut in two could no longer be found. The redactor
// here also makes the text far longer than a record's error may be, so a
// redaction after the cut would leave it over the bound.
func TestRecordedErrorsAreRedactedBeforeTheyAreCut(t *testing.T) {
	r := newRig(t, func(w *sim.World) { w.Spec.Faults.Exec.Scripts = map[string]float64{"nginx/install": 1} })
	opts := r.options()
	opts.Retry.Attempts = 1
	opts.Redact = func(s string) string {
		return strings.Repeat("z", 3000) + " " + strings.ReplaceAll(s, "Could not get lock", "[redacted]")
	}
	r.apply(context.Background(), opts)
	_, _, st, _ := r.description("nginx")
	if st.Error == nil {
		t.Fatal("the failure was not recorded")
	}
	msg := st.Error.Message
	if strings.Contains(msg, "Could not get lock") || !strings.Contains(msg, "[redacted]") {
		t.Errorf("recorded %q: want the redacted text", msg)
	}
	if n := utf8.RuneCountInString(msg); n > 1000 {
		t.Errorf("recorded %d characters: the text was cut before it was redacted", n)
	}
}
