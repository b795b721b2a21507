package reconciler

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Rendering is kept apart from planning: the renderers print a Plan and
// compute nothing.

// PlanFormatVersion is the version of the JSON plan's schema. It changes only
// when a field changes meaning or goes away; new fields may be added.
const PlanFormatVersion = "2"

// jsonPlan is the JSON plan:
//
//	{"format_version": "2",
//	 "guests": [{"name", "kind", "vmid", "node", "parent", "generation", "action",
//	             "changes": [{"action", "feature", "fields": [{"key","before","after"}], "sizeGiB", "pending", "reason"}],
//	             "errors": [{"kind", "message"}], "notes": [...], "stale"}],
//	 "summary": {"create", "change", "replace", "delete", "features", "uninstall", "errors"},
//	 "targeted": {"targets", "planned", "total"}}
//
// targeted is there only on a plan of some guests (--target).
// Actions are no-op, create, clone, update, resize, start, restart, stop,
// install, reinstall, uninstall, convert, replace and delete; error kinds are
// conflict, spec, flag, node, observe and blocked. Guests are in the order
// they are applied (parents before clones, deletions last). Version 2 made
// errors objects with a kind (version 1 had strings).
type jsonPlan struct {
	FormatVersion string      `json:"format_version"`
	Guests        []GuestPlan `json:"guests"`
	Summary       Summary     `json:"summary"`
	Targeted      *Targeting  `json:"targeted,omitempty"`
}

// WriteJSON writes the plan in its documented JSON form.
func (p *Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonPlan{FormatVersion: PlanFormatVersion, Guests: p.Guests, Summary: p.Summary(), Targeted: p.Targeted})
}

// TextOptions control the text rendering.
type TextOptions struct {
	// Color uses ANSI colours (when stdout is a terminal and NO_COLOR is unset).
	Color bool
}

const (
	ansiReset   = "\x1b[0m"
	ansiBold    = "\x1b[1m"
	ansiRed     = "\x1b[31m"
	ansiGreen   = "\x1b[32m"
	ansiYellow  = "\x1b[33m"
	ansiMagenta = "\x1b[35m"
)

// marker is the diff sign of an action and its colour.
func marker(a Action) (string, string) {
	switch a {
	case Create, Clone, Start, InstallFeature, Directory, Download:
		return "+", ansiGreen
	case Delete:
		return "-", ansiRed
	case Replace:
		return "-/+", ansiMagenta
	case NoOp:
		return " ", ""
	}
	return "~", ansiYellow
}

// changeWhat names what a change does, as the plan's renderers show it
// ("install vllm", "resize mp0 to 40 GiB", "file /etc/x (sha256:...)").
func changeWhat(c Change) string {
	what := c.Action.String()
	if c.Feature != "" {
		what += " " + c.Feature
	}
	if c.Disk != "" {
		what += " " + c.Disk
	}
	if c.SizeGiB > 0 {
		what += fmt.Sprintf(" to %d GiB", c.SizeGiB)
	}
	switch c.Action {
	case WriteFile:
		what = fmt.Sprintf("file %s (sha256:%s)", c.File, recordDigest(c.Digest))
	case Service:
		what = "service " + c.Service
		if c.Restart != "" {
			what += " (" + c.Restart + ")"
		}
	case TakeSnapshot:
		what = snapshotWhat(c.Snapshot)
	}
	return what
}

