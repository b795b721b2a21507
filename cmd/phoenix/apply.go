package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/phoenixhv/phoenix/reconciler"
)

func newApplyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apply [-f] PATH... [--auto-approve] [--parallelism N] [--allow-replace] [--prune] [-o text|json]",
		Short: "Converge the cluster to the specs: show the plan, confirm, apply it",
		Long: `Show the plan, ask for confirmation on a terminal (unless --auto-approve), then
converge every guest: templates before their clones, independent guests at once.
Progress is printed one line per step. Exits 1 if anything failed.`,
		Args: specArgs,
	}
	specPaths(cmd)
	autoApprove := cmd.Flags().Bool("auto-approve", false, "apply without asking")
	parallelism := cmd.Flags().Int("parallelism", 4, "guests converged at once")
	allowReplace := cmd.Flags().Bool("allow-replace", false, "destroy and recreate guests whose parent or privilege mode changed")
	prune := cmd.Flags().Bool("prune", false, "delete managed guests that are in no spec")
	output := cmd.Flags().StringP("output", "o", "text", "output format: text or json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *output != "text" && *output != "json" {
			return fmt.Errorf("unknown --output %q (text or json)", *output)
		}
		if *parallelism < 1 {
			return fmt.Errorf("--parallelism must be at least 1")
		}
		opts := reconciler.ApplyOptions{
			PlanOptions: reconciler.PlanOptions{AllowReplace: *allowReplace, Prune: *prune},
			Parallelism: *parallelism,
		}
		return runApply(cmd.Context(), cmd, specFiles(cmd, args), opts, *autoApprove, *output)
	}
	return cmd
}

func runApply(ctx context.Context, cmd *cobra.Command, paths []string, opts reconciler.ApplyOptions, autoApprove bool, output string) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	o, err := observeSpecs(ctx, cmd, paths, os.Getenv)
	if err != nil {
		return err
	}
	defer o.close()
	plan := reconciler.MakePlan(o.res, o.obs, opts.PlanOptions)
	// In JSON mode stdout carries one document; the plan and progress go to stderr.
	human := out
	if output == "json" {
		human = errOut
	}
	if err := plan.WriteText(human, reconciler.TextOptions{Color: colorful(human)}); err != nil {
		return err
	}
	if !plan.HasChanges() {
		if output == "json" {
			return (&reconciler.ApplyResult{}).WriteJSON(out, plan)
		}
		if plan.HasErrors() {
			return &exitError{code: 1}
		}
		return nil
	}
	if !autoApprove {
		ok, err := confirm(cmd.InOrStdin(), human)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(human, "Apply cancelled.")
			return &exitError{code: 1}
		}
	}
	pr := newProgress(human, progressPlain)
	opts.Events = pr.event
	result := reconciler.Apply(ctx, o.conn.cluster, o.conn.nodes, o.res, o.obs, plan, opts)
	pr.close()
	if err := result.WriteSummary(human, plan); err != nil {
		return err
	}
	if output == "json" {
		if err := result.WriteJSON(out, plan); err != nil {
			return err
		}
	}
	if result.Failed() || plan.HasErrors() {
		return &exitError{code: 1}
	}
	return nil
}

// confirm asks on a terminal; without one, apply needs --auto-approve.
func confirm(in io.Reader, out io.Writer) (bool, error) {
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, errors.New("standard input is not a terminal: run with --auto-approve to apply without confirmation")
	}
	fmt.Fprint(out, "\nApply these changes? Only 'yes' will be accepted: ")
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return strings.TrimSpace(line) == "yes", nil
}
