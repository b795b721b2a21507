package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/providers/sim"
)

func newSimCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim --world FILE [--listen 127.0.0.1:0]",
		Short: "Serve a simulated Proxmox VE cluster on loopback until SIGINT or SIGTERM",
		Long: `Serve a simulated Proxmox VE cluster on loopback: the real API over HTTPS, one SSH
server per node (pct, host probes), and a model of the containers inside.

When ready it prints export lines for the variables phoenix reads
(PROXMOX_VE_ENDPOINT, PROXMOX_VE_API_TOKEN, PROXMOX_VE_CA_FILE, ...), plus
PHOENIX_SIM_URL (its control API: /journal, /stats, /world) and PHOENIX_SIM_PID,
then closes standard output, so that

    eval "$(phoenix sim --world examples/world.yaml &)"

sets up a shell and returns while the simulator keeps running.`,
		Args: cobra.NoArgs,
	}
	world := cmd.Flags().String("world", "", "world file (apiVersion sim.phoenix/v1alpha1)")
	listen := cmd.Flags().String("listen", "127.0.0.1:0", "address of the API")
	dir := cmd.Flags().String("dir", "", "where to write the CA, SSH key and known_hosts (default: a temporary directory removed on exit)")
	timeScale := cmd.Flags().Float64("time-scale", 0, "override the world's time scale (0.01 runs a 20 s task in 200 ms)")
	_ = cmd.MarkFlagRequired("world")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		w, err := sim.LoadWorld(*world)
		if err != nil {
			return err
		}
		s, err := sim.Start(w, sim.Options{Listen: *listen, Dir: *dir, TimeScale: *timeScale})
		if err != nil {
			return err
		}
		defer s.Close()
		out := cmd.OutOrStdout()
		fmt.Fprint(out, s.ExportLines())
		fmt.Fprintf(out, "export PHOENIX_SIM_PID=%d\n", os.Getpid())
		// Closing stdout lets $(phoenix sim ... &) return while we serve on.
		if f, ok := out.(*os.File); ok && f == os.Stdout {
			_ = f.Close()
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(sig)
		select {
		case <-sig:
		case <-cmd.Context().Done():
		}
		return s.Close()
	}
	return cmd
}
