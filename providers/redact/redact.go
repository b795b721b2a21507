// Package redact keeps credential values out of everything phoenix writes: its
// logs, plans, reports, HTTP endpoints and the state records it writes into
// Proxmox.
//
// A Redactor is made from the credentials phoenix read from its environment
// (see proxmox.Secrets and ssh.Secrets) and replaces each value, wherever it
// appears, with "[redacted VARIABLE]". It knows the forms a value takes once
// written out: as it is, escaped in JSON and in Go's quoted strings (slog's
// text format), escaped in a URL, and, for key material, line by line.
//
// A value shorter than MinLength is replaced only where it stands alone as a
// word: a three-letter password would otherwise take every word it is part of
// with it. Such a value is too short to be kept out of output reliably, and
// Short names it, so that phoenix can say so.
package redact

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// MinLength is the length from which a value is replaced wherever it appears,
// inside words too.
const MinLength = 6

// Secret is a credential value and the variable it came from.
type Secret struct {
	Var   string
	Value string
	// Lines marks key material: each line of it is a secret, so that a key
	// written out in any encoding (JSON turns its line breaks into \n) is
	// still found, and the armour around it (-----BEGIN ...) is not one.
	Lines bool
}

// Redactor replaces credential values. The zero value and nil replace
// nothing. It is safe for concurrent use.
type Redactor struct {
	// byFirst indexes the strings to find by their first byte, each list
	// longest first, so that the longest match at a position wins (a whole
	// API token before its secret part).
	byFirst map[byte][]needle
	maxLen  int
	short   []string
}

// needle is one form of a value to find.
type needle struct {
	find, with string
	// word: replaced only between characters that are not letters or digits.
	word bool
}

// New returns a Redactor for the secrets; empty values are ignored.
func New(secrets ...Secret) *Redactor {
	r := &Redactor{byFirst: map[byte][]needle{}}
	seen := map[string]bool{}
	add := func(find, with string, word bool) {
		if find == "" || seen[find] {
			return
		}
		seen[find] = true
		r.byFirst[find[0]] = append(r.byFirst[find[0]], needle{find: find, with: with, word: word})
		r.maxLen = max(r.maxLen, len(find))
	}
	for _, s := range secrets {
		if s.Value == "" {
			continue
		}
		with := "[redacted " + s.Var + "]"
		values := []string{s.Value}
		if s.Lines {
			values = nil
			// A key pasted into one line keeps its line breaks as \n.
			text := strings.ReplaceAll(s.Value, `\n`, "\n")
			for _, l := range strings.FieldsFunc(text, func(c rune) bool { return c == '\n' || c == '\r' }) {
				l = strings.TrimSpace(l)
				// The armour of a PEM block is not secret, and a short
				// last line of base64 would match anything.
				if len(l) >= MinLength && !strings.HasPrefix(l, "-----") {
					values = append(values, l)
				}
			}
		}
		for _, v := range values {
			word := len(v) < MinLength
			if word && !slices.Contains(r.short, s.Var) {
				r.short = append(r.short, s.Var)
			}
			for _, form := range forms(v) {
				add(form, with, word)
			}
		}
	}
	for b := range r.byFirst {
		slices.SortStableFunc(r.byFirst[b], func(x, y needle) int { return len(y.find) - len(x.find) })
	}
	return r
}

// forms are the ways v appears in what phoenix writes.
func forms(v string) []string {
	out := []string{v}
	if j, err := json.Marshal(v); err == nil {
		out = append(out, string(j[1:len(j)-1]))
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) == nil {
		s := strings.TrimSuffix(b.String(), "\n")
		out = append(out, s[1:len(s)-1])
	}
	q := strconv.Quote(v)
	out = append(out, q[1:len(q)-1])
	return append(out, url.QueryEscape(v), url.PathEscape(v))
}

// Short returns the variables whose values are shorter than MinLength, and
// so are replaced only where they stand alone as a word.
func (r *Redactor) Short() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.short)
}

// Empty reports whether r has nothing to replace.
func (r *Redactor) Empty() bool { return r == nil || len(r.byFirst) == 0 }

