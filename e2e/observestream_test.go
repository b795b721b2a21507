package e2e

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

const streamWorld = `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: stream}
spec:
  seed: 5
  timeScale: 0.002
  nodes:
    - name: pve1
      osTemplates: ["local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"]
    - name: pve2
  guests:
    - {vmid: 100, name: busy, node: pve1, running: true, config: {cpulimit: "1.5"}}
    - {vmid: 101, name: keep, node: pve1, config: {protection: "1"}}
    - {vmid: 102, name: ours, node: pve2, running: true, tags: [phoenix-managed]}
    - {vmid: 103, name: base, node: pve1, template: true, tags: [phoenix-managed]}
    - {vmid: 300, name: windows, node: pve1, type: qemu, running: true, tags: [phoenix-managed]}
`

const streamSpecs = `apiVersion: phoenix/v1alpha1
kind: Cluster
metadata: {name: stream}
spec: {defaults: {node: pve1, storage: local-lvm}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: busy}
spec:
  vmid: 100
  from: {ostemplate: "` + ubuntu + `"}
  snapshots: {after: true}
  firewall:
    enabled: true
    rules: [{direction: in, action: ACCEPT, proto: tcp, dport: "22", comment: ssh}]
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: fresh}
spec: {vmid: 200, from: {ostemplate: "` + ubuntu + `"}}
`

// TestObserveStreamedAsWhole: on the same simulated cluster, Observe with the
// streamed listing (the client is a GuestStreamer) observes what it observes
// from the listing decoded whole.
func TestObserveStreamedAsWhole(t *testing.T) {
	f := startSim(t, streamWorld)
	c := f.client(t)
	if _, ok := any(c).(reconciler.GuestStreamer); !ok {
		t.Fatal("the client does not stream the listing")
	}
	set, err := spec.Parse("stream.yaml", []byte(streamSpecs))
	if err != nil {
		t.Fatal(err)
	}
	res, err := spec.Resolve(set)
	if err != nil {
		t.Fatal(err)
	}
	streamed, err := reconciler.Observe(context.Background(), c, nil, res, reconciler.ObserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Only Cluster's methods: the listing is read with Guests.
	whole, err := reconciler.Observe(context.Background(), struct{ reconciler.Cluster }{c}, nil, res, reconciler.ObserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(whole.Guests) != 4 || whole.Others != 1 || whole.Guests[100].Firewall == nil || whole.Inventory == nil {
		t.Errorf("the observation misses what this test compares: %d guests, %d others, firewall %v, inventory %v",
			len(whole.Guests), whole.Others, whole.Guests[100].Firewall, whole.Inventory)
	}
	if d := cmp.Diff(whole, streamed, cmpopts.EquateErrors()); d != "" {
		t.Errorf("the streamed observation differs (-whole +streamed):\n%s", d)
	}
}
