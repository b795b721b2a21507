package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

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
		Version:       versionLine(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	root.Flags().BoolP("version", "v", false, "print the version, commit and Go version phoenix was built from")
	root.PersistentFlags().String("log-format", "text", "log format: text or json")
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn or error")
	sim := newSimCmd()
	sim.Args = noArgs("the world file is given with --world")
	root.AddCommand(newValidateCmd(), newGraphCmd(), sim, newPlanCmd(), newApplyCmd(), newRunCmd(), newStatusCmd(), newRestartCmd(), newExecCmd(), newDemoCmd(), newSchemaCmd(), newVersionCmd(), newImportCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version phoenix was built from",
		Long: `Print the version phoenix was built as (set by make build from git describe; dev
otherwise), the commit, whether the tree had changes not committed, and the Go
version. phoenix --version prints the same.`,
		Args: noArgs("it takes none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", cmd.Root().Name(), cmd.Root().Version)
			return err
		},
	}
}

// specPaths registers the -f flag every spec-reading command takes, with the
// paths it reads when given none. The paths may be given as arguments too, as in
// phoenix plan examples/homelab/: such a command says Args: specArgs and reads its paths
// with specFiles.
func specPaths(cmd *cobra.Command, defaults ...string) {
	cmd.Flags().StringArrayP("filename", "f", defaults, "spec file or directory (read recursively); repeatable; the paths may also be given as arguments")
}

// specFiles returns the spec paths a command was given: those of -f, then the
// arguments. Arguments alone replace -f's default rather than add to it, so that
// phoenix demo mine/ does not read examples/homelab/ as well.
func specFiles(cmd *cobra.Command, args []string) []string {
	files, _ := cmd.Flags().GetStringArray("filename")
	if len(args) > 0 && !cmd.Flags().Changed("filename") {
		files = nil
	}
	return slices.Concat(files, args)
}

// specArgs takes a spec-reading command's arguments as spec paths, and refuses
// the command when it has none at all.
func specArgs(cmd *cobra.Command, args []string) error {
	if len(specFiles(cmd, args)) == 0 {
		return errors.New("no spec files: give -f PATH or the path as an argument")
	}
	return nil
}

// noArgs refuses any argument to a command that takes none, with a hint at what
// the user may have meant, for people used to giving spec paths as arguments.
func noArgs(hint string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("%s: unexpected argument %q: %s", cmd.Name(), args[0], hint)
		}
		return nil
	}
}

// deprecate hides a flag kept for old scripts and has it say, when used, what
// replaces it. cobra's MarkDeprecated would say so on standard output, in the
// middle of the JSON or dot a script is reading; this says it on standard error.
func deprecate(cmd *cobra.Command, name, instead string) {
	f := cmd.Flags().Lookup(name)
	f.Hidden = true
	f.Value = &noticeValue{flagValue: f.Value, notice: func() {
		fmt.Fprintf(cmd.ErrOrStderr(), "Flag --%s has been deprecated, %s\n", name, instead)
	}}
}

// flagValue is pflag.Value, named here so that pflag stays an indirect
// dependency in go.mod.
type flagValue interface {
	String() string
	Set(string) error
	Type() string
}

// noticeValue is a flag's value that gives a notice each time it is set.
type noticeValue struct {
	flagValue
	notice func()
}

func (v *noticeValue) Set(s string) error {
	v.notice()
	return v.flagValue.Set(s)
}

// logger is where commands log: structured lines on standard error, in the
// format and from the level the flags ask for. Nothing phoenix logs carries a
// secret: configs are not logged, credentials never leave the providers, and
// the handler redacts the values of the environment's credentials anyway.
func logger(cmd *cobra.Command) *slog.Logger {
	format, _ := cmd.Flags().GetString("log-format")
	levelName, _ := cmd.Flags().GetString("log-level")
	var level slog.Level
	if err := level.UnmarshalText([]byte(levelName)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(cmd.ErrOrStderr(), opts)
	if format == "json" {
		h = slog.NewJSONHandler(cmd.ErrOrStderr(), opts)
	}
	return slog.New(redactorOf(cmd.Context()).Handler(h))
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
