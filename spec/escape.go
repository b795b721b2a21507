package spec

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// escapeText shows s the way strconv.QuoteToASCII would, without the
// quotes: printable ASCII as it is, every other character as its Go escape
// (\u200b, \u202e, \a, and \xff for a byte that is not UTF-8). Valid names are
// ASCII (RFC 1123 labels, feature names) and phoenix's own messages are too,
// so whatever is escaped came from a spec file; a name with a zero-width
// space, a right-to-left override or a Cyrillic letter that looks Latin
// then reads as what it is, not as the name it imitates. Backslashes are
// left alone: the escapes %q already wrote stay as they are.
func escapeText(s string) string {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] < 0x7f {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}
