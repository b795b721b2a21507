package pveapi

import (
	"strconv"
	"strings"
)

// PVE::CalendarEvent::pve_verify_calendar_event hands the text to the Rust parser of
// proxmox-time (systemd.time-like "[weekdays] [date] [time]" or a shorthand such as
// "daily"). This is a structural re-implementation of that grammar; the Rust error text
// after " - " is not reproduced word for word.

var calendarShorthands = wordSet(`minutely hourly daily weekly monthly yearly annually
	quarterly semiannually semi-annually`)

var weekdayNames = map[string]int{
	"mon": 1, "monday": 1, "tue": 2, "tuesday": 2, "wed": 3, "wednesday": 3, "thu": 4,
	"thursday": 4, "fri": 5, "friday": 5, "sat": 6, "saturday": 6, "sun": 0, "sunday": 0,
}

func verifyCalendarEvent(text string) error {
	if validCalendarEvent(text) {
		return nil
	}
	return die("invalid calendar event '%s' - unable to parse calendar event\n", text)
}

func validCalendarEvent(text string) bool {
	fields := strings.FieldsFunc(text, isPerlSpace)
	if len(fields) == 0 {
		return false
	}
	if len(fields) == 1 && calendarShorthands[strings.ToLower(fields[0])] {
		return true
	}
	if len(fields) > 1 && fields[len(fields)-1] == "UTC" {
		fields = fields[:len(fields)-1]
	}
	i := 0
	if i < len(fields) && validWeekdaySpec(fields[i]) {
		i++
	}
	if i < len(fields) && strings.Contains(fields[i], "-") && validDateSpec(fields[i]) {
		i++
	}
	if i < len(fields) && validTimeSpec(fields[i]) {
		i++
	}
	return i > 0 && i == len(fields)
}

func validWeekdaySpec(s string) bool {
	for _, item := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(strings.ToLower(item), "..")
		if _, ok := weekdayNames[from]; !ok {
			return false
		}
		if _, ok := weekdayNames[to]; isRange && !ok {
			return false
		}
	}
	return true
}

// validDateSpec accepts [year-]month-day, each part a component list.
func validDateSpec(s string) bool {
	parts := strings.Split(s, "-")
	switch len(parts) {
	case 2:
		return validComponents(parts[0], 1, 12) && validComponents(parts[1], 1, 31)
	case 3:
		return validComponents(parts[0], 1970, 9999) && validComponents(parts[1], 1, 12) && validComponents(parts[2], 1, 31)
	}
	return false
}

// validTimeSpec accepts [hour:]minute[:second].
func validTimeSpec(s string) bool {
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 1:
		return validComponents(parts[0], 0, 59)
	case 2:
		return validComponents(parts[0], 0, 23) && validComponents(parts[1], 0, 59)
	case 3:
		return validComponents(parts[0], 0, 23) && validComponents(parts[1], 0, 59) && validComponents(parts[2], 0, 59)
	}
	return false
}

// validComponents accepts a comma list of "*", "n", "a..b", with an optional "/step".
func validComponents(s string, lo, hi int) bool {
	num := func(t string) (int, bool) {
		if t == "" || strings.TrimLeft(t, "0123456789") != "" || len(t) > 4 {
			return 0, false
		}
		n, err := strconv.Atoi(t)
		return n, err == nil && n >= lo && n <= hi
	}
	for _, item := range strings.Split(s, ",") {
		base, step, hasStep := strings.Cut(item, "/")
		if hasStep {
			if n, err := strconv.Atoi(step); err != nil || n <= 0 || strings.TrimLeft(step, "0123456789") != "" {
				return false
			}
		}
		if base == "*" {
			continue
		}
		from, to, isRange := strings.Cut(base, "..")
		a, ok := num(from)
		if !ok {
			return false
		}
		if isRange {
			b, ok := num(to)
			if !ok || b < a {
				return false
			}
		}
	}
	return true
}
