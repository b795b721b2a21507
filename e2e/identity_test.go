package e2e

import (
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
)

// identity is a guest's host keys and machine-id, as the simulator holds them.
func identity(t *testing.T, r *rig, vmid int) (string, string) {
	t.Helper()
	keys, id, ok := r.sim.GuestIdentity(vmid)
	if !ok {
		t.Fatalf("no guest %d", vmid)
	}
	return keys, id
}

// TestEveryCloneHasItsOwnIdentity: a clone arrives with its template's SSH
// host keys (Proxmox's clone empties only the machine-id); phoenix gives
// each container it clones keys of its own, once, and records it.
func TestEveryCloneHasItsOwnIdentity(t *testing.T) {
	r := newRig(t, nil)
	r.mustConverge(r.options())
	keys, ids := map[string]int{}, map[string]int{}
	for _, vmid := range []int{900, 901, 902, 955, 950, 960} {
		k, id := identity(t, r, vmid)
		keys[k]++
		if vmid >= 950 {
			ids[id]++
			if k == "" || id == "" {
				t.Errorf("guest %d: host keys %q, machine-id %q", vmid, k, id)
			}
		}
	}
	// The templates share the keys they were made with (a template is a
	// disk, never run); every container has its own.
	for _, vmid := range []int{955, 950, 960} {
		k, id := identity(t, r, vmid)
		if keys[k] > 1 || ids[id] > 1 {
			t.Errorf("guest %d shares its host keys or machine-id", vmid)
		}
	}
	runs := 0
	for _, e := range r.events(0) {
		if e.Kind == "exec" && e.Name == "phoenix/identity" && e.OK {
			runs++
		}
	}
	if runs != 3 {
		t.Errorf("the identity step ran %d times, want once per cloned container (3)", runs)
	}
	// Recorded: a second apply does not run it again.
	from := r.lastSeq()
	r.mustConverge(r.options())
	if first(r.events(from), func(e sim.Event) bool { return e.Name == "phoenix/identity" }) != 0 {
		t.Error("the identity step ran again")
	}
}
