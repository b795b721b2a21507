package real

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/e2e/suite"
	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/providers/sim/lxc"
)

// TestSuite runs the suite the model backend passes (e2e/suite_test.go) on
// real containers: the same scenarios, the same assertions.
func TestSuite(t *testing.T) {
	if err := lxc.Available(); err != nil {
		testtool.Unable(t, "%v: the real-guest suite must run here", err)
	}
	cache := os.Getenv("PHOENIX_SIM_CACHE")
	if cache == "" {
		cache = lxc.DefaultCacheDir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	host, err := lxc.Prepare(ctx, lxc.HostOptions{CacheDir: cache, Log: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after the simulator removed its
	// containers, also when the suite failed.
	t.Cleanup(func() {
		if err := host.Close(); err != nil {
			t.Error(err)
		}
	})
	start := time.Now()
	suite.Run(t, suite.Real{Host: host})
	t.Logf("the suite took %.1fs on real containers", time.Since(start).Seconds())
}
