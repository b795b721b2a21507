package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/phoenixhv/phoenix/reconciler"
)

func newApplyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apply [-f] PATH... [--auto-approve] [--parallelism N] [--allow-replace] [--prune] [--target NAME]... [-o text|json] | apply PLANFILE",
		Short: "Converge the cluster to the specs: show the plan, confirm, apply it",
		Long: `Show the plan, ask for confirmation on a terminal (unless --auto-approve), then
carry it out: templates before their clones, independent guests at once. Each
change of the plan is made, or reported skipped when it has become true
meanwhile; nothing the plan did not show is done.

Progress: one line per change and per script that changed something. A step that
runs long reports itself every 10 s with the last line it printed; on a terminal a
live line per guest shows what it runs, for how long, and its last output line.
--quiet prints failures and the summary only.

The first SIGINT or SIGTERM lets the changes in flight finish and be recorded and
starts no new one; a second aborts them. Either way the next apply resumes.

apply PLANFILE carries out a plan saved with plan --out PLANFILE, exactly, without
asking; it refuses when a spec file or the cluster changed since the plan was made.

--target NAME (repeatable) applies only the named guests and what they need (their
templates, the guests they depend on, with theirs), as plan --target shows; it
deletes nothing, and --prune is refused with it.

One phoenix writes at a time: apply holds the cluster-wide lease (a lock of the
cluster file system, /etc/pve/priv/lock/phoenix) from before it observes until it
is done. While another apply or a pass of run holds it, apply fails at once and
names the holder, or with --lock-timeout waits for it that long. A lease that
cannot be renewed stops the apply and says so.

Exit status: 0 when every guest converged, 1 otherwise (a failure, a guest the plan
could not converge, a stop, the lease held by another).`,
		Args: specArgs,
	}
	specPaths(cmd)
	autoApprove := cmd.Flags().Bool("auto-approve", false, "apply without asking")
	parallelism := cmd.Flags().Int("parallelism", 0, "guests converged at once (default: 8 per online node, at most 32; never more than 8 on one node)")
	allowReplace := cmd.Flags().Bool("allow-replace", false, "destroy and recreate guests whose parent or privilege mode changed")
	prune := cmd.Flags().Bool("prune", false, "delete this deployment's guests that are in no spec (up to --prune-max at once)")
	pruneMax := pruneMaxFlag(cmd)
	removeRaw := cmd.Flags().Bool("remove-raw-gpu-lines", false, "remove the raw lxc.* lines that pass NVIDIA devices from config files (no API can)")
	output := cmd.Flags().StringP("output", "o", "text", "output format: text or json")
	quiet := cmd.Flags().BoolP("quiet", "q", false, "print failures and the summary only, not each step")
	lockTimeout := lockTimeoutFlag(cmd)
	targets := targetFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkTargetFlags(*targets, *prune); err != nil {
			return err
		}
		if err := checkLockTimeout(*lockTimeout); err != nil {
			return err
		}
		if *output != "text" && *output != "json" {
			return fmt.Errorf("unknown --output %q (text or json)", *output)
		}
		if *parallelism < 0 {
			return fmt.Errorf("--parallelism must be at least 1 (or 0, the default derived from the cluster), got %d", *parallelism)
		}
		if *pruneMax < 0 {
			return fmt.Errorf("--prune-max must be 0 (the default limit) or more, got %d", *pruneMax)
		}
		opts := reconciler.ApplyOptions{
			PlanOptions: reconciler.PlanOptions{AllowReplace: *allowReplace, Prune: *prune, PruneMax: *pruneMax, RemoveRawGPULines: *removeRaw, Targets: *targets},
			Parallelism: *parallelism, Redact: redactorOf(cmd.Context()).String,
		}
		flags := applyFlags{autoApprove: *autoApprove, output: *output, quiet: *quiet, lockTimeout: *lockTimeout}
		saved, err := readSavedPlan(args)
		if err != nil {
			return err
		}
		if saved != nil {
			return applySaved(cmd.Context(), cmd, saved, opts, flags)
		}
		return runApply(cmd.Context(), cmd, specFiles(cmd, args), opts, flags)
	}
	return cmd
}

// applyFlags are apply's flags that shape its output and its questions.
type applyFlags struct {
	autoApprove bool
	output      string
	quiet       bool
	// lockTimeout is how long to wait for the lease another holds.
	lockTimeout time.Duration
}

func runApply(ctx context.Context, cmd *cobra.Command, paths []string, opts reconciler.ApplyOptions, flags applyFlags) error {
	o, lease, err := observeLeased(ctx, cmd, paths, "phoenix apply", flags.lockTimeout)
	if err != nil {
		return err
	}
	defer o.close()
	defer releaseLease(cmd, lease)
	if opts.Targets, err = resolveTargets(o.res, opts.Targets); err != nil {
		return err
	}
	return leaseKept(lease, carryOut(lease.Context(), cmd, o, reconciler.MakePlan(o.res, o.obs, opts.PlanOptions), opts, flags))
}

// carryOut shows the plan, asks unless told not to, applies it and reports.
func carryOut(ctx context.Context, cmd *cobra.Command, o *observation, plan *reconciler.Plan, opts reconciler.ApplyOptions, flags applyFlags) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	// In JSON mode stdout carries one document; the plan and progress go to stderr.
	human := out
	if flags.output == "json" {
		human = errOut
	}
	if err := plan.WriteText(human, reconciler.TextOptions{Color: colorful(human)}); err != nil {
		return err
	}
	if !plan.HasChanges() {
		if flags.output == "json" {
			return (&reconciler.ApplyResult{}).WriteJSON(out, plan)
		}
		if plan.HasErrors() {
			return &exitError{code: 1}
		}
		return nil
	}
	if !flags.autoApprove {
		ok, err := confirm(cmd.InOrStdin(), human)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(human, "Apply cancelled.")
			return &exitError{code: 1}
		}
	}
	result := applyInterruptibly(ctx, human, o, plan, opts, progressModeFor(human, flags.quiet))
	if err := result.WriteSummary(human, plan); err != nil {
		return err
	}
	if flags.output == "json" {
		if err := result.WriteJSON(out, plan); err != nil {
			return err
		}
	}
	if result.Failed() || plan.HasErrors() {
		return &exitError{code: 1}
	}
	return nil
}

// applyInterruptibly runs the engine with progress, and stops it in two
// stages on SIGINT or SIGTERM, saying so.
func applyInterruptibly(ctx context.Context, w io.Writer, o *observation, plan *reconciler.Plan, opts reconciler.ApplyOptions, mode progressMode) *reconciler.ApplyResult {
	pr := newProgress(w, mode)
	in := onInterrupt(ctx, func(s os.Signal) {
		pr.note(fmt.Sprintf("%s: stopping after the changes in flight, which finish and are recorded; send it again to abort them", s))
	}, func() { pr.note("aborting the changes in flight; the next apply resumes from where they were cut off") })
	defer in.done()
	opts.Events, opts.Stop = pr.event, in.stop
	result := reconciler.Apply(in.ctx, o.conn.cluster, o.conn.nodes, o.res, o.obs, plan, opts)
	pr.close()
	return result
}

// progressModeFor picks how progress shows: live lines on a terminal, plain
// lines elsewhere, failures only with --quiet.
func progressModeFor(w io.Writer, quiet bool) progressMode {
	switch {
	case quiet:
		return progressQuiet
	case isTerminal(w):
		return progressLive
	}
	return progressPlain
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
