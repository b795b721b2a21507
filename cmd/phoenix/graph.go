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
		Use:   "graph -f PATH... [--format text|dot|mermaid|json]",
		Short: "Show the clone lineage and, per guest, what it inherits and what it installs",
		Args:  cobra.NoArgs,
	}
	paths := specPaths(cmd)
	format := cmd.Flags().String("format", "text", "output format: "+strings.Join(spec.GraphFormats, ", "))
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if !slices.Contains(spec.GraphFormats, *format) {
			return fmt.Errorf("unknown --format %q (one of %s)", *format, strings.Join(spec.GraphFormats, ", "))
		}
		set, err := loadSpecs(cmd, *paths)
		if err != nil {
			return err
		}
		res, err := spec.Resolve(set)
		if err != nil {
			return err
		}
		return res.WriteGraph(cmd.OutOrStdout(), *format)
	}
	return cmd
}
