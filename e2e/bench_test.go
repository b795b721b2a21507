package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// BenchmarkObservePlan measures one no-op pass (observe + plan) over N
// converged containers against the simulator with 5 ms of API latency, and
// reports the API requests it took, the bound it is held to
// ((requests / parallelism) x latency), its time against a bare client
// making the same requests (x-bare, bare_test.go) and the peak RSS of a pass.
func BenchmarkObservePlan(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("guests=%d", n), func(b *testing.B) { benchObservePlan(b, n) })
	}
}

const (
	benchLatency     = 5 * time.Millisecond
	benchParallelism = 8
)

func benchObservePlan(b *testing.B, n int) {
	var specs strings.Builder
	specs.WriteString("apiVersion: phoenix/v1alpha1\nkind: Cluster\nmetadata: {name: bench}\nspec: {defaults: {node: pve1, storage: local-lvm}}\n")
	world := &sim.World{APIVersion: sim.WorldAPIVersion, Kind: "World"}
	world.Spec.Nodes = []sim.WorldNode{{Name: "pve1", OSTemplates: []string{"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}}}
	world.Spec.Latency = sim.Duration(benchLatency)
	for i := range n {
		vmid, name := 1000+i, fmt.Sprintf("ct%d", i)
		fmt.Fprintf(&specs, "---\napiVersion: phoenix/v1alpha1\nkind: Container\nmetadata: {name: %s}\nspec: {vmid: %d, from: {ostemplate: \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\"}}\n", name, vmid)
		state := reconciler.RenderDescription("", &reconciler.State{V: 1, Name: name, Kind: "Container"})
		world.Spec.Guests = append(world.Spec.Guests, sim.WorldGuest{
			VMID: vmid, Name: name, Node: "pve1", Running: true, Tags: []string{reconciler.ManagedTag},
			Config: map[string]string{"cores": "1", "memory": "512", "swap": "512", "unprivileged": "1",
				"rootfs": fmt.Sprintf("local-lvm:vm-%d-disk-0,size=8G", vmid), "description": state},
		})
	}
	set, err := spec.Parse("bench.yaml", []byte(specs.String()))
	if err != nil {
		b.Fatal(err)
	}
	res, err := spec.Resolve(set)
	if err != nil {
		b.Fatal(err)
	}
	if err := sim.CheckWorld(world); err != nil {
		b.Fatal(err)
	}
	// The simulator runs in its own process, as a cluster would: the CPU
	// the pass spends is phoenix's alone.
	env, stats := simProcess(b, world)
	cfg, err := proxmox.ConfigFromEnv(func(k string) string { return env[k] }, spec.ClusterSpec{})
	if err != nil {
		b.Fatal(err)
	}
	client, err := proxmox.New(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	noNodes := func(string) (reconciler.Node, error) { return nil, fmt.Errorf("no GPU guests here") }
	bare, err := newBareClient(env)
	if err != nil {
		b.Fatal(err)
	}
	var bareTime, passTime time.Duration
	var peak int64
	counted := 0
	b.ResetTimer()
	for b.Loop() {
		// The bare pass goes first in each round, so that both see the
		// same noise of the shared machine; its requests are not counted.
		b.StopTimer()
		bareStart := time.Now()
		if err := bare.pass(context.Background(), benchParallelism); err != nil {
			b.Fatal(err)
		}
		bareTime += time.Since(bareStart)
		resetPeakRSS(b)
		mid := total(stats())
		b.StartTimer()
		start := time.Now()
		obs, err := reconciler.Observe(context.Background(), client, noNodes, res, reconciler.ObserveOptions{Parallelism: benchParallelism})
		if err != nil {
			b.Fatal(err)
		}
		if p := reconciler.MakePlan(res, obs, reconciler.PlanOptions{}); p.HasChanges() || p.HasErrors() {
			b.Fatalf("a converged cluster planned changes: %+v", p.Summary())
		}
		passTime += time.Since(start)
		b.StopTimer()
		peak = max(peak, peakRSS(b))
		counted += total(stats()) - mid
		b.StartTimer()
	}
	b.StopTimer()
	perPass := float64(counted) / float64(b.N)
	bound := time.Duration(perPass/benchParallelism) * benchLatency
	b.ReportMetric(perPass, "requests/pass")
	b.ReportMetric(float64(passTime)/float64(b.N)/float64(bound), "x-bound")
	b.ReportMetric(float64(passTime)/float64(bareTime), "x-bare")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
}

func total(stats map[string]int) int {
	n := 0
	for _, v := range stats {
		n += v
	}
	return n
}

// simProcess serves a world with phoenix sim in a separate process and
// returns its environment and a reader of its request counts.
func simProcess(b *testing.B, world *sim.World) (map[string]string, func() map[string]int) {
	b.Helper()
	return startSimProcess(b, buildPhoenix(b), world)
}

// buildPhoenix builds the phoenix command into a temporary directory.
func buildPhoenix(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "phoenix")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/phoenix").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startSimProcess serves a world with the phoenix command bin, stopped when
// the benchmark ends.
func startSimProcess(b *testing.B, bin string, world *sim.World) (map[string]string, func() map[string]int) {
	b.Helper()
	dir := b.TempDir()
	data, err := yaml.Marshal(world)
	if err != nil {
		b.Fatal(err)
	}
	worldFile := filepath.Join(dir, "world.yaml")
	if err := os.WriteFile(worldFile, data, 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "sim", "--world", worldFile)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	env := map[string]string{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		env[k] = strings.Trim(v, "'")
	}
	if env["PHOENIX_SIM_URL"] == "" {
		b.Fatal("phoenix sim printed no environment")
	}
	return env, func() map[string]int {
		res, err := http.Get(env["PHOENIX_SIM_URL"] + "/stats")
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		var stats map[string]int
		if err := json.NewDecoder(res.Body).Decode(&stats); err != nil {
			b.Fatal(err)
		}
		return stats
	}
}
