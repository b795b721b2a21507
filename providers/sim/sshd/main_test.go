package sshd

import (
	"testing"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

// TestMain fails the package if goroutines outlive the tests: every test
// closes its servers and clients, so one left over is a leak in the server.
func TestMain(m *testing.M) { testtool.MainNoLeaks(m) }
