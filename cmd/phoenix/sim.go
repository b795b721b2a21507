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
		Short: "Serve a simulated Proxmox VE cluster on loopback until SIGINT, SIGTERM or SIGHUP",
		Long: `Serve a simulated Proxmox VE cluster on loopback: the real API over HTTPS, one SSH
server per node (pct, host probes), and a model of the containers inside.

When ready it prints export lines for the variables phoenix reads
(PROXMOX_VE_ENDPOINT, PROXMOX_VE_API_TOKEN, PROXMOX_VE_CA_FILE, ...), plus
PHOENIX_SIM_URL (its control API: /journal, /stats, /world) and PHOENIX_SIM_PID,
then closes standard output, so that

    eval "$(phoenix sim --world examples/homelab/world.yaml &)"

sets up a shell and returns while the simulator keeps running. Without --dir,
its files go to a new temporary directory only its user can read, removed
when it stops.`,
		Args: cobra.NoArgs,
	}
	world := cmd.Flags().String("world", "", "world file (apiVersion sim.phoenix/v1alpha1)")
	listen := cmd.Flags().String("listen", "127.0.0.1:0", "address of the API")
	dir := cmd.Flags().String("dir", "", "where to write the CA, SSH key and known_hosts (default: a temporary directory removed on exit)")
	timeScale := cmd.Flags().Float64("time-scale", 0, "override the world's time scale (0.01 runs a 20 s task in 200 ms)")
	_ = cmd.MarkFlagRequired("world")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		// The handler comes before anything is written: a SIGTERM sent the
		// moment the export lines are read (or sooner) would otherwise kill us
		// by default, leaving the CA and the SSH private key behind. Until
		// stop, a second signal is held too, so it cannot cut the cleanup short.
		ctx, stop := signal.NotifyContext(cmd.Context(), stopSignals()...)
		defer stop()
		// A reader gone before the export lines (phoenix sim | true) would
		// have SIGPIPE kill us just as well; with SIGPIPE notified, the write
		// fails with EPIPE instead and we return through s.Close.
		pipe := make(chan os.Signal, 1)
		signal.Notify(pipe, syscall.SIGPIPE)
		defer signal.Stop(pipe)

		w, err := sim.LoadWorld(*world)
		if err != nil {
			return err
		}
		s, err := sim.Start(w, sim.Options{Listen: *listen, Dir: *dir, TimeScale: *timeScale})
		if err != nil {
			return err
		}
		defer s.Close()
		if ctx.Err() != nil { // stopped while starting: print nothing to use
			return s.Close()
		}
		// The export lines are the simulator's own credentials, there to
		// be read: they bypass the redactor, which may know the same
		// values from a shell set up by an earlier phoenix sim.
		out := unwrapWriter(cmd.OutOrStdout())
		if _, err := fmt.Fprintf(out, "%sexport PHOENIX_SIM_PID=%d\n", s.ExportLines(), os.Getpid()); err != nil {
			return err
		}
		// Closing stdout lets $(phoenix sim ... &) return while we serve on.
		if f, ok := out.(*os.File); ok && f == os.Stdout {
			if err := f.Close(); err != nil {
				return err
			}
		}
		<-ctx.Done()
		return s.Close()
	}
	return cmd
}

// stopSignals are the signals phoenix sim stops on. SIGHUP joins them unless
// it was ignored when we started: under nohup, a hangup is not meant to stop us.
func stopSignals() []os.Signal {
	sigs := []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	return sigs
}
