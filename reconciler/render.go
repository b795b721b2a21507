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
const PlanFormatVersion = "1"

// jsonPlan is the JSON plan:
//
//	{"format_version": "1",
//	 "guests": [{"name", "kind", "vmid", "node", "parent", "action",
//	             "changes": [{"action", "feature", "fields": [{"key","before","after"}], "sizeGiB", "reason"}],
//	             "errors": [...], "notes": [...]}],
//	 "summary": {"create", "change", "replace", "delete", "features", "errors"}}
//
// Actions are no-op, create, clone, update, resize, start, restart, install,
// reinstall, convert, replace and delete; guests are in the order they are
// applied (parents before clones, deletions last).
type jsonPlan struct {
	FormatVersion string      `json:"format_version"`
	Guests        []GuestPlan `json:"guests"`
	Summary       Summary     `json:"summary"`
}

// WriteJSON writes the plan in its documented JSON form.
func (p *Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonPlan{FormatVersion: PlanFormatVersion, Guests: p.Guests, Summary: p.Summary()})
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
	case Create, Clone, Start, InstallFeature:
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
				fmt.Fprintf(&b, "      %s\n", e)
			}
		case g.Action != NoOp:
			sign, color := marker(g.Action)
			fmt.Fprintf(&b, "%s %s: %s\n", paint(color, sign), paint(ansiBold, head), g.Action)
			for _, c := range g.Changes {
				sign, color := marker(c.Action)
				what := c.Action.String()
				if c.Feature != "" {
					what += " " + c.Feature
				}
				if c.SizeGiB > 0 {
					what += fmt.Sprintf(" to %d GiB", c.SizeGiB)
				}
				fmt.Fprintf(&b, "    %s %s: %s\n", paint(color, sign), what, c.Reason)
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
		default:
			fmt.Fprintf(&b, "  %s: no changes\n", paint(ansiBold, head))
		}
		for _, n := range g.Notes {
			fmt.Fprintf(&b, "    # %s\n", n)
		}
		b.WriteString("\n")
	}
	s := p.Summary()
	if !p.HasChanges() && s.Errors == 0 {
		b.WriteString("No changes. The cluster matches the specs.\n")
	} else {
		fmt.Fprintf(&b, "Plan: %d to create, %d to change, %d to replace, %d to delete, %d features to install.\n",
			s.Create, s.Change, s.Replace, s.Delete, s.Features)
		if s.Errors > 0 {
			fmt.Fprintf(&b, "%s\n", paint(ansiRed, fmt.Sprintf("%d problem(s) stop some guests: see the ! entries above.", s.Errors)))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
