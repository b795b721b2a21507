package main

import (
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "phoenix",
		Short: "Declarative reconciler for Proxmox VE LXC containers with NVIDIA GPUs",
		Long: `phoenix keeps Proxmox VE LXC containers, the templates they are cloned from and
the features installed in them (NVIDIA driver, GPU passthrough, CUDA, docker, ...)
the way YAML specs in a git repository describe them.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newValidateCmd(), newGraphCmd(), newSimCmd(), newPlanCmd(), newApplyCmd())
	return root
}

// specPaths registers the -f flag every spec-reading command takes.
func specPaths(cmd *cobra.Command) *[]string {
	var paths []string
	cmd.Flags().StringArrayVarP(&paths, "filename", "f", nil, "spec file or directory (read recursively); repeatable")
	_ = cmd.MarkFlagRequired("filename")
	return &paths
}

// logger is where commands log: standard error, warnings and above.
func logger(cmd *cobra.Command) *slog.Logger {
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}
