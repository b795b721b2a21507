package reconciler

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// WriteMarkdown writes the plan for a review comment on a pull request
// (GitHub, Gitea/Forgejo and GitLab render it alike): a heading with the
// summary, a warning block per guest that cannot be converged, then per guest
// a folded <details> with its changes as a list and its config fields as a
// diff. Like the other renderers it computes nothing and shows no more than
// the plan holds: files are shown by digest, never by content.
//
// Every name, reason and value comes from specs or from the cluster, which a
// pull request's author may choose: each is escaped for where it goes
// (Markdown text, an inline code span, HTML, a fenced block whose fence is
// longer than any run of backticks inside), and kept on one line, so that no
// value can end a block, open a tag or render as anything but its text.
func (p *Plan) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	s := p.Summary()
	switch {
	case !p.HasChanges() && s.Errors == 0:
		b.WriteString("### phoenix plan: no changes\n\n")
	default:
		fmt.Fprintf(&b, "### phoenix plan: %s\n\n", summarySentence(s))
	}
	if t := p.Targeted; t != nil {
		names := make([]string, len(t.Targets))
		for i, n := range t.Targets {
			names[i] = mdCode(n)
		}
		fmt.Fprintf(&b, "Targeted (%s): %d of %d guests; the others are not planned.\n\n", strings.Join(names, ", "), t.Planned, t.Total)
	}
	if !p.HasChanges() && s.Errors == 0 {
		if p.Targeted != nil {
			b.WriteString("The targeted guests match the specs.\n\n")
		} else {
			b.WriteString("The cluster matches the specs.\n\n")
		}
	}
	for _, g := range p.Guests {
		if len(g.Errors) == 0 {
			continue
		}
		fmt.Fprintf(&b, "> [!WARNING]\n> **%s** (%s %d on %s) cannot be converged: nothing is done to it.\n>\n",
			mdCode(g.Name), mdText(string(g.Kind)), g.VMID, mdText(g.Node))
		for _, e := range g.Errors {
			fmt.Fprintf(&b, "> - **%s**: %s\n", mdText(string(e.Kind)), mdText(e.Message))
		}
		for _, n := range g.Notes {
			fmt.Fprintf(&b, "> - note: %s\n", mdText(n))
		}
		b.WriteString("\n")
	}
	for _, g := range p.Guests {
		if len(g.Errors) > 0 {
			continue
		}
		head := fmt.Sprintf("<b>%s</b> (%s %d on %s)", htmlText(g.Name), htmlText(string(g.Kind)), g.VMID, htmlText(g.Node))
		switch {
		case g.Action != NoOp:
			sign, _ := marker(g.Action)
			fmt.Fprintf(&b, "<details><summary><code>%s</code> %s: %s</summary>\n\n", htmlText(sign), head, htmlText(g.Action.String()))
		case len(g.Notes) == 0:
			continue
		case g.Stale != "":
			fmt.Fprintf(&b, "<details><summary>%s: no changes (stale)</summary>\n\n", head)
		default:
			fmt.Fprintf(&b, "<details><summary>%s: no changes</summary>\n\n", head)
		}
		for _, c := range g.Changes {
			sign, _ := marker(c.Action)
			fmt.Fprintf(&b, "- %s %s: %s\n", mdCode(sign), mdText(changeWhat(c)), mdText(c.Reason))
			if len(c.Fields) > 0 {
				writeFence(&b, "  ", "diff", fieldDiff(c.Fields))
			}
		}
		if len(g.Changes) > 0 && len(g.Notes) > 0 {
			b.WriteString("\n")
		}
		for _, n := range g.Notes {
			fmt.Fprintf(&b, "- note: %s\n", mdText(n))
		}
		b.WriteString("\n</details>\n\n")
	}
	_, err := io.WriteString(w, strings.TrimSuffix(b.String(), "\n"))
	return err
}

// summarySentence is the summary line's counts, as the text plan's last line
// has them, with the problems.
func summarySentence(s Summary) string {
	out := fmt.Sprintf("%d to create, %d to change, %d to replace, %d to delete, %d features to install",
		s.Create, s.Change, s.Replace, s.Delete, s.Features)
	if s.Uninstall > 0 {
		out += fmt.Sprintf(", %d to uninstall", s.Uninstall)
	}
	switch {
	case s.Errors == 1:
		out += ", 1 problem"
	case s.Errors > 1:
		out += fmt.Sprintf(", %d problems", s.Errors)
	}
	return out
}

// fieldDiff shows config fields as diff lines: - the value before, + after.
// Values are quoted as Go does, so each stays on its line.
func fieldDiff(fields []FieldChange) []string {
	var lines []string
	for _, f := range fields {
		key := oneLine(f.Key)
		if f.Before != "" {
			lines = append(lines, fmt.Sprintf("- %s = %q", key, f.Before))
		}
		if f.After != "" {
			lines = append(lines, fmt.Sprintf("+ %s = %q", key, f.After))
		}
	}
	return lines
}

// writeFence writes lines as a fenced code block, indented by indent (to sit
// in a list item). The fence is longer than any run of backticks in the
// lines, so none of them can close it.
func writeFence(b *strings.Builder, indent, info string, lines []string) {
	fence := strings.Repeat("`", max(3, longestRun(strings.Join(lines, "\n"), '`')+1))
	fmt.Fprintf(b, "%s%s%s\n", indent, fence, info)
	for _, l := range lines {
		fmt.Fprintf(b, "%s%s\n", indent, l)
	}
	fmt.Fprintf(b, "%s%s\n", indent, fence)
}

// longestRun is the length of the longest run of r in s.
func longestRun(s string, r rune) int {
	longest, run := 0, 0
	for _, c := range s {
		if c == r {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

// oneLine returns s unchanged when it has no control characters (line
// breaks, escapes), else Go's quoted form of it, which has none.
func oneLine(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// mdCode puts s in an inline code span: on one line, between backtick runs
// longer than any inside, padded where it starts or ends with a backtick.
// Nothing in a code span is Markdown or HTML.
func mdCode(s string) string {
	s = oneLine(s)
	fence := strings.Repeat("`", longestRun(s, '`')+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") || s == "" {
		s = " " + s + " "
	}
	return fence + s + fence
}

// mdText escapes s for Markdown text on one line: the characters that open
// emphasis, code, links, tables, strikethrough and math are backslash
// escaped, those of HTML are entities, line breaks are <br> and other control
// characters are shown as escapes.
func mdText(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		switch {
		case r == '_' && i > 0 && i+1 < len(rs) && wordRune(rs[i-1]) && wordRune(rs[i+1]):
			// Between letters or digits _ neither opens nor closes
			// emphasis (CommonMark's flanking rules): a_b stays as it is.
			b.WriteRune(r)
		case r == '\r':
		case r == '\n':
			b.WriteString("<br>")
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case strings.ContainsRune("\\`*_[]|~$", r):
			b.WriteByte('\\')
			b.WriteRune(r)
		case unicode.IsControl(r):
			// A backslash escaped, then the rune's escape: \x1b.
			q := strconv.QuoteRune(r)
			b.WriteString(`\` + q[1:len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func wordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// htmlText escapes s for HTML (a <summary>), on one line.
func htmlText(s string) string { return htmlEscaper.Replace(oneLine(s)) }

var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
