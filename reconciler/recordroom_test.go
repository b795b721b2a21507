package reconciler

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// notesLeaving are notes that leave room characters beside a record.
func notesLeaving(room int, s *State) string {
	return strings.Repeat("n", DescriptionLimit-utf8.RuneCountInString(RenderDescription("", s))-1-room)
}

func TestPlanChecksTheRecordFitsBesideTheNotes(t *testing.T) {
	cases := map[string]struct {
		edit func(obs *Observed)
		// errs and notes are the guests with a problem, and with a note,
		// about their description.
		errs, notes []string
	}{
		"notes with room for the record and a failure": {
			edit: func(obs *Observed) {
				og := obs.Guests[960]
				og.User = notesLeaving(300, og.State)
			},
		},
		"a converged guest whose notes leave no room for a failure": {
			edit: func(obs *Observed) {
				og := obs.Guests[960]
				og.User = notesLeaving(20, og.State)
			},
			notes: []string{"nginx"},
		},
		"a guest with changes, whose notes leave no room for a failure": {
			edit: func(obs *Observed) {
				og := obs.Guests[960]
				og.User = notesLeaving(20, og.State)
				og.Config.Values["cores"] = "3"
			},
			errs: []string{"nginx"},
		},
		"a guest that installs a feature, whose record would not fit": {
			edit: func(obs *Observed) {
				og := obs.Guests[960]
				delete(og.State.Features, "nginx")
				og.User = notesLeaving(150, og.State)
			},
			errs: []string{"nginx"},
		},
		"a clone made from a template whose notes leave no room for the clone's record": {
			edit: func(obs *Observed) {
				tmpl := obs.Guests[900]
				tmpl.User = notesLeaving(150, tmpl.State)
				delete(obs.Guests, 960)
			},
			errs: []string{"nginx"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res := examples(t)
			obs := converged(res, "580.76.05")
			if obs.Guests[900] == nil || obs.Guests[900].Name != "ubuntu-2404-base" || obs.Guests[960].Name != "nginx" {
				t.Fatal("the examples changed: ubuntu-2404-base is 900 and nginx 960 here")
			}
			tc.edit(obs)
			plan := MakePlan(res, obs, PlanOptions{})
			var errs, notes []string
			for _, g := range plan.Guests {
				for _, e := range g.Errors {
					if strings.Contains(e.Message, "description cannot hold") {
						errs = append(errs, g.Name)
						if e.Kind != ProblemSpec || len(g.Changes) != 0 || !strings.Contains(e.Message, "shorten the notes") {
							t.Errorf("%s: %+v, changes %v", g.Name, e, g.Changes)
						}
					}
				}
				for _, n := range g.Notes {
					if strings.Contains(n, "description cannot hold") {
						notes = append(notes, g.Name)
					}
				}
			}
			if strings.Join(errs, ",") != strings.Join(tc.errs, ",") || strings.Join(notes, ",") != strings.Join(tc.notes, ",") {
				t.Errorf("problems on %v, notes on %v; want %v and %v", errs, notes, tc.errs, tc.notes)
			}
		})
	}
}

// The revision an apply stamps on a guest it changes (State.Rev) is counted
// in the room the plan checks: notes that leave just room enough without it
// are refused with it.
func TestPlanCountsTheRevisionInTheRecord(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	res := examples(t)
	// fits reports whether the plan takes nginx's change beside notes that
	// leave room characters.
	fits := func(room int, opts PlanOptions) bool {
		obs := converged(res, "580.76.05")
		og := obs.Guests[960]
		og.User = notesLeaving(room, og.State)
		og.Config.Values["cores"] = "3"
		g, _ := MakePlan(res, obs, opts).Guest("nginx")
		return len(g.Errors) == 0
	}
	least := func(opts PlanOptions) int {
		for room := 0; room < 1000; room++ {
			if fits(room, opts) {
				return room
			}
		}
		t.Fatal("no room of under 1000 characters fits")
		return 0
	}
	without, with := least(PlanOptions{}), least(PlanOptions{Revision: rev})
	if want := len(`,"rev":""`) + len(rev); with-without != want {
		t.Errorf("the record needs %d characters more with a revision, want %d", with-without, want)
	}
}
