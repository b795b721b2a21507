// Package shellwords converts between argv word lists and the single
// command-line string that an SSH remote command travels as.
//
// SSH has no argv: the client sends one string and the server's login shell
// (on Proxmox VE, root's bash; POSIX sh elsewhere) parses it. Join/Quote build
// that string so any argv survives the shell intact; Split is the inverse
// the simulated cluster uses to recover argv from what a client sent.
//
// Split deliberately accepts only a conservative subset of shell syntax: one
// simple command made of literal words. Operators, expansions, globs,
// comments, tilde, brace expansion, variable assignments and reserved words
// are all rejected with a *SyntaxError rather than approximated. A simulator
// that guessed at such input could accept a command a real node would run
// differently (or refuse), and tests written against the simulator would then
// pass for the wrong reason. Refusing is always the safe direction: whatever
// Join produces, Split accepts (except strings containing NUL, which no shell
// command line can carry).
package shellwords

import (
	"fmt"
	"strings"
)

// SyntaxError reports input that Split will not interpret.
type SyntaxError struct {
	// Offset is the byte offset in the input where the problem was found.
	Offset int
	// Reason says what was found, e.g. "unquoted $ (expansion)".
	Reason string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("shellwords: %s at offset %d", e.Reason, e.Offset)
}

// isSafe reports whether b may appear in a bare (unquoted) word produced by
// Quote. The set is the characters no POSIX shell (or bash) treats specially
// anywhere in a word, so a word made only of them means itself.
func isSafe(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '_', '@', '%', '+', '=', ':', ',', '.', '/', '-':
		return true
	}
	return false
}

// Quote quotes one argv word for a POSIX shell command line. Words made only
// of safe characters ([A-Za-z0-9_@%+=:,./-]) are returned unchanged; anything
// else is wrapped in single quotes, inside which the shell interprets
// nothing, with each single quote inside written as close quote, escaped
// quote, reopen. The empty word becomes a pair of single quotes:
//
//	Quote("a b")  == `'a b'`
//	Quote("it's") == `'it'\''s'`
//	Quote("")     == `''`
//
// Quote does not know where the word will stand. In command-name position a
// bare word such as A=b or time is read by the shell as an assignment or a
// keyword, not as a command name; Join handles that, so prefer Join when
// building a whole command.
func Quote(word string) string {
	if word == "" {
		return "''"
	}
	safe := true
	for i := 0; i < len(word); i++ {
		if !isSafe(word[i]) {
			safe = false
			break
		}
	}
	if safe {
		return word
	}
	return singleQuote(word)
}

func singleQuote(word string) string {
	return "'" + strings.ReplaceAll(word, "'", `'\''`) + "'"
}

// Join quotes each word of argv and joins them with single spaces, producing
// a command line that a POSIX shell (and bash) parses back into exactly argv.
//
// The first word is additionally quoted when the shell would otherwise not
// take it as a command name: an assignment-shaped word (NAME=value) or a
// reserved word (if, time, ...). Quoting is enough because the shell only
// recognises either when it is written unquoted.
//
// A NUL byte cannot be passed through any shell command line (the remote
// command ends up in a C string); Join does not fail on one, but the result
// is rejected by Split and would be truncated by a real shell.
func Join(argv []string) string {
	var b strings.Builder
	for i, w := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		q := Quote(w)
		if i == 0 && q == w && (isAssignment(w) || reservedWords[w]) {
			q = singleQuote(w)
		}
		b.WriteString(q)
	}
	return b.String()
}

// reservedWords are the words a shell recognises as syntax when they appear
// unquoted in command-name position: POSIX's list plus bash's additions
// (Proxmox VE runs remote commands through root's bash). Words containing
// characters outside the safe set ({ } ! [[ ]]) are left out: Quote always
// quotes those, and Split refuses them unquoted anyway.
var reservedWords = map[string]bool{
	"case": true, "do": true, "done": true, "elif": true, "else": true,
	"esac": true, "fi": true, "for": true, "if": true, "in": true,
	"then": true, "until": true, "while": true,
	// bash
	"function": true, "select": true, "time": true, "coproc": true,
}

// isAssignment reports whether a bare word would be read as a variable
// assignment in command position: a valid name followed by '='.
func isAssignment(w string) bool {
	eq := strings.IndexByte(w, '=')
	if eq <= 0 {
		return false
	}
	for i := 0; i < eq; i++ {
		if !isNameByte(w[i], i == 0) {
			return false
		}
	}
	return true
}

func isNameByte(b byte, first bool) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', b == '_':
		return true
	case '0' <= b && b <= '9':
		return !first
	}
	return false
}

