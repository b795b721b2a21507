package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// The contract between plan and apply, checked after every apply of every
// scenario in this package (rig.apply calls it): what the simulator's journal
// shows covers every change of the approved plan of each guest that
// converged, and a plan made right after the apply is empty for it, or says
// why not (a note, a stale template). A guest that did not converge has an
// error that says why.

// checkContract checks one apply against the plan it was given. from is the
// journal's sequence number when the apply began.
func (r *rig) checkContract(plan *reconciler.Plan, res *reconciler.ApplyResult, from int) {
	r.t.Helper()
	journal := r.events(from)
	byName := map[string]reconciler.GuestResult{}
	for _, g := range res.Guests {
		byName[g.Name+fmt.Sprint(g.VMID)] = g
	}
	clones := map[int]int{} // clones the plan makes per source VMID
	for _, g := range plan.Guests {
		gr, worked := byName[g.Name+fmt.Sprint(g.VMID)]
		if !worked || gr.Err != nil {
			continue
		}
		for _, c := range g.Changes {
			if slices.Contains(gr.Skipped, stepKey(c)) {
				continue
			}
			if c.Action == reconciler.Clone {
				clones[g.Source]++
				continue
			}
			if !covered(journal, g, c) {
				r.t.Errorf("contract: %s (%d): the plan's %q (%s) left no trace in the journal", g.Name, g.VMID, stepKey(c), c.Reason)
			}
		}
	}
	for src, n := range clones {
		made := 0
		for _, e := range journal {
			// A clone whose answer was dropped after the clone was made
			// counts: the retry finds the guest there, as it should.
			done := e.OK || e.Detail == "connection dropped after the change (injected)"
			if e.Kind == "api" && done && e.VMID == src && strings.HasSuffix(e.Name, fmt.Sprintf("/lxc/%d/clone", src)) {
				made++
			}
		}
		if made < n {
			r.t.Errorf("contract: the plan clones %d guest(s) from %d, the journal shows %d clone(s)", n, src, made)
		}
	}
	_, after := r.plan(reconciler.PlanOptions{AllowReplace: false})
	for _, g := range after.Guests {
		gr, worked := byName[g.Name+fmt.Sprint(g.VMID)]
		if !worked || gr.Err != nil {
			continue
		}
		if g.Action != reconciler.NoOp || len(g.Errors) > 0 {
			var b strings.Builder
			_ = (&reconciler.Plan{Guests: []reconciler.GuestPlan{g}}).WriteText(&b, reconciler.TextOptions{})
			r.t.Errorf("contract: %s converged, yet the plan right after the apply says:\n%s", g.Name, b.String())
		}
	}
	for _, g := range res.Guests {
		if g.Err != nil && strings.TrimSpace(g.Err.Error()) == "" {
			r.t.Errorf("contract: %s failed without saying why", g.Name)
		}
	}
}

func stepKey(c reconciler.Change) string {
	if c.Feature != "" {
		return c.Action.String() + " " + c.Feature
	}
	return c.Action.String()
}

