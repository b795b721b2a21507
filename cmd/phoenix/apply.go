package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/phoenixhv/phoenix/reconciler"
)

func newApplyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apply -f PATH... [--auto-approve] [--parallelism N] [--allow-replace] [--prune] [-o text|json]",
		Short: "Converge the cluster to the specs: show the plan, confirm, apply it",
		Long: `Show the plan, ask for confirmation on a terminal (unless --auto-approve), then
converge every guest: templates before their clones, independent guests at once.
Progress is printed one line per step. Exits 1 if anything failed.`,
		Args: cobra.NoArgs,
	}
	paths := specPaths(cmd)
	autoApprove := cmd.Flags().Bool("auto-approve", false, "apply without asking")
	parallelism := cmd.Flags().Int("parallelism", 4, "guests converged at once")
	allowReplace := cmd.Flags().Bool("allow-replace", false, "destroy and recreate guests whose parent or privilege mode changed")
	prune := cmd.Flags().Bool("prune", false, "delete managed guests that are in no spec")
	output := cmd.Flags().StringP("output", "o", "text", "output format: text or json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *output != "text" && *output != "json" {
			return fmt.Errorf("unknown --output %q (text or json)", *output)
		}
		if *parallelism < 1 {
			return fmt.Errorf("--parallelism must be at least 1")
		}
		opts := reconciler.ApplyOptions{
			PlanOptions: reconciler.PlanOptions{AllowReplace: *allowReplace, Prune: *prune},
			Parallelism: *parallelism,
		}
		return runApply(cmd.Context(), cmd, *paths, opts, *autoApprove, *output)
	}
	return cmd
}

func runApply(ctx context.Context, cmd *cobra.Command, paths []string, opts reconciler.ApplyOptions, autoApprove bool, output string) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	o, err := observeSpecs(ctx, cmd, paths, os.Getenv)
	if err != nil {
		return err
	}
	defer o.close()
	plan := reconciler.MakePlan(o.res, o.obs, opts.PlanOptions)
	// In JSON mode stdout carries one document; the plan and progress go to stderr.
	human := out
	if output == "json" {
		human = errOut
	}
	if err := plan.WriteText(human, reconciler.TextOptions{Color: colorful(human)}); err != nil {
		return err
	}
	if !plan.HasChanges() {
		if output == "json" {
			return writeApplyJSON(out, plan, &reconciler.ApplyResult{})
		}
		if plan.HasErrors() {
			return &exitError{code: 1}
		}
		return nil
	}
	if !autoApprove {
		ok, err := confirm(cmd.InOrStdin(), human)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(human, "Apply cancelled.")
			return &exitError{code: 1}
		}
	}
	opts.Events = progress(human)
	result := reconciler.Apply(ctx, o.conn.cluster, o.conn.nodes, o.res, o.obs, plan, opts)
	writeApplySummary(human, plan, result)
	if output == "json" {
		if err := writeApplyJSON(out, plan, result); err != nil {
			return err
		}
	}
	if result.Failed() || plan.HasErrors() {
		return &exitError{code: 1}
	}
	return nil
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

// progress prints one line per event as it comes, leaving out the checks that
// pass and the starts of steps, which would double every line.
func progress(w io.Writer) func(reconciler.Event) {
	start := time.Now()
	var mu sync.Mutex
	return func(ev reconciler.Event) {
		if ev.Phase == "check" && ev.Outcome != reconciler.Failed || ev.Outcome == reconciler.Started && ev.Phase == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(w, progressLine(ev, time.Since(start)))
	}
}

// progressLine is one line per event: when, which guest, what, how it went.
func progressLine(ev reconciler.Event, since time.Duration) string {
	step := ev.Step
	if ev.Phase != "" {
		step += " " + ev.Phase
	}
	line := fmt.Sprintf("[%6.1fs] %s (%d on %s): %s: %s", since.Seconds(), ev.Guest, ev.VMID, ev.Node, step, ev.Outcome)
	switch {
	case ev.Outcome == reconciler.Retrying:
		line += fmt.Sprintf(" in %v", ev.Elapsed.Round(time.Millisecond))
	case ev.Elapsed > 0:
		line += fmt.Sprintf(" (%v)", ev.Elapsed.Round(time.Millisecond))
	}
	if ev.Err != nil {
		line += ": " + strings.ReplaceAll(ev.Err.Error(), "\n", " | ")
	}
	return line
}

func writeApplySummary(w io.Writer, plan *reconciler.Plan, result *reconciler.ApplyResult) {
	var created, configured, installed, deleted, failed int
	for _, g := range result.Guests {
		if g.Created {
			created++
		}
		if g.Configured {
			configured++
		}
		if g.Deleted {
			deleted++
		}
		installed += len(g.Installed)
		if g.Err != nil {
			failed++
		}
	}
	skipped := 0
	for _, g := range plan.Guests {
		if len(g.Errors) > 0 {
			skipped++
		}
	}
	fmt.Fprintf(w, "\nApply complete: %d created, %d configured, %d features installed, %d deleted, %d skipped, %d failed.\n",
		created, configured, installed, deleted, skipped, failed)
	for _, g := range result.Guests {
		if g.Err != nil {
			fmt.Fprintf(w, "  %s (%d) failed: %s\n", g.Name, g.VMID, strings.ReplaceAll(strings.TrimSpace(g.Err.Error()), "\n", "\n    "))
		}
	}
	for _, g := range plan.Guests {
		for _, e := range g.Errors {
			fmt.Fprintf(w, "  %s (%d) skipped: %s\n", g.Name, g.VMID, e)
		}
	}
}

// jsonResult is one guest in apply's JSON output.
type jsonResult struct {
	Name       string   `json:"name"`
	VMID       int      `json:"vmid"`
	Created    bool     `json:"created"`
	Configured bool     `json:"configured"`
	Installed  []string `json:"installed"`
	Deleted    bool     `json:"deleted"`
	Error      string   `json:"error,omitempty"`
}

func writeApplyJSON(w io.Writer, plan *reconciler.Plan, result *reconciler.ApplyResult) error {
	doc := struct {
		Plan   *reconciler.Plan `json:"plan"`
		Result []jsonResult     `json:"result"`
	}{Plan: plan, Result: []jsonResult{}}
	for _, g := range result.Guests {
		r := jsonResult{Name: g.Name, VMID: g.VMID, Created: g.Created, Configured: g.Configured,
			Installed: append([]string{}, g.Installed...), Deleted: g.Deleted}
		if g.Err != nil {
			r.Error = g.Err.Error()
		}
		doc.Result = append(doc.Result, r)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
