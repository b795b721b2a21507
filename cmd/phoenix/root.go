package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		PersistentPreRunE: checkLogFlags,
		Use:               "phoenix",
		Short:             "Declarative reconciler for Proxmox VE LXC containers with NVIDIA GPUs",
		Long: `phoenix keeps Proxmox VE LXC containers, the templates they are cloned from and
the features installed in them (NVIDIA driver, GPU passthrough, CUDA, docker, ...)
the way YAML specs in a git repository describe them.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().String("log-format", "text", "log format: text or json")
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(newValidateCmd(), newGraphCmd(), newSimCmd(), newPlanCmd(), newApplyCmd(), newRunCmd(), newStatusCmd(), newDemoCmd(), newSchemaCmd())
	return root
}

// specPaths registers the -f flag every spec-reading command takes.
func specPaths(cmd *cobra.Command) *[]string {
	var paths []string
	cmd.Flags().StringArrayVarP(&paths, "filename", "f", nil, "spec file or directory (read recursively); repeatable")
	_ = cmd.MarkFlagRequired("filename")
	return &paths
}

// logger is where commands log: structured lines on standard error, in the
// format and from the level the flags ask for. Nothing phoenix logs carries a
// secret: configs are not logged, credentials never leave the providers.
func logger(cmd *cobra.Command) *slog.Logger {
	format, _ := cmd.Flags().GetString("log-format")
	levelName, _ := cmd.Flags().GetString("log-level")
	var level slog.Level
	if err := level.UnmarshalText([]byte(levelName)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), opts))
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), opts))
}

func checkLogFlags(cmd *cobra.Command, _ []string) error {
	format, _ := cmd.Flags().GetString("log-format")
	if format != "text" && format != "json" {
		return fmt.Errorf("unknown --log-format %q (text or json)", format)
	}
	levelName, _ := cmd.Flags().GetString("log-level")
	var level slog.Level
	if err := level.UnmarshalText([]byte(levelName)); err != nil {
		return fmt.Errorf("unknown --log-level %q (debug, info, warn or error)", levelName)
	}
	return nil
}
