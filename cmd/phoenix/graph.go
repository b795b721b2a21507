package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/spec"
)

func newGraphCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "graph [-f] PATH... [-o text|dot|mermaid|json]",
		Short: "Show the clone lineage and, per guest, what it inherits and what it installs",
		Long: `Show the clone lineage of the specs: each template with the guests cloned from it,
and for each guest what it inherits from its template and what it installs itself,
in the order it installs them. -o dot and -o mermaid draw it for Graphviz and
Mermaid; -o json is {"guests": [...]}, parents first.`,
		Args: specArgs,
	}
	specPaths(cmd)
	output := cmd.Flags().StringP("output", "o", "text", "output format: "+strings.Join(spec.GraphFormats, ", "))
	format := cmd.Flags().String("format", "", "the old name of --output")
	deprecate(cmd, "format", "use -o/--output instead")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name, value, err := graphFormat(cmd, *output, *format)
		if err != nil {
			return err
		}
		if !slices.Contains(spec.GraphFormats, value) {
			return fmt.Errorf("unknown %s %q (one of %s)", name, value, strings.Join(spec.GraphFormats, ", "))
		}
		set, err := loadSpecs(cmd, specFiles(cmd, args))
		if err != nil {
			return err
		}
		res, err := spec.Resolve(set)
		if err != nil {
			return err
		}
		return res.WriteGraph(cmd.OutOrStdout(), value)
	}
	return cmd
}

// graphFormat returns the format asked for and the flag it was asked with, so
// that an error names the flag the user typed: -o, or --format, its old name.
func graphFormat(cmd *cobra.Command, output, format string) (name, value string, err error) {
	if !cmd.Flags().Changed("format") {
		return "--output", output, nil
	}
	if cmd.Flags().Changed("output") && output != format {
		return "", "", fmt.Errorf("-o %q and --format %q disagree: give -o alone", output, format)
	}
	return "--format", format, nil
}
