package reconciler

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer/html"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

// TestPlanGoldenMarkdown keeps the Markdown plans of the text and JSON golden
// plans, and of one with problems and notes (go test -run TestPlanGolden
// -update rewrites them with the others).
func TestPlanGoldenMarkdown(t *testing.T) {
	res := examples(t)
	empty := &Observed{Guests: map[int]*ObservedGuest{}, Hosts: map[string]*HostObservation{"pve1": gpuHost("580.76.05")}}
	drift := converged(res, "580.95.05")
	drift.Guests[950].Config.Values["cores"] = "2"
	drift.Guests[955].Config.Values["dev0"] = "/dev/nvidia0"
	problems := converged(res, "580.76.05")
	problems.Guests[950].Managed = false
	problems.Guests[950].Name = "someone-elses"
	problems.Guests[955].Config.Values["memory"] = "1024"
	converged := converged(res, "580.76.05")
	for name, tc := range map[string]struct {
		obs  *Observed
		opts PlanOptions
	}{
		"empty":     {obs: empty},
		"drift":     {obs: drift},
		"problems":  {obs: problems},
		"converged": {obs: converged},
		"targeted":  {obs: empty, opts: PlanOptions{Targets: []string{"nginx"}}},
	} {
		p := MakePlan(res, tc.obs, tc.opts)
		var md bytes.Buffer
		if err := p.WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
		testtool.Golden(t, "plan-"+name+".md", md.Bytes())
		checkInert(t, md.String(), p)
	}
}

// hostile are values a pull request's author could put into names, reasons
// and values, meant to break out of where the Markdown puts them.
var hostile = []string{
	"<script>alert(1)</script>",
	"a | b | c\n|---|---|\n| x | y |",
	"`code` and ``two`` and ```three```",
	"```\n</details>\n# owned\n```",
	"line one\n\n# heading\n- item\n> quote\n\n<details><summary>x</summary>",
	"snake_case_name __init__ a_b_ _c_d x_\u00e9_y",
	"**bold** _em_ ~~gone~~ [link](https://example.com) ![img](x.png) $x^2$",
	"\\`*_[]|~$ \x1b[31mred\x1b[0m \r\n tab\there",
	"&lt;not an entity&gt; &amp; <!-- comment --> <img src=x onerror=alert(1)>",
	"",
}

func TestPlanMarkdownHostileValuesStayInert(t *testing.T) {
	for i, h := range hostile {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			p := hostilePlan(h)
			var md bytes.Buffer
			if err := p.WriteMarkdown(&md); err != nil {
				t.Fatal(err)
			}
			checkInert(t, md.String(), p)
		})
	}
}

// FuzzPlanMarkdown checks that no value breaks the Markdown's structure; its
// seeds run with the tests.
func FuzzPlanMarkdown(f *testing.F) {
	for _, h := range hostile {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := hostilePlan(s)
		var md bytes.Buffer
		if err := p.WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
		checkInert(t, md.String(), p)
	})
}

// hostilePlan puts h into every string of a plan: a guest with a problem, one
// with changes and fields, one with notes only, and the targets.
func hostilePlan(h string) *Plan {
	return &Plan{
		Guests: []GuestPlan{
			{Name: "bad" + h, Kind: "Container", VMID: 950, Node: "pve1" + h, Action: NoOp,
				Errors: []Problem{{Kind: ProblemConflict, Message: "held by " + h}}, Notes: []string{"note " + h}},
			{Name: "app" + h, Kind: "Container", VMID: 951, Node: h, Action: UpdateConfig,
				Changes: []Change{
					{Action: UpdateConfig, Reason: "differs: " + h, Fields: []FieldChange{
						{Key: "cores", Before: h, After: "8"}, {Key: h, After: h + "```"}, {Key: "dev0", Before: "`" + h}}},
					{Action: InstallFeature, Feature: h, Reason: h},
					{Action: WriteFile, File: "/etc/" + h, Digest: "0123456789abcdef0123", Reason: "content " + h},
				},
				Notes: []string{h}},
			{Name: "tpl" + h, Kind: "Template", VMID: 900, Node: "pve1", Action: NoOp, Stale: h, Notes: []string{"stale " + h}},
		},
		Targeted: &Targeting{Targets: []string{h, "app"}, Planned: 3, Total: 9},
	}
}

var tagRE = regexp.MustCompile(`<[^>]*>`)

