package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// wideLabScale runs the wide lab's real-world durations 100 times faster.
const wideLabScale = 0.01

// BenchmarkWideLab converges the wide lab (widelab_test.go) from empty one
// guest at a time, then at each parallelism, and reports each makespan
// against its lower bound: the larger of the critical path (the longest
// chain of guests, a template's clones one after another on its clone lock)
// and the total work over the slots the apply can use (the parallelism, at
// most reconciler.PerNodeConcurrency per node), with each guest's work as
// measured in the serial run.
func BenchmarkWideLab(b *testing.B) {
	serial, work := rigMakespan(b, wideLabRig(b, wideLabScale), 1)
	res := wideLabRig(b, wideLabScale).res
	path := criticalPath(res, work)
	var total time.Duration
	for _, w := range work {
		total += w.total
	}
	b.Logf("one guest at a time: %.2f s; critical path %.2f s; total work %.2f s", serial.Seconds(), path.Seconds(), total.Seconds())
	for _, p := range []int{1, 4, 8, 16} {
		b.Run(fmt.Sprintf("parallelism=%d", p), func(b *testing.B) {
			for b.Loop() {
				span, _ := rigMakespan(b, wideLabRig(b, wideLabScale), p)
				slots := min(p, wideLabNodes*reconciler.PerNodeConcurrency)
				bound := max(path, total/time.Duration(slots))
				b.ReportMetric(span.Seconds(), "makespan-s")
				b.ReportMetric(bound.Seconds(), "bound-s")
				b.ReportMetric(float64(span)/float64(bound), "x-bound")
				b.ReportMetric(float64(serial)/float64(span), "x-faster-than-serial")
			}
		})
	}
}

// criticalPath is the longest chain of dependent guests, or a template's
// chain plus all its clones one after another (Proxmox locks the source of a
// clone), with each guest's work as measured.
func criticalPath(res *spec.Resolution, work map[string]guestWork) time.Duration {
	chain := map[string]time.Duration{}
	var bound time.Duration
	for _, g := range res.Guests { // parents first
		chain[g.Name] = chain[g.Parent] + work[g.Name].total
		bound = max(bound, chain[g.Name])
		var clones time.Duration
		for _, c := range g.Children {
			clones += work[c].clone
		}
		bound = max(bound, chain[g.Name]+clones)
	}
	return bound
}

// bulkScale runs the bulk creations' durations (a 20 s create) 100 times
// faster; each API request takes bulkLatency more, as over a LAN.
const (
	bulkScale   = 0.01
	bulkLatency = 5 * time.Millisecond
	bulkNodes   = 3
)

// BenchmarkBulkCreate creates N plain containers (spread over three nodes)
// from empty, once one guest at a time and once at the default parallelism,
// and as the bound a plain loop of the same work in API calls (create,
// start, wait for the address: bareLoop), one guest after another, divided
// by the concurrency the cluster takes (its nodes times
// reconciler.PerNodeConcurrency, or N where that is fewer).
func BenchmarkBulkCreate(b *testing.B) {
	for _, n := range []int{20, 100} {
		b.Run(fmt.Sprintf("guests=%d", n), func(b *testing.B) {
			for b.Loop() {
				serial, _ := rigMakespan(b, bulkRig(b, n), 1)
				def, _ := rigMakespan(b, bulkRig(b, n), 0)
				loop := bareLoop(b, bulkRig(b, n))
				concurrency := min(n, bulkNodes*reconciler.PerNodeConcurrency)
				b.ReportMetric(serial.Seconds(), "serial-s")
				b.ReportMetric(def.Seconds(), "default-s")
				b.ReportMetric(loop.Seconds(), "loop-s")
				b.ReportMetric(float64(serial)/float64(def), "x-faster-than-serial")
				b.ReportMetric(float64(def)/float64(loop/time.Duration(concurrency)), "x-loop-over-concurrency")
			}
		})
	}
}

