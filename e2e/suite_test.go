package e2e

import (
	"testing"

	"github.com/phoenixhv/phoenix/e2e/suite"
)

// TestSuite runs the suite both simulator backends pass on the model one;
// e2e/real runs it on real containers.
func TestSuite(t *testing.T) { suite.Run(t, suite.Model{}) }
