package reconciler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// DescriptionLimit is the most characters Proxmox VE takes for a guest's
// description: pve-container's PVE/LXC/Config.pm gives the option
// maxLength 8 KiB, and PVE::JSONSchema checks it with Perl's length on the
// decoded parameter, which counts characters, not bytes. The config file
// holds the description as percent-encoded comment lines, but the limit is
// on the text as sent. The user's notes and phoenix's record share it.
const DescriptionLimit = 8 * 1024

// descriptionLength counts a description as Proxmox VE does: characters (a
// byte that is not UTF-8 counts as one, as its replacement character does
// after Proxmox decodes it).
func descriptionLength(desc string) int { return utf8.RuneCountInString(desc) }

// errorCut marks where a recorded error message was cut to fit.
const errorCut = "[...]"

// maxErrorText bounds a recorded error message, whatever room the
// description has: the record is a summary, the apply's output has it all.
const maxErrorText = 1000

// RecordTooLongError is a description that cannot hold both the user's text
// and phoenix's record, even with the last error's message cut away. Nothing
// is written then: the user's text and the records are never cut.
type RecordTooLongError struct {
	// User and Record are the characters the user's text and phoenix's
	// smallest record take.
	User, Record int
}

func (e *RecordTooLongError) Error() string {
	over := e.User + e.Record - DescriptionLimit
	return fmt.Sprintf("its description cannot hold phoenix's record: the notes take %d characters and the record %d, together %d over Proxmox VE's limit of %d; "+
		"shorten the notes (the text before the phoenix:state block) by at least %d characters", e.User, e.Record, over, DescriptionLimit, over)
}

// ErrorKind makes the failure a person's to resolve: the notes are theirs.
func (e *RecordTooLongError) ErrorKind() ErrorKind { return ErrorKind(ProblemSpec) }

// BoundedDescription renders a description as RenderDescription does, and
// refuses one Proxmox VE would: every description phoenix writes goes
// through it.
func BoundedDescription(user string, s *State) (string, error) {
	desc := RenderDescription(user, s)
	if descriptionLength(desc) <= DescriptionLimit {
		return desc, nil
	}
	notes := descriptionLength(strings.TrimRight(user, "\n"))
	if notes > 0 {
		notes++ // the line break before the block
	}
	smallest := *s
	if s.Error != nil {
		e := *s.Error
		e.Message = cutMessage(e.Message, 0)
		smallest.Error = &e
	}
	return "", &RecordTooLongError{User: notes, Record: descriptionLength(renderBlock(&smallest))}
}

// renderBlock is the state block at the current version, compact: JSON
// without HTML escapes (an error's "2>&1" stays five characters, not
// fifteen), except where the text would end the comment the block is
// ("-->") or start another block ("<!--"), which the JSON spells escaped.
func renderBlock(s *State) string {
	current := *s
	current.V = StateVersion
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&current); err != nil {
		panic(err) // a State always encodes
	}
	body := strings.TrimSuffix(b.String(), "\n")
	// Outside its strings JSON has no < or >: these are inside strings,
	// where \u003c and \u003e read back as the characters.
	body = strings.ReplaceAll(body, "-->", `--\u003e`)
	body = strings.ReplaceAll(body, "<!--", `\u003c!--`)
	return stateBegin + "\n" + body + "\n" + stateEnd
}

// fitError renders s's block with its error's message cut as little as lets
// user (as RenderDescription prefixes it) and the block fit: the longest cut
// that fits, found by bisection, since how long the block gets depends on
// which characters the JSON escapes. When none fits, the block with the
// message cut to the marker.
func fitError(user string, s *State) string {
	try := func(keep int) string {
		c := *s
		e := *s.Error
		e.Message = cutMessage(e.Message, keep)
		c.Error = &e
		return renderBlock(&c)
	}
	room := DescriptionLimit - descriptionLength(user)
	lo, hi := 0, utf8.RuneCountInString(s.Error.Message)-1
	if descriptionLength(try(lo)) > room {
		return try(lo)
	}
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if descriptionLength(try(mid)) <= room {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return try(lo)
}

// cutMessage shortens an error message to at most max characters (but never
// below the marker), cutting its oldest text first: a failure's message
// starts with what failed, and ends with the newest output, which says why.
// The start of its first line is kept (at most a quarter of what is kept),
// then the marker, then as much of the end as fits.
func cutMessage(msg string, max int) string {
	r := []rune(msg)
	if len(r) <= max {
		return msg
	}
	keep := max - utf8.RuneCountInString(errorCut)
	if keep <= 0 {
		return errorCut
	}
	head := len(r)
	for i, c := range r {
		if c == '\n' {
			head = i
			break
		}
	}
	head = min(head, keep/4)
	return string(r[:head]) + errorCut + string(r[len(r)-(keep-head):])
}