func bulkRig(b *testing.B, n int) *rig {
	b.Helper()
	return rigOf(b, bulkWorld(bulkScale), bulkSpecs(n), func(w *sim.World) {
		w.Spec.TimeScale, w.Spec.Latency = bulkScale, sim.Duration(bulkLatency)
	})
}

// debianTemplate is the OS template of the bulk creations' containers.
const debianTemplate = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"

// bulkWorld is the bulk creations' cluster: bulkNodes nodes with a
// directory storage for templates and an LVM-thin one for disks, at time
// scale scale and bulkLatency a request.
func bulkWorld(scale float64) string {
	var w strings.Builder
	fmt.Fprintf(&w, "apiVersion: sim.phoenix/v1alpha1\nkind: World\nmetadata: {name: bulk}\nspec:\n  seed: 3\n  timeScale: %g\n  latency: %s\n  nodes:\n", scale, bulkLatency)
	for i := 1; i <= bulkNodes; i++ {
		fmt.Fprintf(&w, "    - name: pve%d\n      storages:\n        - {name: local, type: dir, content: [vztmpl]}\n        - {name: local-lvm, type: lvmthin, content: [rootdir]}\n      osTemplates: [%s]\n", i, debianTemplate)
	}
	return w.String()
}

// bulkSpecs are n plain containers, ct0 (VMID 1000) and on, spread over the
// bulk world's nodes.
func bulkSpecs(n int) string {
	var specs strings.Builder
	specs.WriteString("apiVersion: phoenix/v1alpha1\nkind: Cluster\nmetadata: {name: bulk}\nspec: {defaults: {storage: local-lvm}}\n")
	for i := range n {
		fmt.Fprintf(&specs, "---\napiVersion: phoenix/v1alpha1\nkind: Container\nmetadata: {name: ct%d}\nspec: {vmid: %d, node: pve%d, from: {ostemplate: %q}}\n",
			i, 1000+i, i%bulkNodes+1, debianTemplate)
	}
	return specs.String()
}

// bareLoop makes each container of the rig's plan with the plain API calls,
// one after another, doing the work phoenix does for it: create, start, and
// wait until the container has its address (phoenix waits for its network
// from inside; the loop reads .../interfaces, as the bpg provider does, with
// no pause between reads but the requests' own latency).
func bareLoop(b *testing.B, r *rig) time.Duration {
	_, plan := r.plan(reconciler.PlanOptions{})
	bare, err := newBareClient(r.sim.Env())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	for _, g := range plan.Guests {
		gr, _ := r.res.Guest(g.Name)
		req := reconciler.CreateRequest{Node: g.Node, VMID: g.VMID, OSTemplate: gr.Settings.OSTemplate, Storage: gr.Settings.Storage,
			DiskGiB: gr.Settings.DiskGiB, Options: map[string]string{"hostname": g.Name, "unprivileged": "1", "net0": "name=eth0,bridge=vmbr0,ip=dhcp"}}
		if err := r.cluster.Create(ctx, req); err != nil {
			b.Fatalf("create %s: %v", g.Name, err)
		}
		if err := r.cluster.Start(ctx, g.Node, g.VMID); err != nil {
			b.Fatalf("start %s: %v", g.Name, err)
		}
		for !hasAddress(b, bare, g.Node, g.VMID) {
		}
	}
	return time.Since(start)
}

// hasAddress reads a container's interfaces and reports whether eth0 has
// its IPv4 address.
func hasAddress(b *testing.B, bare *bareClient, node string, vmid int) bool {
	var ifaces []struct {
		Name string `json:"name"`
		Inet string `json:"inet"`
	}
	if err := bare.get(context.Background(), fmt.Sprintf("/nodes/%s/lxc/%d/interfaces", node, vmid), &ifaces); err != nil {
		b.Fatalf("interfaces of %d: %v", vmid, err)
	}
	for _, i := range ifaces {
		if i.Name == "eth0" && i.Inet != "" {
			return true
		}
	}
	return false
}
