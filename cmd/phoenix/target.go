package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// targetFlag adds --target, which plan and apply share.
func targetFlag(cmd *cobra.Command) *[]string {
	return cmd.Flags().StringArray("target", nil, "plan only this guest and what it needs (its templates, the guests it depends on); repeatable")
}

// errTargetPrune refuses --prune in a targeted run: deleting what no spec
// names is a judgement on the whole specs, which a targeted run does not
// make.
var errTargetPrune = errors.New("--prune cannot be combined with --target: a targeted run plans only some guests and deletes nothing; run without --target to prune")

// checkTargetFlags refuses the flags a targeted run cannot take.
func checkTargetFlags(targets []string, prune bool) error {
	if len(targets) > 0 && prune {
		return errTargetPrune
	}
	return nil
}

// resolveTargets checks --target's names against the specs and returns them
// as the specs spell them (none without --target).
func resolveTargets(res *spec.Resolution, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	return reconciler.ResolveTargets(res, names)
}
