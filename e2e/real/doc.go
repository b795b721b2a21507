// Package real is the real-guest tier: the phoenix CLI converges a lineage
// of every built-in feature on real Debian 12 LXC containers behind the
// simulator (a world with spec.realGuests), with the downloads the feature
// scripts make served by the stand-in server of hack/standin; then the tests
// check inside the containers that what each verify claims is true, apply
// again to see nothing change, and kill phoenix mid-apply to see a re-run
// converge. TestSuite runs the suite of e2e/suite, which the model backend
// passes too (e2e/suite_test.go), on real containers. It needs root and the lxc tools: without them its tests skip,
// or fail where PHOENIX_REQUIRE_TOOLS is set (CI).
package real
