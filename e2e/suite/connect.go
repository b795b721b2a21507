// Package suite is the e2e suite both simulator backends pass: the model
// one (every container modelled) and the real-guest one (every container a
// real LXC container, providers/sim/real.go). Run drives phoenix as the e2e
// rig does, with the real providers over HTTPS and SSH to the simulator,
// through scenarios whose assertions hold on either backend; a Backend says
// how to start the simulator and how to look inside a guest.
package suite

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/ssh"
	"github.com/phoenixhv/phoenix/spec"
)

// Connect makes phoenix's providers for a simulator, as phoenix apply makes
// them from its environment: the API client (polling tasks fast) and the SSH
// pool with the nodes' addresses the API lists. The pool closes when the
// test ends.
func Connect(t testing.TB, env map[string]string, res *spec.Resolution, log *slog.Logger) (*proxmox.Client, *ssh.Pool) {
	t.Helper()
	getenv := func(k string) string { return env[k] }
	cfg, err := proxmox.ConfigFromEnv(getenv, res.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TaskPoll, cfg.TaskPollMax = 2*time.Millisecond, 50*time.Millisecond
	client, err := proxmox.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	scfg, err := ssh.ConfigFromEnv(getenv, res.Cluster.SSH)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := client.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	addresses := map[string]string{}
	for _, n := range nodes {
		addresses[n.Name] = n.IP
	}
	scfg.Discovered(addresses)
	pool, err := ssh.NewPool(scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pool.Close() })
	return client, pool
}
