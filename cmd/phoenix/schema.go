package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/spec"
)

func newSchemaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema [-o json] [--out FILE]",
		Short: "Print the JSON Schema of spec documents, for editors",
		Long: `Print the JSON Schema (draft 2020-12) of a spec document: every field of a
Cluster, Template, Container and Feature, with its type, format, range and
description. It is generated from the types phoenix decodes specs into, so it
describes exactly the fields phoenix reads. The repository keeps it in
schema/phoenix.schema.json; --out FILE writes it there instead of to standard
output. -o is the output format, as everywhere in phoenix: json, the only one.

Editors that use the YAML language server (VS Code's YAML extension, Neovim's
yamlls, Helix, Zed, ...) complete, document and check a spec file as you type
when the file names the schema in this comment, by convention its first line:

  # yaml-language-server: $schema=<path or URL to schema/phoenix.schema.json>

The path is relative to the spec file, e.g. ../schema/phoenix.schema.json from
examples/homelab/. The schema checks each document on its own; phoenix validate also
checks what needs the whole set (that a template exists, unique VMIDs, feature
requirements, inherited settings) and stays the judge.`,
		Args: noArgs("give --out FILE to write the schema to a file"),
	}
	output := cmd.Flags().StringP("output", "o", "json", "output format: json")
	file := cmd.Flags().String("out", "", "write the schema to `FILE` instead of standard output")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *output != "json" {
			return fmt.Errorf("unknown --output %q (json; to write to a file, give --out FILE)", *output)
		}
		schema, err := spec.JSONSchema()
		if err != nil {
			return err
		}
		if *file != "" {
			return os.WriteFile(*file, schema, 0o644)
		}
		_, err = cmd.OutOrStdout().Write(schema)
		return err
	}
	return cmd
}
