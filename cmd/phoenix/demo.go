package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

func newDemoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo [[-f] PATH...] [--world examples/homelab/world.yaml]",
		Short: "Converge the example GPU homelab on an embedded simulated cluster",
		Long: `Start the embedded Proxmox VE simulator with the example world, show the lineage
and the plan, apply it with progress, show the status, and plan again to show that
nothing is left to do. Nothing keeps running afterwards. The specs are examples/homelab/
unless paths are given, with -f or as arguments.`,
		Args: specArgs,
	}
	specPaths(cmd, "examples/homelab/")
	specs := cmd.Flags().StringArray("specs", nil, "the old name of --filename")
	deprecate(cmd, "specs", "use -f/--filename instead")
	worldFile := cmd.Flags().String("world", "examples/homelab/world.yaml", "simulator world")
	timeScale := cmd.Flags().Float64("time-scale", 0, "override the world's time scale")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		out := cmd.OutOrStdout()
		begin := time.Now()
		w, err := sim.LoadWorld(*worldFile)
		if err != nil {
			return err
		}
		s, err := sim.Start(w, sim.Options{TimeScale: *timeScale})
		if err != nil {
			return err
		}
		defer s.Close()
		env := s.Env()
		fmt.Fprintf(out, "== A simulated Proxmox VE %s cluster is up at %s\n\n", w.Spec.Version, env["PROXMOX_VE_ENDPOINT"])

		ctx := cmd.Context()
		o, err := observeSpecs(ctx, cmd, specFiles(cmd, slices.Concat(args, *specs)), func(k string) string { return env[k] })
		if err != nil {
			return err
		}
		defer o.close()
		res, conn, obs := o.res, o.conn, o.obs
		fmt.Fprintln(out, "== The lineage: what each guest inherits from its template, and what it installs itself")
		if err := res.WriteGraph(out, "text"); err != nil {
			return err
		}
		plan := reconciler.MakePlan(res, obs, reconciler.PlanOptions{})
		fmt.Fprintln(out, "\n== The plan (phoenix plan)")
		if err := plan.WriteText(out, reconciler.TextOptions{Color: colorful(out)}); err != nil {
			return err
		}

		fmt.Fprintln(out, "\n== Applying it (phoenix apply)")
		pr := newProgress(out, progressPlain)
		result := reconciler.Apply(ctx, conn.cluster, conn.nodes, res, obs, plan, reconciler.ApplyOptions{Events: pr.event})
		pr.close()
		if err := result.WriteSummary(out, plan); err != nil {
			return err
		}
		if result.Failed() {
			return &exitError{code: 1}
		}

		obs, err = reconciler.Observe(ctx, conn.cluster, conn.nodes, res, reconciler.ObserveOptions{Log: logger(cmd)})
		if err != nil {
			return err
		}
		plan = reconciler.MakePlan(res, obs, reconciler.PlanOptions{})
		fmt.Fprintln(out, "\n== Status (phoenix status)")
		writeStatusTable(out, reconciler.WithHealth(reconciler.Status(res, obs, plan), reconciler.CheckHealth(ctx, conn.nodes, res, obs, plan)))
		fmt.Fprintln(out, "\n== Planning again (phoenix plan)")
		if err := plan.WriteText(out, reconciler.TextOptions{Color: colorful(out)}); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nDone in %v. The simulator stops now; nothing is left running.\n", time.Since(begin).Round(100*time.Millisecond))
		if plan.HasChanges() {
			return &exitError{code: 1, err: fmt.Errorf("the second plan still has changes")}
		}
		return nil
	}
	return cmd
}
