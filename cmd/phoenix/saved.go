package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/reconciler"
)

// Saved plans: plan --out FILE writes the plan with what it was made from;
// apply FILE carries out exactly that plan, and refuses it when the specs or
// the cluster changed since.

// specDigests digests the spec files a plan was made from, by absolute path.
func specDigests(files []string) ([]reconciler.SpecFile, error) {
	out := make([]reconciler.SpecFile, 0, len(files))
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, reconciler.SpecFileOf(abs, b))
	}
	return out, nil
}

// savePlan writes a saved plan file, readable by its owner only: it names
// the cluster's endpoint and what runs on it, and no credential value.
func savePlan(path string, plan *reconciler.Plan, o *observation, opts reconciler.PlanOptions) error {
	specs, err := specDigests(o.files)
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	saved := reconciler.NewSavedPlan(plan, o.obs, opts, o.conn.cluster.Endpoint(), specs, time.Now())
	var buf bytes.Buffer
	if err := saved.Write(&buf); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(o.conn.cluster.red.String(buf.String())), 0o600); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	return nil
}

// readSavedPlan reads apply's argument when it is a saved plan file; a spec
// file or a directory is not one (nil, nil).
func readSavedPlan(args []string) (*reconciler.SavedPlan, error) {
	if len(args) != 1 {
		return nil, nil
	}
	info, err := os.Stat(args[0])
	if err != nil || info.IsDir() {
		return nil, nil
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return nil, err
	}
	saved, err := reconciler.ReadSavedPlan(data)
	if errors.Is(err, reconciler.ErrNotSavedPlan) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", args[0], err)
	}
	return saved, nil
}

// applySaved carries out a saved plan once the specs and the cluster are as
// they were when it was made. It asks nothing: the plan was reviewed when it
// was saved.
func applySaved(ctx context.Context, cmd *cobra.Command, saved *reconciler.SavedPlan, opts reconciler.ApplyOptions, flags applyFlags) error {
	for _, flag := range []string{"filename", "allow-replace", "prune", "prune-max", "remove-raw-gpu-lines", "target"} {
		if cmd.Flags().Changed(flag) {
			return errors.New("a saved plan carries its spec files and its options: give the plan file alone (without -f, --allow-replace, --prune, --prune-max, --remove-raw-gpu-lines or --target)")
		}
	}
	paths := make([]string, len(saved.Specs))
	for i, f := range saved.Specs {
		paths[i] = f.Path
	}
	o, lease, err := observeLeased(ctx, cmd, paths, "phoenix apply", flags.lockTimeout)
	if err != nil {
		return err
	}
	defer o.close()
	defer releaseLease(cmd, lease)
	specs, err := specDigests(o.files)
	if err != nil {
		return err
	}
	if err := saved.CheckSpecs(specs); err != nil {
		return err
	}
	if ep := o.conn.cluster.Endpoint(); ep != saved.Endpoint {
		return fmt.Errorf("the plan was made against %s, and this apply talks to %s: run plan again", saved.Endpoint, ep)
	}
	if err := saved.CheckCluster(o.obs); err != nil {
		return err
	}
	opts.PlanOptions = saved.Options
	flags.autoApprove = true
	return leaseKept(lease, carryOut(lease.Context(), cmd, o, saved.Plan, opts, flags))
}
