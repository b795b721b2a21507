package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/reconciler"
)

func newExecCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec -f PATH... NAME -- COMMAND [ARG...]",
		Short: "Run a command inside a running container of the deployment",
		Long: `Run COMMAND inside a running Container of the specs, the way the feature steps
run: pct exec on its node, through /bin/sh with every word quoted, so that none is
read by a shell (to use one, run sh -c '...'). What the command prints, on
standard output and standard error, is printed on standard output as it comes.

It refuses a guest that is not phoenix's or not this deployment's, a template and a
stopped container. It does not take the cluster-wide lease: it changes nothing
phoenix manages unless the command does.

Exit status: the command's; 1 when it could not be run.`,
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			switch {
			case dash < 0:
				return errors.New("exec: give the command after --: phoenix exec -f PATH NAME -- COMMAND [ARG...]")
			case dash != 1:
				return fmt.Errorf("exec takes one guest's name before --, got %d: phoenix exec -f PATH NAME -- COMMAND [ARG...]", dash)
			case len(args) == 1:
				return errors.New("exec: no command after --: phoenix exec -f PATH NAME -- COMMAND [ARG...]")
			}
			return guestArg("exec")(cmd, args[:1])
		},
	}
	specPaths(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		o, err := observeSpecs(cmd.Context(), cmd, specFiles(cmd, nil), os.Getenv)
		if err != nil {
			return err
		}
		defer o.close()
		out := cmd.OutOrStdout()
		streamed := false
		res, err := reconciler.ExecIn(cmd.Context(), o.conn.nodes, o.res, o.obs, args[0], args[1:], func(line string) {
			streamed = true
			fmt.Fprintln(out, line)
		})
		if err != nil {
			return err
		}
		if !streamed {
			// A node that cannot stream leaves the output in the result.
			fmt.Fprint(out, res.Stdout)
			fmt.Fprint(cmd.ErrOrStderr(), res.Stderr)
		}
		if res.ExitCode != 0 {
			return &exitError{code: res.ExitCode}
		}
		return nil
	}
	return cmd
}
