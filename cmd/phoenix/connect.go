package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/providers/local"
	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/ssh"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// EnvNodeAccess chooses how phoenix runs commands on nodes: ssh (default), or
// local when phoenix runs on the only node it manages.
const EnvNodeAccess = "PHOENIX_NODE_ACCESS"

// connection is the wired outside world: the API client and the nodes.
type connection struct {
	// cluster redacts the descriptions it writes (see redactedClient).
	cluster *redactedClient
	nodes   reconciler.NodeOf
	close   func()
}

// connect builds the providers from the environment and the Cluster spec. The
// SSH pool is made on first use, so that commands that never reach a node do
// not need SSH settings.
func connect(ctx context.Context, cs spec.ClusterSpec, getenv func(string) string, log *slog.Logger) (*connection, error) {
	return connectWith(ctx, cs, getenv, log, nil)
}

// connectWith is connect with a wrapper around the API transport (metrics).
func connectWith(ctx context.Context, cs spec.ClusterSpec, getenv func(string) string, log *slog.Logger,
	wrap func(http.RoundTripper) http.RoundTripper) (*connection, error) {
	cfg, err := proxmox.ConfigFromEnv(getenv, cs)
	if err != nil {
		return nil, err
	}
	cfg.WrapTransport = wrap
	client, err := proxmox.New(ctx, cfg, log)
	if err != nil {
		// New's errors name the endpoint and the variable to check.
		return nil, err
	}
	red := redactorOf(ctx)
	warnShortSecrets(log, red)
	conn := &connection{cluster: &redactedClient{Client: client, red: red}, close: func() {}}
	if getenv(EnvNodeAccess) == "local" {
		host, _ := os.Hostname()
		conn.nodes = func(name string) (reconciler.Node, error) {
			if name != host {
				return nil, fmt.Errorf("%s=local runs commands on this host (%s) only, not on node %s", EnvNodeAccess, host, name)
			}
			return local.New(name), nil
		}
		return conn, nil
	}
	// The pool is made on first use; a failure to make it is not kept, so
	// that a fixed setting (a known_hosts file created) counts at the next
	// command.
	var (
		mu   sync.Mutex
		pool *ssh.Pool
	)
	conn.nodes = func(name string) (reconciler.Node, error) {
		mu.Lock()
		defer mu.Unlock()
		if pool == nil {
			p, err := newPool(client, cs, getenv)
			if err != nil {
				return nil, err
			}
			pool = p
		}
		return pool.Node(name)
	}
	conn.close = func() {
		mu.Lock()
		defer mu.Unlock()
		if pool != nil {
			_ = pool.Close()
		}
	}
	return conn, nil
}

// newPool reads the SSH settings (environment and Cluster spec); the nodes the
// spec pins no address for are found through /cluster/status when they are
// dialled, looked up again when the list is old or a dial fails.
func newPool(client *proxmox.Client, cs spec.ClusterSpec, getenv func(string) string) (*ssh.Pool, error) {
	cfg, err := ssh.ConfigFromEnv(getenv, cs.SSH)
	if err != nil {
		return nil, err
	}
	pool, err := ssh.NewPool(cfg)
	if err != nil {
		return nil, err
	}
	pool.SetDiscovery(func(ctx context.Context) (map[string]string, error) {
		nodes, err := client.Nodes(ctx)
		if err != nil {
			return nil, err
		}
		addresses := map[string]string{}
		for _, n := range nodes {
			addresses[n.Name] = n.IP
		}
		return addresses, nil
	}, 0)
	return pool, nil
}

// observation is where plan, apply and status start: the resolved specs, the
// connection to the cluster and what was observed. Close it when done.
type observation struct {
	res  *spec.Resolution
	conn *connection
	obs  *reconciler.Observed
	// files are the spec files read.
	files []string
}

func (o *observation) close() { o.conn.close() }

// observeSpecs loads and resolves the specs, connects, and observes.
func observeSpecs(ctx context.Context, cmd *cobra.Command, paths []string, getenv func(string) string) (*observation, error) {
	set, err := loadSpecs(cmd, paths)
	if err != nil {
		return nil, err
	}
	res, err := spec.Resolve(set)
	if err != nil {
		return nil, err
	}
	conn, err := connect(ctx, res.Cluster, getenv, logger(cmd))
	if err != nil {
		return nil, err
	}
	obs, err := reconciler.Observe(ctx, conn.cluster, conn.nodes, res, reconciler.ObserveOptions{Log: logger(cmd)})
	if err != nil {
		conn.close()
		return nil, err
	}
	return &observation{res: res, conn: conn, obs: obs, files: set.Files}, nil
}
