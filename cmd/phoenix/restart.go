package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/reconciler"
)

func newRestartCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restart -f PATH... NAME",
		Short: "Restart a running container of the deployment and wait until it is up",
		Long: `Reboot a running Container of the specs through the Proxmox VE API, then wait, as
apply does after a start, until its network is up and its GPU devices are there.

It refuses a guest that is not phoenix's or not this deployment's, a template and a
stopped container (phoenix apply starts a stopped one). Like apply, it holds the
cluster-wide lease while it works, so it never restarts a container under a running
apply or pass of run; --lock-timeout waits for the lease.

Exit status: 0 when the container is up again, 1 otherwise.`,
		Args: guestArg("restart"),
	}
	specPaths(cmd)
	lockTimeout := lockTimeoutFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkLockTimeout(*lockTimeout); err != nil {
			return err
		}
		o, lease, err := observeLeased(cmd.Context(), cmd, specFiles(cmd, nil), "phoenix restart", *lockTimeout)
		if err != nil {
			return err
		}
		defer o.close()
		defer releaseLease(cmd, lease)
		og, r, err := reconciler.ChoreGuest(o.res, o.obs, args[0], "restart")
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "Restarting %s (%s %d on %s)...\n", r.Name, r.Kind, og.VMID, og.Node)
		opts := reconciler.ApplyOptions{Redact: redactorOf(cmd.Context()).String, Log: logger(cmd)}
		err = reconciler.RestartGuest(lease.Context(), o.conn.cluster, o.conn.nodes, o.res, o.obs, r.Name, opts)
		if err := leaseKept(lease, err); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s restarted: its network is up and its devices are there.\n", r.Name)
		return nil
	}
	return cmd
}

// guestArg takes a chore's one argument, the guest's name, and wants the
// specs given with -f, where the name says which guest and whose.
func guestArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%s takes one guest's name, got %d arguments: phoenix %s -f PATH NAME", what, len(args), what)
		}
		if len(specFiles(cmd, nil)) == 0 {
			return errors.New("no spec files: give -f PATH, the specs that name the guest")
		}
		return nil
	}
}
