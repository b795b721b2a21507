package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/reconciler"
)

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [-f] PATH... [-o table|json]",
		Short: "Show every guest's conditions from a fresh observation",
		Long: `Show every specified guest's conditions (Exists, ConfigInSync, FeaturesReady,
GPUReady with the host and container driver versions, Ready) and the last error
phoenix recorded on it, from a fresh observation of the cluster: phoenix keeps no
state of its own. A guest with health checks (a Container's health list and its
features') is Healthy when each check, run once now inside it, passes; one that is
not Healthy is not Ready. Options that wait in Proxmox's pending section for a restart
keep a container from being Ready. A template that is out of date in a way it
cannot be changed in place is Stale: a warning, not a failure.
Exits 0 when every guest is Ready, 1 otherwise.`,
		Args: specArgs,
	}
	specPaths(cmd)
	output := cmd.Flags().StringP("output", "o", "table", "output format: table or json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *output != "table" && *output != "json" {
			return fmt.Errorf("unknown --output %q (table or json)", *output)
		}
		o, err := observeSpecs(cmd.Context(), cmd, specFiles(cmd, args), os.Getenv)
		if err != nil {
			return err
		}
		defer o.close()
		plan := reconciler.MakePlan(o.res, o.obs, reconciler.PlanOptions{})
		statuses := reconciler.Status(o.res, o.obs, plan)
		// Health checks run once each, on the guests that can be checked.
		statuses = reconciler.WithHealth(statuses, reconciler.CheckHealth(cmd.Context(), o.conn.nodes, o.res, o.obs, plan))
		if *output == "json" {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(reconciler.Report{Guests: statuses}); err != nil {
				return err
			}
		} else {
			writeStatusTable(cmd.OutOrStdout(), statuses)
		}
		for _, s := range statuses {
			if !s.Ready() {
				return &exitError{code: 1}
			}
		}
		return nil
	}
	return cmd
}

var statusColumns = []string{reconciler.CondExists, reconciler.CondConfigInSync, reconciler.CondFeaturesReady, reconciler.CondGPUReady, reconciler.CondHealthy, reconciler.CondReady}

// writeStatusTable prints one row per guest, then what is not true and why.
func writeStatusTable(w io.Writer, statuses []reconciler.GuestStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tVMID\tNODE\t"+strings.Join(statusColumns, "\t")+"\tDRIVER (HOST/CT)")
	var details []string
	for _, s := range statuses {
		cells := []string{s.Name, string(s.Kind), fmt.Sprint(s.VMID), s.Node}
		byType := map[string]reconciler.Condition{}
		for _, c := range s.Conditions {
			byType[c.Type] = c
		}
		driver := "-"
		for _, col := range statusColumns {
			c, ok := byType[col]
			switch {
			case !ok:
				cells = append(cells, "-")
			case c.Status:
				cells = append(cells, "yes")
			default:
				cells = append(cells, "no")
			}
			if ok && !c.Status && c.Message != "" {
				details = append(details, fmt.Sprintf("%s %s: %s", s.Name, col, c.Message))
			}
			if col == reconciler.CondReady {
				if stale, ok := byType[reconciler.CondStale]; ok && stale.Status {
					details = append(details, fmt.Sprintf("%s Stale (a warning, not a failure): %s", s.Name, stale.Message))
				}
			}
			if col == reconciler.CondGPUReady && ok {
				driver = strings.TrimPrefix(strings.SplitN(c.Message, ";", 2)[0], "driver host ")
			}
		}
		cells = append(cells, driver)
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
		if s.LastError != nil {
			kind := ""
			if s.LastError.Kind != "" {
				kind = " [" + string(s.LastError.Kind) + "]"
			}
			details = append(details, fmt.Sprintf("%s last error %s ago in %s%s: %s", s.Name,
				time.Since(s.LastError.At).Round(time.Second), s.LastError.Step, kind, s.LastError.Message))
		}
	}
	_ = tw.Flush()
	if len(details) > 0 {
		fmt.Fprintln(w)
		for _, d := range details {
			fmt.Fprintln(w, d)
		}
	}
}
