package sim

import (
	"fmt"
	"strings"
)

// The model runs no script bodies: a script it does not know succeeds and is
// recorded on the guest's disk (runRecorded). A test that gives a user
// feature a body that fails says so here, so that the model does what the
// body does on a real container (the real-guest backend runs the body
// itself, so there the declaration changes nothing): the apply of script NAME
// with exactly BODY exits with CODE after printing LINE on stderr, and
// leaves no record. Another body under the same name (the spec fixed) runs
// as before.

type bodyKey struct{ name, body string }

type bodyExit struct {
	code int
	line string
}

// SetBodyExit declares what a user script's apply does with this body: exit
// code (1 to 255) after printing line on stderr. Code 0 removes the
// declaration.
func (s *Sim) SetBodyExit(name, body string, code int, line string) error {
	if code < 0 || code > 255 {
		return fmt.Errorf("phoenix-sim: exit status %d of %s is not one sh can return (0 to 255)", code, name)
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.bodyExits == nil {
		s.c.bodyExits = map[bodyKey]bodyExit{}
	}
	k := bodyKey{name, strings.TrimSpace(body)}
	if code == 0 {
		delete(s.c.bodyExits, k)
		return nil
	}
	s.c.bodyExits[k] = bodyExit{code, line}
	return nil
}

// bodyExit applies a declared outcome to an apply of a script the model
// does not know. Call with c.mu held.
func (c *cluster) bodyExit(x *script) (int, bool) {
	if x.g == nil || x.phase != "apply" {
		return 0, false
	}
	if _, known := builtinSteps[x.name]; known || insideScripts[x.name] != nil {
		return 0, false
	}
	e, ok := c.bodyExits[bodyKey{x.name, strings.TrimSpace(x.body)}]
	if !ok {
		return 0, false
	}
	return x.fail(e.code, "%s", e.line), true
}

// StepRecorded reports whether the apply of a script the model does not
// know (a user feature's step) succeeded on a CT's disk, there or on the
// disk it was cloned from before: what the model keeps of a body it did not
// run. False for a CT that does not exist.
func (s *Sim) StepRecorded(vmid int, name string) bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	g := s.c.guests[vmid]
	return g != nil && g.disk.records[name]
}