// covered reports whether the journal shows a change being made.
func covered(journal []sim.Event, g reconciler.GuestPlan, c reconciler.Change) bool {
	task := func(types ...string) bool {
		return slices.ContainsFunc(journal, func(e sim.Event) bool {
			return e.Kind == "task" && e.VMID == g.VMID && e.OK && !strings.HasPrefix(e.Detail, "started") && slices.Contains(types, e.Name)
		})
	}
	switch c.Action {
	case reconciler.Create:
		return task("vzcreate")
	case reconciler.Resize:
		return task("resize")
	case reconciler.Directory:
		// A host script: the node's event, no VMID.
		return slices.ContainsFunc(journal, func(e sim.Event) bool {
			return e.Kind == "exec" && e.OK && e.Node == g.Node && e.Name == reconciler.HostDirsScriptName && e.Phase == "apply"
		})
	case reconciler.Start:
		return task("vzstart", "vzreboot")
	case reconciler.Restart:
		return task("vzreboot") || task("vzstart") && (task("vzshutdown") || task("vzstop"))
	case reconciler.Stop:
		return task("vzshutdown", "vzstop")
	case reconciler.RenewIdentity:
		return slices.ContainsFunc(journal, func(e sim.Event) bool {
			return e.Kind == "exec" && e.OK && e.VMID == g.VMID && e.Name == "phoenix/identity" && e.Phase == "apply"
		})
	case reconciler.ConvertToTemplate:
		return task("vztemplate")
	case reconciler.Replace, reconciler.Delete:
		return task("vzdestroy")
	case reconciler.Adopt:
		// The tag and the record go in one config write.
		return slices.ContainsFunc(journal, func(e sim.Event) bool {
			return e.OK && e.VMID == g.VMID && e.Kind == "api" && e.Name == fmt.Sprintf("PUT /nodes/%s/lxc/%d/config", g.Node, g.VMID)
		})
	case reconciler.Download:
		// The node's download task (aplinfo or download-url): no VMID.
		return slices.ContainsFunc(journal, func(e sim.Event) bool {
			return e.Kind == "task" && e.Name == "download" && e.Node == g.Node && e.OK && !strings.HasPrefix(e.Detail, "started")
		})
	case reconciler.Firewall:
		return slices.ContainsFunc(journal, func(e sim.Event) bool {
			return e.OK && e.VMID == g.VMID && e.Kind == "api" && !strings.HasPrefix(e.Name, "GET ") &&
				strings.Contains(e.Name, fmt.Sprintf("/lxc/%d/firewall/", g.VMID))
		})
	case reconciler.UpdateConfig:
		return slices.ContainsFunc(journal, func(e sim.Event) bool {
			return e.OK && e.VMID == g.VMID && (e.Kind == "api" && e.Name == fmt.Sprintf("PUT /nodes/%s/lxc/%d/config", g.Node, g.VMID) ||
				e.Kind == "exec" && (e.Name == "pct set" || e.Name == "phoenix/set-raw-lxc" || e.Name == "phoenix/remove-raw-lxc"))
		})
	case reconciler.TakeSnapshot:
		return task("vzsnapshot")
	case reconciler.WriteFile:
		// The copy into the guest and the rename over the file.
		return slices.ContainsFunc(journal, func(e sim.Event) bool {
			return e.Kind == "exec" && e.OK && e.VMID == g.VMID && e.Name == "pct push" && strings.HasSuffix(e.Detail, " -> "+c.File+".phoenix-new")
		}) && slices.ContainsFunc(journal, func(e sim.Event) bool {
			return e.Kind == "exec" && e.OK && e.VMID == g.VMID && e.Name == "phoenix/file" && e.Phase == "apply"
		})
	case reconciler.Service:
		return slices.ContainsFunc(journal, func(e sim.Event) bool {
			return e.Kind == "exec" && e.OK && e.VMID == g.VMID && e.Name == "phoenix/service" && e.Phase == "apply"
		})
	case reconciler.InstallFeature, reconciler.ReinstallFeature, reconciler.UninstallFeature:
		phase := "verify"
		if c.Action == reconciler.UninstallFeature {
			phase = "uninstall"
		}
		return slices.ContainsFunc(journal, func(e sim.Event) bool {
			return e.Kind == "exec" && e.OK && e.VMID == g.VMID && strings.HasPrefix(e.Name, c.Feature+"/") &&
				(e.Phase == phase || phase == "verify" && e.Phase == "check")
		})
	}
	return false
}

// respec copies the example specs into a directory of the test's, edits them
// (each edit replaces old with new in a file, and must change it), and
// resolves them as the rig's specs.
func (r *rig) respec(edits ...specEdit) {
	r.t.Helper()
	dir := r.t.TempDir()
	var files []string
	err := filepath.WalkDir("../examples/homelab", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(path) == ".yaml" {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
	extra := map[string]string{}
	for _, e := range edits {
		if e.old == "" {
			extra[e.file] += e.new
		}
	}
	for _, f := range files {
		rel, _ := filepath.Rel("../examples/homelab", f)
		b, err := os.ReadFile(f)
		if err != nil {
			r.t.Fatal(err)
		}
		text := string(b)
		for _, e := range edits {
			if e.file != rel || e.old == "" {
				continue
			}
			if !strings.Contains(text, e.old) {
				r.t.Fatalf("respec: %s does not contain %q", e.file, e.old)
			}
			text = strings.Replace(text, e.old, e.new, 1)
		}
		text += extra[rel]
		delete(extra, rel)
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), []byte(text), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	for name, text := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	res, err := spec.LoadResolved(dir)
	if err != nil {
		r.t.Fatalf("respec: %v", err)
	}
	r.res = res
}

// specEdit replaces old with new in file; an empty old appends new (to a
// new file when none has the name).
type specEdit struct{ file, old, new string }

// mustPlan plans and fails the test unless the plan has no problems.
func (r *rig) mustPlan(opts reconciler.PlanOptions) *reconciler.Plan {
	r.t.Helper()
	_, p := r.plan(opts)
	if p.HasErrors() {
		var b strings.Builder
		_ = p.WriteText(&b, reconciler.TextOptions{})
		r.t.Fatalf("plan has problems:\n%s", b.String())
	}
	return p
}

// planText renders a plan for failure messages.
func planText(p *reconciler.Plan) string {
	var b strings.Builder
	_ = p.WriteText(&b, reconciler.TextOptions{})
	return b.String()
}
