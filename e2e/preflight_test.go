package e2e

import (
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// TestPreflightRefusesWhatCannotBeMade: before planning + create, the plan
// checks the node, the storage, the OS template and the bridges a new guest
// needs, and names what is wrong and what exists instead. Apply makes no
// request for such a guest.
func TestPreflightRefusesWhatCannotBeMade(t *testing.T) {
	cases := map[string]struct {
		edits  []specEdit
		change *sim.WorldChange
		guest  string
		kind   reconciler.ProblemKind
		want   string
	}{
		"a node that is not in the cluster": {
			edits: []specEdit{{"containers.yaml", "    template: ubuntu-2404-base\n", "    template: ubuntu-2404-base\n  node: pve9\n"}},
			guest: "nginx", kind: reconciler.ProblemSpec, want: "node pve9 is not in the cluster: it has pve1, pve2",
		},
		"a node that is offline": {
			change: &sim.WorldChange{Nodes: map[string]sim.NodeChange{"pve1": {Online: ptr(false)}}},
			guest:  "ubuntu-2404-base", kind: reconciler.ProblemObserve, want: "node pve1 is offline",
		},
		"a storage the node does not have": {
			edits: []specEdit{{"cluster.yaml", "    storage: local-lvm", "    storage: local-zfs"}},
			guest: "ubuntu-2404-base", kind: reconciler.ProblemSpec, want: "storage local-zfs is not on pve1: it has local",
		},
		"a storage that holds no root disks": {
			edits: []specEdit{{"cluster.yaml", "    storage: local-lvm", "    storage: local"}},
			guest: "ubuntu-2404-base", kind: reconciler.ProblemSpec, want: "storage local on pve1 does not hold container root disks (content rootdir): local-lvm does",
		},
		"an OS template that is not on the node": {
			edits: []specEdit{{"templates.yaml", "ubuntu-24.04-standard_24.04-2_amd64", "ubuntu-25.04-standard_25.04-1_amd64"}},
			guest: "ubuntu-2404-base", kind: reconciler.ProblemNode,
			want: "the OS template local:vztmpl/ubuntu-25.04-standard_25.04-1_amd64.tar.zst is not on pve1: it has local:vztmpl/",
		},
		"a bridge the node does not have": {
			edits: []specEdit{{"containers.yaml", "      ip: 10.0.0.160/24\n", "      ip: 10.0.0.160/24\n      bridge: vmbr9\n"}},
			guest: "nginx", kind: reconciler.ProblemSpec, want: "bridge vmbr9 of eth0 is not on pve1: it has vmbr0",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, nil)
			if tc.edits != nil {
				r.respec(tc.edits...)
			}
			if tc.change != nil {
				if err := r.sim.Change(*tc.change); err != nil {
					t.Fatal(err)
				}
			}
			_, p := r.plan(reconciler.PlanOptions{})
			g, _ := p.Guest(tc.guest)
			if len(g.Errors) == 0 || g.Errors[0].Kind != tc.kind || !strings.Contains(g.Errors[0].Message, tc.want) {
				t.Fatalf("%s: problems %+v, want [%s] %q\n%s", tc.guest, g.Errors, tc.kind, tc.want, planText(p))
			}
			from := r.lastSeq()
			r.apply(t.Context(), r.options())
			for _, e := range r.events(from) {
				if e.Kind == "api" && e.VMID == g.VMID && !strings.HasPrefix(e.Name, "GET ") {
					t.Errorf("apply touched %s: %s", tc.guest, e.Name)
				}
				if e.Kind == "api" && strings.HasSuffix(e.Name, "/lxc") && strings.HasPrefix(e.Name, "POST") && g.VMID == 900 {
					t.Errorf("apply tried to create %s: %s", tc.guest, e.Name)
				}
			}
		})
	}
}
