// Package archtest checks that phoenix's packages keep the dependency rules of
// the design, over test code too:
// the spec imports nothing of phoenix, the reconciler no provider, the
// simulator neither the reconciler nor the API adapter, which in turn does not
// import the simulator. A simulator that shared phoenix's logic would hide
// phoenix's bugs. The package holds only that test; it reads every package's
// imports, tests' included, with `go list`.
package archtest
