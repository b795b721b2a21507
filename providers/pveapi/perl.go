package pveapi

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// This file holds the bits of Perl semantics PVE's checks silently rely on.

// perlRegexp is a Perl regular expression as PVE applies it, translated to Go.
// minLen/maxLen (when maxLen >= 0) bound the rune count for patterns whose repeat
// count is beyond what RE2 accepts (1000).
type perlRegexp struct {
	re             *regexp.Regexp
	minLen, maxLen int
}

func (p *perlRegexp) match(s string) bool {
	if p.maxLen >= 0 {
		t := strings.TrimSuffix(s, "\n")
		if n := perlLength(t); n < p.minLen || n > p.maxLen {
			return false
		}
	}
	return p.re.MatchString(s)
}

func (p *perlRegexp) find(s string) []string { return p.re.FindStringSubmatch(s) }

// compilePerlPattern compiles a schema 'pattern' the way check_prop uses it:
// $value =~ m/^$pattern$/, the pattern interpolated without grouping.
func compilePerlPattern(pattern string) (*perlRegexp, error) {
	// A lone character class repeated more than RE2 allows ("[0-9a-zA-Z!=]{0,4096}"):
	// match the class any number of times and count runes instead.
	if m := reBigClassRepeat.FindStringSubmatch(pattern); m != nil {
		lo, _ := strconv.Atoi("0" + m[2])
		hi, _ := strconv.Atoi(m[3])
		if hi > 1000 {
			re, err := compilePerl("^"+m[1]+"*$", "")
			if err != nil {
				return nil, err
			}
			re.minLen, re.maxLen = lo, hi
			return re, nil
		}
	}
	return compilePerl("^"+pattern+"$", "")
}

var reBigClassRepeat = regexp.MustCompile(`^(\[[^\]]*\])\{(\d*),(\d+)\}$`)

// compilePerl translates a Perl regex to Go. flags is "i" for m//i.
//   - (?^:...) and (?^i:...) are how Perl stringifies qr// objects;
//   - '$' matches at the end or before a final newline;
//   - \d, \w and \s are Unicode-aware on the character strings PVE validates;
//   - x{,n} means x{0,n} since Perl 5.34 (PVE 8 runs 5.36);
//   - \0 is NUL.
func compilePerl(pattern, flags string) (*perlRegexp, error) {
	var b strings.Builder
	if flags != "" {
		b.WriteString("(?" + flags + ")")
	}
	inClass := false
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '\\' && i+1 < len(pattern):
			n := pattern[i+1]
			i++
			switch n {
			case 'd':
				b.WriteString(pick(inClass, `\p{Nd}`, `\p{Nd}`))
			case 'D':
				b.WriteString(pick(inClass, `\D`, `\P{Nd}`))
			case 'w':
				b.WriteString(pick(inClass, `\p{L}\p{M}\p{Nd}\p{Pc}`, `[\p{L}\p{M}\p{Nd}\p{Pc}]`))
			case 'W':
				b.WriteString(pick(inClass, `\W`, `[^\p{L}\p{M}\p{Nd}\p{Pc}]`))
			case 's':
				b.WriteString(pick(inClass, perlSpaceClass, "["+perlSpaceClass+"]"))
			case 'S':
				b.WriteString(pick(inClass, `\S`, "[^"+perlSpaceClass+"]"))
			case '0':
				b.WriteString(`\x00`)
			default:
				b.WriteByte('\\')
				b.WriteByte(n)
			}
		case inClass:
			if c == ']' {
				inClass = false
			}
			b.WriteByte(c)
		case c == '[':
			inClass = true
			b.WriteByte(c)
			// A ']' or '^]' right after '[' is literal.
			if i+1 < len(pattern) && pattern[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(pattern) && pattern[i+1] == ']' {
				b.WriteString(`\]`)
				i++
			}
		case c == '(' && strings.HasPrefix(pattern[i:], "(?^"):
			// "(?^:" becomes "(?:", "(?^i:" becomes "(?i:".
			b.WriteString("(?")
			i += 2
		case c == '{' && strings.HasPrefix(pattern[i:], "{,"):
			b.WriteString("{0,")
			i++
		case c == '$':
			b.WriteString(`(?:\n?\z)`)
		default:
			b.WriteByte(c)
		}
	}
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, err
	}
	return &perlRegexp{re: re, maxLen: -1}, nil
}

