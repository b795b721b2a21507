package sshd

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestMain fails the package if goroutines outlive the tests: every test
// closes its servers and clients, so anything left over is a leak in the
// server (or a test that forgot to clean up).
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		// Client-side goroutines wind down asynchronously after Close.
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if after := runtime.NumGoroutine(); after > before {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "goroutine leak: %d before tests, %d after\n%s", before, after, buf[:runtime.Stack(buf, true)])
			code = 1
		}
	}
	os.Exit(code)
}
