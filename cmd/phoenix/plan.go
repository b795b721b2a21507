package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/phoenixhv/phoenix/reconciler"
)

// Exit codes of plan with --detailed-exitcode, as terraform has them.
const exitChanges = 2

func newPlanCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan [-f] PATH... [--detailed-exitcode] [-o text|json|markdown] [--out PLANFILE] [--target NAME]...",
		Short: "Show what apply would change, and why, without changing anything",
		Long: `Observe the cluster, compare it with the specs and print the changes apply would
make, grouped by guest: + create, ~ change, -/+ replace, - delete, each with its
reason; ! marks a guest that cannot be converged, with the kind of its problem
(conflict, spec, flag, node, observe, blocked). Before + create it checks the
node, storage, OS template and bridges the guest needs.

-o markdown writes the plan for a comment on a pull request: the summary as a
heading, a warning per guest that cannot be converged, each guest's changes
folded (examples/ci has workflows that post it).

--out PLANFILE (terraform's -out PLANFILE works too) also saves the plan, with the
digests of the spec files and of the cluster it was made from, for apply PLANFILE.

--target NAME (repeatable) plans only the named guests and what they need: the
templates they are cloned from and the guests they depend on, with theirs. The
others are neither shown nor touched, and a targeted plan deletes nothing
(--prune is refused with --target).

Guests carrying the phoenix-managed tag that are not this deployment's (another
deployment's, a hand-made clone or a restored backup of a managed guest, a VM) are
listed with the reason and never changed or deleted. --prune plans deleting this
deployment's guests that are in no spec, up to --prune-max at once; a prune that
would delete more shows the count as a problem and deletes nothing.

Exit status: 0 when the plan was made (with --detailed-exitcode: only when there is
nothing to do), 1 on errors (including guests that cannot be converged), 2 with
--detailed-exitcode when there are changes.`,
		Args: specArgs,
	}
	specPaths(cmd)
	detailed := cmd.Flags().Bool("detailed-exitcode", false, "exit 2 when there are changes")
	output := cmd.Flags().StringP("output", "o", "text", "output format: text, json or markdown")
	allowReplace := cmd.Flags().Bool("allow-replace", false, "plan replacements (destroy and recreate) instead of refusing them")
	prune := cmd.Flags().Bool("prune", false, "plan deleting this deployment's guests that are in no spec")
	pruneMax := pruneMaxFlag(cmd)
	removeRaw := cmd.Flags().Bool("remove-raw-gpu-lines", false, "remove the raw lxc.* lines that pass NVIDIA devices from config files (no API can)")
	saveTo := cmd.Flags().String("out", "", "also save the plan to `PLANFILE`, for apply PLANFILE")
	targets := targetFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *output != "text" && *output != "json" && *output != "markdown" {
			return fmt.Errorf("unknown --output %q (text, json or markdown)", *output)
		}
		if *pruneMax < 0 {
			return fmt.Errorf("--prune-max must be 0 (the default limit) or more, got %d", *pruneMax)
		}
		if err := checkTargetFlags(*targets, *prune); err != nil {
			return err
		}
		opts := reconciler.PlanOptions{AllowReplace: *allowReplace, Prune: *prune, PruneMax: *pruneMax, RemoveRawGPULines: *removeRaw}
		o, err := observeSpecs(cmd.Context(), cmd, specFiles(cmd, args), os.Getenv)
		if err != nil {
			return err
		}
		defer o.close()
		if opts.Targets, err = resolveTargets(o.res, *targets); err != nil {
			return err
		}
		plan := reconciler.MakePlan(o.res, o.obs, opts)
		if *saveTo != "" {
			if err := savePlan(*saveTo, plan, o, opts); err != nil {
				return err
			}
		}
		out := cmd.OutOrStdout()
		switch *output {
		case "json":
			err = plan.WriteJSON(out)
		case "markdown":
			err = plan.WriteMarkdown(out)
		default:
			err = plan.WriteText(out, reconciler.TextOptions{Color: colorful(out)})
		}
		switch {
		case err != nil:
			return err
		case plan.HasErrors():
			return &exitError{code: 1}
		case *detailed && plan.HasChanges():
			return &exitError{code: exitChanges}
		}
		return nil
	}
	return cmd
}

// pruneMaxFlag adds --prune-max, which plan, apply and run share.
func pruneMaxFlag(cmd *cobra.Command) *int {
	return cmd.Flags().Int("prune-max", 0, fmt.Sprintf("the most guests one prune deletes; 0 is a quarter of the deployment's guests, at least 1, at most %d: "+
		"a prune that would delete more deletes nothing", reconciler.DefaultPruneMax))
}

// colorful reports whether to colour output: a terminal, and NO_COLOR unset.
func colorful(w io.Writer) bool {
	if _, set := os.LookupEnv("NO_COLOR"); set {
		return false
	}
	return isTerminal(w)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := unwrapWriter(w).(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
