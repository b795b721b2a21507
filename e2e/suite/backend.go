package suite

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/providers/sim/lxc"
)

// Backend is one way of running the simulator's containers.
type Backend interface {
	// Name names the backend in failures.
	Name() string
	// Start serves the world with this backend's guests until the test
	// ends; the world is the suite's, the same for every backend.
	Start(t *testing.T, w *sim.World) *sim.Sim
	// Has reports whether a guest's disk holds the file at path that a
	// user feature's step (feature/step) wrote, the guest running or not.
	Has(t *testing.T, s *sim.Sim, vmid int, step, path string) bool
	// Declare says what a user step's apply does with the given body: exit
	// with code after printing line on stderr. A backend that runs bodies
	// needs no telling.
	Declare(t *testing.T, s *sim.Sim, step, body string, code int, line string)
}

// Model is the model-only backend: containers exist in the simulator's
// model alone, and a user feature's body is never run (providers/sim
// model.go: a script it does not know succeeds and is recorded on the disk).
type Model struct{}

// Name implements Backend.
func (Model) Name() string { return "model" }

// Start implements Backend.
func (Model) Start(t *testing.T, w *sim.World) *sim.Sim {
	t.Helper()
	w.Spec.RealGuests = false
	return start(t, w, sim.Options{})
}

// Has implements Backend: the model writes no file for a body it did not
// run; what it keeps is its record that the step's apply succeeded on this
// disk, which a clone copies as it copies the disk.
func (Model) Has(_ *testing.T, s *sim.Sim, vmid int, step, _ string) bool {
	return s.StepRecorded(vmid, step)
}

// Declare implements Backend: the model is told what the body does.
func (Model) Declare(t *testing.T, s *sim.Sim, step, body string, code int, line string) {
	t.Helper()
	if err := s.SetBodyExit(step, body, code, line); err != nil {
		t.Fatal(err)
	}
}

// Real is the real-guest backend: every container is a real LXC container
// on Host, made from its cached Debian 12 root file system.
type Real struct{ Host *lxc.Host }

// Name implements Backend.
func (Real) Name() string { return "real" }

// Start implements Backend.
func (b Real) Start(t *testing.T, w *sim.World) *sim.Sim {
	t.Helper()
	w.Spec.RealGuests = true
	return start(t, w, sim.Options{LXCHost: b.Host})
}

// Has implements Backend: the file itself, in the container's root file
// system.
func (Real) Has(t *testing.T, s *sim.Sim, vmid int, _, path string) bool {
	t.Helper()
	ct := s.Container(vmid)
	if ct == nil {
		return false
	}
	_, err := os.Lstat(filepath.Join(ct.Rootfs(), path))
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("CT %d: %v", vmid, err)
	}
	return err == nil
}

// Declare implements Backend: a real container runs the body itself.
func (Real) Declare(*testing.T, *sim.Sim, string, string, int, string) {}

func start(t *testing.T, w *sim.World, o sim.Options) *sim.Sim {
	t.Helper()
	if err := sim.CheckWorld(w); err != nil {
		t.Fatal(err)
	}
	s, err := sim.Start(w, o)
	if err != nil {
		t.Fatal(err)
	}
	// Closing removes every real container the simulator made, also after
	// a failure.
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}
