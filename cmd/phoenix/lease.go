package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// The cluster-wide lease (reconciler/lease.go): apply holds it from before it
// observes until it has applied, run for each pass; plan and status take
// none.

// lockTimeoutFlag registers --lock-timeout.
func lockTimeoutFlag(cmd *cobra.Command) *time.Duration {
	return cmd.Flags().Duration("lock-timeout", 0,
		"how long to wait for the cluster-wide lease while another phoenix holds it (0: fail at once, naming the holder)")
}

func checkLockTimeout(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("--lock-timeout %s is negative", d)
	}
	return nil
}

// holderOf is this process as the lease names it to whoever waits.
func holderOf(command string, files []string) reconciler.Holder {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return reconciler.Holder{Host: host, PID: os.Getpid(), Command: command, Specs: specsDigest(files)}
}

// specsDigest identifies spec files by their contents, not their paths:
// two machines with the same checkout agree. Empty when a file cannot be
// read.
func specsDigest(files []string) string {
	var sums []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return ""
		}
		s := sha256.Sum256(b)
		sums = append(sums, hex.EncodeToString(s[:]))
	}
	slices.Sort(sums)
	all := sha256.New()
	for _, s := range sums {
		all.Write([]byte(s))
	}
	return hex.EncodeToString(all.Sum(nil))[:12]
}

// leaseOptions are the lease's options for a command that may wait, telling
// w who it waits for.
func leaseOptions(cmd *cobra.Command, wait time.Duration, w io.Writer) reconciler.LeaseOptions {
	return reconciler.LeaseOptions{Wait: wait, Log: logger(cmd), Waiting: func(h *reconciler.Holder) {
		fmt.Fprintf(w, "waiting up to %s for the lease held by %s\n", wait, holderName(h))
	}}
}

// holderName names a holder for a waiter; nil is one taking the lease now.
func holderName(h *reconciler.Holder) string {
	if h == nil {
		return "another phoenix, which is taking it now"
	}
	return h.Describe(time.Now())
}

// observeLeased is observeSpecs under the lease: the specs are loaded and
// the cluster connected, then the lease taken (waiting up to wait), then
// the cluster observed, so that the plan is made from a cluster nobody else
// changes. Release the lease, then close the observation.
func observeLeased(ctx context.Context, cmd *cobra.Command, paths []string, command string, wait time.Duration) (*observation, *reconciler.Lease, error) {
	set, err := loadSpecs(cmd, paths)
	if err != nil {
		return nil, nil, err
	}
	res, err := spec.Resolve(set)
	if err != nil {
		return nil, nil, err
	}
	conn, err := connect(ctx, res.Cluster, os.Getenv, logger(cmd))
	if err != nil {
		return nil, nil, err
	}
	lease, err := reconciler.AcquireLease(ctx, conn.cluster, conn.nodes, holderOf(command, set.Files),
		leaseOptions(cmd, wait, cmd.ErrOrStderr()))
	if err != nil {
		conn.close()
		if errors.Is(err, reconciler.ErrLeaseHeld) && wait == 0 {
			err = fmt.Errorf("%w; --lock-timeout DURATION waits for it", err)
		}
		return nil, nil, err
	}
	obs, err := reconciler.Observe(lease.Context(), conn.cluster, conn.nodes, res, reconciler.ObserveOptions{Log: logger(cmd)})
	if err != nil {
		releaseLease(cmd, lease)
		conn.close()
		return nil, nil, err
	}
	return &observation{res: res, conn: conn, obs: obs, files: set.Files}, lease, nil
}

// releaseLease lets the lease go, saying so when that fails (it expires by
// itself then).
func releaseLease(cmd *cobra.Command, lease *reconciler.Lease) {
	if err := lease.Release(context.Background()); err != nil {
		logger(cmd).Warn("lease", "error", err)
	}
}

// passLease is run's LoopOptions.Lease: each pass holds the lease.
func passLease(cmd *cobra.Command, conn *connection, paths []string, wait time.Duration) func(context.Context) (context.Context, func(), error) {
	log := logger(cmd)
	opts := reconciler.LeaseOptions{Wait: wait, Log: log, Waiting: func(h *reconciler.Holder) {
		log.Info("waiting for the lease", "holder", holderName(h), "lock_timeout", wait)
	}}
	return reconciler.LeaseEachPass(conn.cluster, conn.nodes, func() reconciler.Holder {
		var files []string
		if set, err := spec.Load(paths...); err == nil {
			files = set.Files
		}
		return holderOf("phoenix run", files)
	}, opts)
}

// leaseKept is a command's error, or the lost lease that stopped it.
func leaseKept(lease *reconciler.Lease, err error) error {
	if lost := lease.Lost(); lost != nil {
		return &exitError{code: 1, err: lost}
	}
	return err
}