// WriteText writes the plan as a diff grouped by guest, ending with the
// summary line.
func (p *Plan) WriteText(w io.Writer, opts TextOptions) error {
	var b strings.Builder
	paint := func(color, s string) string {
		if !opts.Color || color == "" {
			return s
		}
		return color + s + ansiReset
	}
	for _, g := range p.Guests {
		head := fmt.Sprintf("%s (%s %d on %s)", g.Name, g.Kind, g.VMID, g.Node)
		switch {
		case len(g.Errors) > 0:
			fmt.Fprintf(&b, "%s %s: cannot be converged\n", paint(ansiRed, "!"), paint(ansiBold, head))
			for _, e := range g.Errors {
				fmt.Fprintf(&b, "      %s [%s]\n", e.Message, e.Kind)
			}
		case g.Action != NoOp:
			sign, color := marker(g.Action)
			fmt.Fprintf(&b, "%s %s: %s\n", paint(color, sign), paint(ansiBold, head), g.Action)
			for _, c := range g.Changes {
				sign, color := marker(c.Action)
				fmt.Fprintf(&b, "    %s %s: %s\n", paint(color, sign), changeWhat(c), c.Reason)
				for _, f := range c.Fields {
					switch {
					case f.Before == "":
						fmt.Fprintf(&b, "        %s %s = %q\n", paint(ansiGreen, "+"), f.Key, f.After)
					case f.After == "":
						fmt.Fprintf(&b, "        %s %s = %q\n", paint(ansiRed, "-"), f.Key, f.Before)
					default:
						fmt.Fprintf(&b, "        %s %s: %q -> %q\n", paint(ansiYellow, "~"), f.Key, f.Before, f.After)
					}
				}
			}
		case len(g.Notes) == 0:
			continue
		case g.Stale != "":
			fmt.Fprintf(&b, "  %s: no changes (%s)\n", paint(ansiBold, head), paint(ansiYellow, "stale"))
		default:
			fmt.Fprintf(&b, "  %s: no changes\n", paint(ansiBold, head))
		}
		for _, n := range g.Notes {
			fmt.Fprintf(&b, "    # %s\n", n)
		}
		b.WriteString("\n")
	}
	s := p.Summary()
	if t := p.Targeted; t != nil {
		fmt.Fprintf(&b, "%s\n", paint(ansiYellow, fmt.Sprintf("Targeted (%s): %d of %d guests; the others are not planned.",
			strings.Join(t.Targets, ", "), t.Planned, t.Total)))
	}
	switch {
	case !p.HasChanges() && s.Errors == 0 && p.Targeted != nil:
		b.WriteString("No changes. The targeted guests match the specs.\n")
	case !p.HasChanges() && s.Errors == 0:
		b.WriteString("No changes. The cluster matches the specs.\n")
	default:
		uninstall := ""
		if s.Uninstall > 0 {
			uninstall = fmt.Sprintf(", %d to uninstall", s.Uninstall)
		}
		fmt.Fprintf(&b, "Plan: %d to create, %d to change, %d to replace, %d to delete, %d features to install%s.\n",
			s.Create, s.Change, s.Replace, s.Delete, s.Features, uninstall)
		if s.Errors > 0 {
			fmt.Fprintf(&b, "%s\n", paint(ansiRed, fmt.Sprintf("%d problem(s) stop some guests: see the ! entries above.", s.Errors)))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ApplyFormatVersion is the version of apply's JSON output, on the same
// rule as the plan's.
const ApplyFormatVersion = "1"

// ApplySummary counts an apply in the plan's terms: a clone's follow-up
// update is part of its create, not a change of its own.
type ApplySummary struct {
	Created     int `json:"created"`
	Changed     int `json:"changed"`
	Replaced    int `json:"replaced"`
	Deleted     int `json:"deleted"`
	Installed   int `json:"installed"`
	Uninstalled int `json:"uninstalled"`
	// Failed counts guests that were worked on and did not converge;
	// Stopped those a stop signal left unfinished; Problems those the plan
	// could not converge, left alone.
	Failed   int `json:"failed"`
	Stopped  int `json:"stopped"`
	Problems int `json:"problems"`
}

// Summary counts what the apply did.
func (r *ApplyResult) Summary(plan *Plan) ApplySummary {
	var s ApplySummary
	for _, g := range r.Guests {
		switch {
		case g.Kind == ErrorStopped:
			s.Stopped++
		case g.Err != nil:
			s.Failed++
		}
		s.Installed += len(g.Installed)
		s.Uninstalled += len(g.Uninstalled)
		if g.Done == 0 {
			continue
		}
		switch g.Action {
		case Create, Clone:
			s.Created++
		case Replace:
			s.Replaced++
		case Delete:
			s.Deleted++
		default:
			s.Changed++
		}
	}
	for _, g := range plan.Guests {
		if len(g.Errors) > 0 {
			s.Problems++
		}
	}
	return s
}

// WriteSummary writes the summary line, then why each guest did not converge.
func (r *ApplyResult) WriteSummary(w io.Writer, plan *Plan) error {
	s := r.Summary(plan)
	var b strings.Builder
	fmt.Fprintf(&b, "\nApply complete: %d created, %d changed, %d replaced, %d deleted, %d features installed",
		s.Created, s.Changed, s.Replaced, s.Deleted, s.Installed)
	if s.Uninstalled > 0 {
		fmt.Fprintf(&b, ", %d uninstalled", s.Uninstalled)
	}
	fmt.Fprintf(&b, ", %d failed", s.Failed)
	if s.Stopped > 0 {
		fmt.Fprintf(&b, ", %d stopped", s.Stopped)
	}
	if s.Problems > 0 {
		fmt.Fprintf(&b, ", %d not converged", s.Problems)
	}
	b.WriteString(".\n")
	for _, g := range r.Guests {
		switch {
		case g.Kind == ErrorStopped:
			fmt.Fprintf(&b, "  %s (%d) stopped before its next change: apply again to go on\n", g.Name, g.VMID)
		case g.Err != nil:
			fmt.Fprintf(&b, "  %s (%d) failed [%s]: %s\n", g.Name, g.VMID, g.Kind, strings.ReplaceAll(strings.TrimSpace(g.Err.Error()), "\n", "\n    "))
		}
	}
	for _, g := range plan.Guests {
		for _, e := range g.Errors {
			fmt.Fprintf(&b, "  %s (%d) not converged [%s]: %s\n", g.Name, g.VMID, e.Kind, e.Message)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// jsonApply is apply's JSON output:
//
//	{"format_version": "1",
//	 "plan": <the plan, as plan -o json writes it, with its own format_version>,
//	 "result": {"guests": [{"name", "vmid", "action", "outcome", "done", "skipped",
//	                        "installed", "uninstalled", "error", "error_kind"}],
//	            "summary": {"created", "changed", "replaced", "deleted", "installed",
//	                        "uninstalled", "failed", "stopped", "problems"}}}
//
// A guest's outcome is converged, failed or stopped (a stop signal came
// first); done counts the plan's changes carried out, skipped names those
// found already true by their turn ("install docker"). Guests the plan left alone (no changes, or a problem) are
// not in result.guests: their problems are in the plan.
type jsonApply struct {
	FormatVersion string     `json:"format_version"`
	Plan          jsonPlan   `json:"plan"`
	Result        jsonResult `json:"result"`
}

type jsonResult struct {
	Guests  []jsonGuestResult `json:"guests"`
	Summary ApplySummary      `json:"summary"`
}

type jsonGuestResult struct {
	Name        string    `json:"name"`
	VMID        int       `json:"vmid"`
	Action      Action    `json:"action"`
	Outcome     string    `json:"outcome"`
	Done        int       `json:"done"`
	Skipped     []string  `json:"skipped"`
	Installed   []string  `json:"installed"`
	Uninstalled []string  `json:"uninstalled"`
	Error       string    `json:"error,omitempty"`
	ErrorKind   ErrorKind `json:"error_kind,omitempty"`
}

// WriteJSON writes the apply in its documented JSON form.
func (r *ApplyResult) WriteJSON(w io.Writer, plan *Plan) error {
	out := jsonApply{FormatVersion: ApplyFormatVersion,
		Plan:   jsonPlan{FormatVersion: PlanFormatVersion, Guests: plan.Guests, Summary: plan.Summary(), Targeted: plan.Targeted},
		Result: jsonResult{Guests: []jsonGuestResult{}, Summary: r.Summary(plan)}}
	for _, g := range r.Guests {
		jg := jsonGuestResult{Name: g.Name, VMID: g.VMID, Action: g.Action, Outcome: "converged", Done: g.Done, Skipped: append([]string{}, g.Skipped...),
			Installed: append([]string{}, g.Installed...), Uninstalled: append([]string{}, g.Uninstalled...)}
		if g.Err != nil {
			jg.Outcome, jg.Error, jg.ErrorKind = "failed", g.Err.Error(), g.Kind
			if g.Kind == ErrorStopped {
				jg.Outcome = "stopped"
			}
		}
		out.Result.Guests = append(out.Result.Guests, jg)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
