package spec

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Diagnostic is one problem found in the spec files, located at the line of the
// offending field or, when the field is missing, of the document that lacks it.
type Diagnostic struct {
	File    string
	Line    int
	Subject string // "Container vllm-1", or empty for file-level problems
	Field   string // "spec.resources.cores", or empty
	Message string
}

// String shows the diagnostic on one line, with any character that is not
// printable ASCII escaped (see escapeText).
func (d Diagnostic) String() string {
	var b strings.Builder
	d = d.escaped()
	if d.File != "" {
		b.WriteString(escapeText(d.File))
		if d.Line > 0 {
			fmt.Fprintf(&b, ":%d", d.Line)
		}
		b.WriteString(": ")
	}
	if d.Subject != "" {
		b.WriteString(d.Subject)
		b.WriteString(": ")
	}
	if d.Field != "" {
		b.WriteString(d.Field)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// Diagnostics is every problem found in one load. It is an error so that callers
// can return it as one; its text is one Diagnostic per line, in file and line order.
type Diagnostics []Diagnostic

func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// escaped is d with its subject, field and message escaped: a name or value
// from a spec file shows what it holds, invisible characters included.
func (d Diagnostic) escaped() Diagnostic {
	d.Subject, d.Field, d.Message = escapeText(d.Subject), escapeText(d.Field), escapeText(d.Message)
	return d
}

// sorted orders diagnostics by file, then line, keeping the order in which
// problems were found on the same line, each escaped.
func (ds Diagnostics) sorted() Diagnostics {
	out := make(Diagnostics, len(ds))
	for i, d := range ds {
		out[i] = d.escaped()
	}
	slices.SortStableFunc(out, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	return out
}
