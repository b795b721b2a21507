package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/spec"
)

func newValidateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate [-f] PATH...",
		Short: "Check spec files and report every problem as FILE:LINE: message",
		Long: `Check spec files and report every problem at once, each as FILE:LINE: message:
YAML syntax errors, unknown fields, wrong types, and what needs the whole set
(templates that exist, unique VMIDs, feature requirements). The paths are files
or directories, given with -f or as arguments. Exits 0 when the specs are valid
and 1 otherwise.`,
		Args: specArgs,
	}
	specPaths(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		set, err := loadSpecs(cmd, specFiles(cmd, args))
		if err != nil {
			return err
		}
		var templates, containers int
		for _, g := range set.Guests {
			if g.Kind == spec.KindTemplate {
				templates++
			} else {
				containers++
			}
		}
		fmt.Fprintf(cmd.OutOrStdout(), "valid: %s, %s, %s in %s\n",
			plural(templates, "template"), plural(containers, "container"),
			plural(len(set.Features), "feature"), plural(len(set.Files), "file"))
		return nil
	}
	return cmd
}

// loadSpecs loads and validates spec files; on problems it prints each one to
// stderr and returns an exit status 1 that needs no further message.
func loadSpecs(cmd *cobra.Command, paths []string) (*spec.Set, error) {
	set, err := spec.Load(paths...)
	var diags spec.Diagnostics
	if errors.As(err, &diags) {
		for _, d := range diags {
			fmt.Fprintln(cmd.ErrOrStderr(), d)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "%s found\n", plural(len(diags), "problem"))
		return nil, &exitError{code: 1}
	}
	return set, err
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