// checkInert renders md as GitHub does (CommonMark with its tables,
// strikethrough and task lists, raw HTML kept) and checks that it has the
// structure the plan asks for and no more: the tags phoenix writes, as many
// as it writes them, and every value back as text.
func checkInert(t *testing.T, md string, p *Plan) {
	t.Helper()
	gm := goldmark.New(goldmark.WithExtensions(extension.Table, extension.Strikethrough, extension.TaskList),
		goldmark.WithRendererOptions(html.WithUnsafe()))
	var out bytes.Buffer
	if err := gm.Convert([]byte(md), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	allowed := map[string]bool{"<h3>": true, "</h3>": true, "<p>": true, "</p>": true, "<blockquote>": true, "</blockquote>": true,
		"<ul>": true, "</ul>": true, "<li>": true, "</li>": true, "<strong>": true, "</strong>": true, "<code>": true, "</code>": true,
		`<pre><code class="language-diff">`: true, "<pre>": true, "</pre>": true, "<details>": true, "</details>": true,
		"<summary>": true, "</summary>": true, "<b>": true, "</b>": true, "<br>": true}
	count := map[string]int{}
	for _, tag := range tagRE.FindAllString(strings.ReplaceAll(got, `<pre><code class="language-diff">`, "<pre>"), -1) {
		if !allowed[tag] {
			t.Errorf("tag %s in the rendered plan:\n%s\n--- from ---\n%s", tag, got, md)
			return
		}
		count[tag]++
	}
	var problems, errs, details, fenced, items int
	for _, g := range p.Guests {
		switch {
		case len(g.Errors) > 0:
			problems++
			errs += len(g.Errors)
			items += len(g.Errors) + len(g.Notes)
			continue
		case g.Action == NoOp && len(g.Notes) == 0:
			continue
		}
		details++
		items += len(g.Changes) + len(g.Notes)
		for _, c := range g.Changes {
			if len(c.Fields) > 0 {
				fenced++
			}
		}
	}
	want := map[string]int{"<h3>": 1, "<blockquote>": problems, "<strong>": problems + errs, "<details>": details,
		"<summary>": details, "<pre>": fenced, "<li>": items}
	for tag, n := range want {
		if count[tag] != n {
			t.Errorf("%d %s, want %d:\n%s\n--- from ---\n%s", count[tag], tag, n, got, md)
		}
	}
	// Every reason, note and problem is there as text, nothing lost and
	// nothing taken for markup.
	for _, g := range p.Guests {
		texts := append([]string{}, g.Notes...)
		for _, e := range g.Errors {
			texts = append(texts, e.Message)
		}
		for _, c := range g.Changes {
			texts = append(texts, changeWhat(c)+": "+c.Reason)
			for _, l := range fieldDiff(c.Fields) {
				if !strings.Contains(got, escapeHTML(l)+"\n") {
					t.Errorf("diff line %s is not in the rendered plan:\n%s", l, got)
				}
			}
		}
		for _, s := range texts {
			// Markdown drops the spaces that end a line.
			if want := strings.TrimRight(asText(s), " "); !strings.Contains(got, want) {
				t.Errorf("%q is not in the rendered plan as %q:\n%s\n--- from ---\n%s", s, want, got, md)
			}
		}
		if want := "<code>" + escapeHTML(oneLine(g.Name)) + "</code>"; len(g.Errors) > 0 && !strings.Contains(got, want) {
			t.Errorf("the name %q is not in the rendered plan as %s", g.Name, want)
		}
		if want := "<b>" + escapeHTML(oneLine(g.Name)) + "</b>"; len(g.Errors) == 0 && (g.Action != NoOp || len(g.Notes) > 0) && !strings.Contains(got, want) {
			t.Errorf("the name %q is not in the rendered plan as %s:\n%s", g.Name, want, got)
		}
	}
}

// escapeHTML escapes as goldmark does.
func escapeHTML(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// asText is how s reads in the rendered HTML: escaped, its line breaks <br>,
// its other control characters shown as Go escapes.
func asText(s string) string {
	var b strings.Builder
	for _, r := range strings.ReplaceAll(s, "\r", "") {
		switch {
		case r == '\n':
			b.WriteString("<br>")
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(escapeHTML(string(r)))
		}
	}
	return b.String()
}

func TestMarkdownFenceIsLongerThanItsContent(t *testing.T) {
	var b strings.Builder
	writeFence(&b, "", "diff", []string{"+ a = \"````\"", "- b"})
	if want := "`````diff\n+ a = \"````\"\n- b\n`````\n"; b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if got, want := mdCode("a``b"), "```a``b```"; got != want {
		t.Errorf("mdCode: %s, want %s", got, want)
	}
	if got, want := mdCode("`x"), "`` `x ``"; got != want {
		t.Errorf("mdCode: %s, want %s", got, want)
	}
}