// String returns s with every secret replaced. A secret cut off at the end of
// s (a message truncated in the middle of it) is replaced too, once the cut
// holds at least MinLength of it: a Secret is the secret part of a
// credential only (a token's secret, not its ID), so that its start is
// secret too.
func (r *Redactor) String(s string) string {
	if r.Empty() {
		return s
	}
	out, _ := r.scan(s, 0, true)
	return out
}

// scan replaces the secrets in s. prev is the byte before s (0 at the
// start), for the word test. Unless final, it stops where the rest of s
// could be the start of a secret, and returns that rest for the next call.
func (r *Redactor) scan(s string, prev byte, final bool) (out, rest string) {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		before := prev
		if i > 0 {
			before = s[i-1]
		}
		n, cut := r.matchAt(s, i, before, final)
		if cut {
			if final {
				// s ends inside a secret: replace what it has of it.
				b.WriteString(s[last:i])
				b.WriteString(n.with)
				return b.String(), ""
			}
			b.WriteString(s[last:i])
			return b.String(), s[i:]
		}
		if n.find != "" {
			b.WriteString(s[last:i])
			b.WriteString(n.with)
			i += len(n.find)
			last = i
			continue
		}
		i++
	}
	b.WriteString(s[last:])
	return b.String(), ""
}

// matchAt returns the needle found at s[i:]. cut reports that s ends before
// it can tell: s[i:] is the start of a needle (or a word needle that needs
// the next byte); then n is that needle, when final and the start is long
// enough to count as the secret.
func (r *Redactor) matchAt(s string, i int, before byte, final bool) (n needle, cut bool) {
	rest := s[i:]
	for _, c := range r.byFirst[s[i]] {
		if c.word && isWordByte(before) {
			continue
		}
		switch {
		case strings.HasPrefix(rest, c.find):
			if !c.word {
				return c, false
			}
			end := i + len(c.find)
			if end == len(s) {
				if final {
					return c, false
				}
				return c, true
			}
			if !isWordByte(s[end]) {
				return c, false
			}
		case len(rest) < len(c.find) && strings.HasPrefix(c.find, rest):
			if !final {
				return c, true
			}
			if !c.word && len(rest) >= MinLength {
				return c, true
			}
		}
	}
	return needle{}, false
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// Error returns err with its text redacted, or err itself when there is
// nothing to redact in it. The redacted error wraps nothing: what a caller
// could unwrap would show the secret again.
func (r *Redactor) Error(err error) error {
	if err == nil || r.Empty() {
		return err
	}
	msg := err.Error()
	if red := r.String(msg); red != msg {
		return redactedError(red)
	}
	return err
}

type redactedError string

func (e redactedError) Error() string { return string(e) }

// Writer returns a writer that redacts what it passes on to w. It holds back
// the end of a write that could be the start of a secret until the next
// write shows whether it is; Flush writes what it holds. It is safe for
// concurrent use.
func (r *Redactor) Writer(w io.Writer) *Writer {
	return &Writer{r: r, w: w}
}

// Writer is a redacting io.Writer.
type Writer struct {
	r    *Redactor
	w    io.Writer
	mu   sync.Mutex
	held string
	prev byte
	err  error
}

// Write redacts p and writes it on. It reports all of p written when the
// writer underneath took what it was given.
func (w *Writer) Write(p []byte) (int, error) {
	if w.r.Empty() {
		return w.w.Write(p)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	s := w.held + string(p)
	out, rest := w.r.scan(s, w.prev, false)
	if len(s) > len(rest) {
		w.prev = s[len(s)-len(rest)-1]
	}
	w.held = rest
	if out != "" {
		if _, err := io.WriteString(w.w, out); err != nil {
			w.err = err
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes what Write held back, redacted as the end of the output.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held == "" || w.err != nil {
		return w.err
	}
	out, _ := w.r.scan(w.held, w.prev, true)
	w.held = ""
	if _, err := io.WriteString(w.w, out); err != nil {
		w.err = err
	}
	return w.err
}

// Unwrap returns the writer underneath, so that a caller can ask whether it
// is a terminal.
func (w *Writer) Unwrap() io.Writer { return w.w }

// Format prints a Redactor without its values, whatever the verb.
func (r *Redactor) Format(f fmt.State, _ rune) {
	n := 0
	if r != nil {
		for _, l := range r.byFirst {
			n += len(l)
		}
	}
	fmt.Fprintf(f, "redact.Redactor{%d forms}", n)
}
