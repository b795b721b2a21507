package e2e

import (
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/reconciler"
)

// TestNetworkIdentity: a pinned MAC, the MTU, a rate limit, IPv6 and the
// container's DNS settings converge through the API into Proxmox's netN,
// nameserver and searchdomain options; an interface whose MAC is not pinned
// keeps the one Proxmox gave it (a clone's is new); the second pass is a
// no-op; and emptying the DNS lists takes the options away.
func TestNetworkIdentity(t *testing.T) {
	r := newRig(t, nil)
	r.respec(specEdit{"containers.yaml", "      ip: 10.0.0.150/24\n      gw: 10.0.0.1\n",
		"      ip: 10.0.0.150/24\n      gw: 10.0.0.1\n      ip6: fd00::150/64\n      gw6: fd00::1\n" +
			"      hwaddr: \"52:54:00:67:89:A1\"\n      mtu: 1400\n      rate: 12.5\n      firewall: true\n" +
			"  nameservers: [10.0.0.13, \"fd00::53\"]\n  searchDomains: [lab.example]\n"})
	r.mustConverge(r.options())
	cfg := func(vmid int) map[string]string {
		c, err := r.cluster.GuestConfig(t.Context(), "pve1", vmid)
		if err != nil {
			t.Fatal(err)
		}
		return c.Values
	}
	v := cfg(950)
	net0 := propString(v["net0"])
	for k, want := range map[string]string{"name": "eth0", "ip": "10.0.0.150/24", "gw": "10.0.0.1", "ip6": "fd00::150/64",
		"gw6": "fd00::1", "hwaddr": "52:54:00:67:89:A1", "mtu": "1400", "rate": "12.5", "firewall": "1", "type": "veth"} {
		if net0[k] != want {
			t.Errorf("net0 %s = %q, want %q (net0 %s)", k, net0[k], want, v["net0"])
		}
	}
	if v["nameserver"] != "10.0.0.13 fd00::53" || v["searchdomain"] != "lab.example" {
		t.Errorf("nameserver %q searchdomain %q", v["nameserver"], v["searchdomain"])
	}
	// ollama is cloned from docker-gpu, whose interface pins no MAC: the
	// clone keeps the new one Proxmox gave it.
	tmpl, clone := propString(cfg(902)["net0"])["hwaddr"], propString(cfg(955)["net0"])["hwaddr"]
	if tmpl == "" || clone == "" || strings.EqualFold(tmpl, clone) {
		t.Errorf("template MAC %q, clone MAC %q: want two different ones", tmpl, clone)
	}
	if p := r.mustPlan(reconciler.PlanOptions{}); p.HasChanges() {
		t.Fatalf("second plan is not empty:\n%s", planText(p))
	}

	r.respec(specEdit{"containers.yaml", "      ip: 10.0.0.150/24\n      gw: 10.0.0.1\n",
		"      ip: 10.0.0.150/24\n      gw: 10.0.0.1\n      hwaddr: \"52:54:00:67:89:A1\"\n  nameservers: []\n  searchDomains: []\n"})
	p := r.mustPlan(reconciler.PlanOptions{})
	text := planText(p)
	for _, want := range []string{"nameserver", "searchdomain", "net0"} {
		if !strings.Contains(text, want) {
			t.Errorf("the plan does not name %s:\n%s", want, text)
		}
	}
	r.mustConverge(r.options())
	v = cfg(950)
	if _, ok := v["nameserver"]; ok {
		t.Errorf("nameserver still set: %q", v["nameserver"])
	}
	net0 = propString(v["net0"])
	for _, k := range []string{"ip6", "gw6", "mtu", "rate"} {
		if _, ok := net0[k]; ok {
			t.Errorf("net0 still has %s after the spec dropped it: %s", k, v["net0"])
		}
	}
	if net0["hwaddr"] != "52:54:00:67:89:A1" {
		t.Errorf("the pinned MAC changed: %s", v["net0"])
	}
	if p := r.mustPlan(reconciler.PlanOptions{}); p.HasChanges() {
		t.Fatalf("plan after the second apply is not empty:\n%s", planText(p))
	}
}

// propString splits a Proxmox property string ("a=1,b=2").
func propString(v string) map[string]string {
	out := map[string]string{}
	for part := range strings.SplitSeq(v, ",") {
		if k, val, ok := strings.Cut(part, "="); ok {
			out[k] = val
		}
	}
	return out
}