// Split parses cmd as a POSIX shell simple command made only of literal
// words and returns those words: blanks (space, tab) separate words; single
// quotes preserve everything up to the next '; inside double quotes a
// backslash escapes only $ ` " \ and newline; outside quotes a backslash
// makes the next byte literal; backslash-newline is a line continuation and
// disappears; adjacent quoted and unquoted parts form one word; an empty
// pair of quotes forms an empty word. A blank-only cmd yields no words and no error.
//
// Everything that would make a real shell do more than split words is
// refused with a *SyntaxError instead: unquoted operators (| & ; < > ( )),
// unquoted newlines (they end the command), $ and ` expansions (also inside
// double quotes), unquoted glob characters (* ? [), brace expansion ({ }),
// !, ~ (bash expands it even inside words like a=~), # starting a word (a
// comment), unquoted control characters, a trailing backslash, unterminated
// quotes, NUL bytes anywhere, and a first word that the shell would read as a
// reserved word or a variable assignment rather than the command name.
func Split(cmd string) ([]string, error) {
	var (
		words   []string
		cur     []byte
		inWord  bool // cur holds a word in progress (possibly empty, e.g. '')
		quoted  bool // some part of the current word was quoted or escaped
		nameOK  = true
		wordPos int // offset where the current word started
	)
	errAt := func(off int, format string, args ...any) ([]string, error) {
		return nil, &SyntaxError{Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	// startWord marks the beginning of a word at offset i.
	startWord := func(i int) {
		if !inWord {
			inWord, quoted, nameOK, wordPos = true, false, true, i
			cur = cur[:0]
		}
	}
	// endWord finishes the current word; it checks the command-name position
	// rules, which only apply to the first word.
	endWord := func() error {
		if !inWord {
			return nil
		}
		w := string(cur)
		if len(words) == 0 && !quoted && reservedWords[w] {
			return &SyntaxError{Offset: wordPos, Reason: fmt.Sprintf("reserved word %q in command position", w)}
		}
		words = append(words, w)
		inWord = false
		return nil
	}

	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		if c == 0 {
			return errAt(i, "NUL byte")
		}
		switch {
		case c == ' ' || c == '\t':
			if err := endWord(); err != nil {
				return nil, err
			}
		case c == '\\':
			if i+1 >= len(cmd) {
				return errAt(i, "trailing backslash")
			}
			if cmd[i+1] == '\n' {
				// Line continuation: removed before tokenising, so it
				// neither starts nor ends a word and is not quoting.
				i++
				continue
			}
			if cmd[i+1] == 0 {
				return errAt(i+1, "NUL byte")
			}
			startWord(i)
			quoted, nameOK = true, false
			cur = append(cur, cmd[i+1])
			i++
		case c == '\'':
			startWord(i)
			quoted, nameOK = true, false
			end := strings.IndexByte(cmd[i+1:], '\'')
			if end < 0 {
				return errAt(i, "unterminated single quote")
			}
			part := cmd[i+1 : i+1+end]
			if n := strings.IndexByte(part, 0); n >= 0 {
				return errAt(i+1+n, "NUL byte")
			}
			cur = append(cur, part...)
			i += end + 1
		case c == '"':
			startWord(i)
			quoted, nameOK = true, false
			open := i
			closed := false
			for i++; i < len(cmd); i++ {
				d := cmd[i]
				if d == '"' {
					closed = true
					break
				}
				switch d {
				case 0:
					return errAt(i, "NUL byte")
				case '$':
					return errAt(i, "$ (expansion) inside double quotes")
				case '`':
					return errAt(i, "` (command substitution) inside double quotes")
				case '\\':
					if i+1 >= len(cmd) {
						return errAt(open, "unterminated double quote")
					}
					switch e := cmd[i+1]; e {
					case '\n':
						i++ // line continuation
						continue
					case '$', '`', '"', '\\':
						cur = append(cur, e)
						i++
						continue
					}
					// Any other backslash is literal inside double quotes.
				}
				cur = append(cur, d)
			}
			if !closed {
				return errAt(open, "unterminated double quote")
			}
		case c == '=' && !inWord:
			// A word starting with '=' is an ordinary word, never an assignment.
			startWord(i)
			nameOK = false
			cur = append(cur, c)
		case c == '=':
			if nameOK && len(words) == 0 && len(cur) > 0 {
				return errAt(wordPos, "variable assignment in command position")
			}
			nameOK = false
			cur = append(cur, c)
		case isSafe(c) || c == ']' || c == '^' || c >= 0x80:
			// ']' and '^' are literal in POSIX sh and bash; bytes >= 0x80
			// (UTF-8 text) are never special to the shell's tokenizer.
			startWord(i)
			if nameOK && !isNameByte(c, len(cur) == 0) {
				nameOK = false
			}
			cur = append(cur, c)
		case c == '#':
			if !inWord {
				return errAt(i, "# starts a comment")
			}
			nameOK = false
			cur = append(cur, c)
		default:
			return errAt(i, "%s", unquotedReason(c))
		}
	}
	if err := endWord(); err != nil {
		return nil, err
	}
	return words, nil
}

// unquotedReason names why an unquoted byte is refused.
func unquotedReason(c byte) string {
	switch c {
	case '|', '&', ';', '<', '>', '(', ')':
		return fmt.Sprintf("unquoted %q (shell operator)", c)
	case '\n':
		return "unquoted newline (ends the command)"
	case '$':
		return "unquoted $ (expansion)"
	case '`':
		return "unquoted ` (command substitution)"
	case '*', '?', '[':
		return fmt.Sprintf("unquoted %q (pathname expansion)", c)
	case '{', '}':
		return fmt.Sprintf("unquoted %q (brace expansion or grouping)", c)
	case '!':
		return "unquoted ! (pipeline negation or history expansion)"
	case '~':
		return "unquoted ~ (tilde expansion)"
	}
	return fmt.Sprintf("unquoted control character %q", c)
}