// Perl's \s: ASCII whitespace including \v, NEL, NBSP and the Unicode space separators.
const perlSpaceClass = `\t\n\v\f\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}`

func pick(inClass bool, inside, outside string) string {
	if inClass {
		return inside
	}
	return outside
}

func mustPerl(pattern, flags string) *perlRegexp {
	re, err := compilePerl(pattern, flags)
	if err != nil {
		panic("pveapi: bad built-in regex " + pattern + ": " + err.Error())
	}
	return re
}

// JSONSchema::is_integer and is_number.
var (
	reInteger = mustPerl(`^[+-]?\d+$`, "")
	reNumber  = mustPerl(`^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$`, "")
)

func isInteger(s string) bool { return reInteger.match(s) }
func isNumber(s string) bool  { return reNumber.match(s) }

var reNumPrefix = regexp.MustCompile(`^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?`)

// perlNumify converts a string to a number the way Perl does in numeric context: the
// longest leading decimal number after leading whitespace, else 0.
func perlNumify(s string) float64 {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	lower := strings.ToLower(s)
	for _, inf := range []string{"+inf", "-inf", "inf"} {
		if strings.HasPrefix(lower, inf) {
			if inf[0] == '-' {
				return math.Inf(-1)
			}
			return math.Inf(1)
		}
	}
	m := reNumPrefix.FindString(s)
	if m == "" {
		return 0
	}
	f, err := strconv.ParseFloat(m, 64)
	if err != nil {
		// Out of range: ParseFloat returns ±Inf with the error, as Perl would.
		return f
	}
	return f
}

// perlNumCompare compares two numeric strings as Perl's <=> does, exactly for
// integers that fit 64 bits, as doubles otherwise.
func perlNumCompare(a, b string) int {
	ai, aerr := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(a, "+"), "\n"), 10, 64)
	bi, berr := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(b, "+"), "\n"), 10, 64)
	if aerr == nil && berr == nil {
		switch {
		case ai < bi:
			return -1
		case ai > bi:
			return 1
		}
		return 0
	}
	af, bf := perlNumify(a), perlNumify(b)
	switch {
	case af < bf:
		return -1
	case af > bf:
		return 1
	}
	return 0
}

// perlNumString prints a double as Perl does ("%.15g"). Integral values below 2^53
// print as integers, since JSON decoders hand those over as Perl IVs.
func perlNumString(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10)
	}
	if math.IsInf(f, 1) {
		return "Inf"
	}
	if math.IsInf(f, -1) {
		return "-Inf"
	}
	if math.IsNaN(f) {
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', 15, 64)
}

// perlTrue is Perl's truth of a string: everything but "" and "0".
func perlTrue(s string) bool { return s != "" && s != "0" }

// splitList is PVE::Tools::split_list: NUL-separated if there is a NUL, else split
// on commas, semicolons and whitespace; empty items vanish.
func splitList(s string) []string {
	if strings.Contains(s, "\x00") {
		return perlSplit(strings.Split(s, "\x00"))
	}
	s = strings.Map(func(r rune) rune {
		if r == ',' || r == ';' {
			return ' '
		}
		return r
	}, s)
	return strings.FieldsFunc(s, isPerlUnicodeSpace)
}

// perlSplit drops trailing empty fields, as Perl's split does.
func perlSplit(fields []string) []string {
	for len(fields) > 0 && fields[len(fields)-1] == "" {
		fields = fields[:len(fields)-1]
	}
	return fields
}

func isPerlUnicodeSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// perlLength is Perl's length() of a character string.
func perlLength(s string) int { return len([]rune(s)) }
