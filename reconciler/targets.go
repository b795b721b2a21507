package reconciler

import (
	"fmt"
	"slices"
	"strings"

	"github.com/phoenixhv/phoenix/spec"
)

// Targets. A targeted run (plan and apply --target NAME) plans the named
// guests and what they need: the templates they are cloned from and the
// guests they depend on, with those guests' own templates and dependencies.
// The others are neither shown nor touched, and nothing is pruned: a guest
// the specs do not name is judged by whole runs only, since a targeted run
// has not looked at what the rest of the specs want.

// Targeting says that a plan covers part of the specs' guests.
type Targeting struct {
	// Targets are the names asked for, as the specs spell them.
	Targets []string `json:"targets"`
	// Planned counts the guests planned (the targets and what they need),
	// Total the specs' guests.
	Planned int `json:"planned"`
	Total   int `json:"total"`
}

// ResolveTargets checks target names against the specs, ignoring case as
// names do, and returns them as the specs spell them, each once, in the
// specs' order. An unknown name is an error that names it, with the closest
// name the specs define when one is close.
func ResolveTargets(res *spec.Resolution, names []string) ([]string, error) {
	byKey := map[string]string{}
	known := make([]string, 0, len(res.Guests))
	for _, r := range res.Guests {
		byKey[strings.ToLower(r.Name)] = r.Name
		known = append(known, r.Name)
	}
	want := map[string]bool{}
	var unknown []string
	for _, n := range names {
		name, ok := byKey[strings.ToLower(n)]
		if !ok {
			msg := fmt.Sprintf("%q", n)
			if best := spec.Closest(n, known); best != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", best)
			}
			unknown = append(unknown, msg)
			continue
		}
		want[name] = true
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("--target: no Template or Container named %s in the specs", strings.Join(unknown, ", "))
	}
	var out []string
	for _, r := range res.Guests {
		if want[r.Name] {
			out = append(out, r.Name)
		}
	}
	return out, nil
}

// TargetClosure is the set of guests a targeted run plans: the targets,
// and transitively the templates of their lineage and the guests they
// depend on. Names the specs do not define are left out.
func TargetClosure(res *spec.Resolution, targets []string) map[string]bool {
	set := map[string]bool{}
	var add func(name string)
	add = func(name string) {
		r, ok := res.Guest(name)
		if !ok || set[r.Name] {
			return
		}
		set[r.Name] = true
		for _, a := range r.Lineage {
			add(a)
		}
		for _, d := range r.Settings.DependsOn {
			add(d)
		}
	}
	for _, t := range targets {
		add(t)
	}
	return set
}

// targeting is what MakePlan records of a targeted plan; nil when the plan
// is whole.
func targeting(res *spec.Resolution, targets []string, set map[string]bool) *Targeting {
	if len(targets) == 0 {
		return nil
	}
	return &Targeting{Targets: slices.Clone(targets), Planned: len(set), Total: len(res.Guests)}
}
