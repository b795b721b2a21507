package sim

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestFirewallRules checks the rules API against pve-firewall's Rules.pm:
// a new rule goes to the top whatever pos says and is disabled without
// enable, moveto puts a rule before the one at moveto, positions renumber,
// the list's digest guards writes, and verify_rule's refusals.
func TestFirewallRules(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	base := "/nodes/pve1/lxc/101/firewall"
	list := func() ([]string, string) {
		t.Helper()
		r := c.call("GET", base+"/rules", nil)
		if r.code != 200 {
			t.Fatalf("list: %d %q", r.code, r.reason)
		}
		var out []string
		digest := ""
		for i, e := range r.data.([]any) {
			m := e.(map[string]any)
			if m["pos"] != float64(i) {
				t.Errorf("rule %d has pos %v", i, m["pos"])
			}
			digest = m["digest"].(string)
			out = append(out, fmt.Sprintf("%v/%v", m["dport"], m["enable"]))
		}
		return out, digest
	}
	post := func(port string, extra url.Values) apiResponse {
		p := url.Values{"type": {"in"}, "action": {"ACCEPT"}, "proto": {"tcp"}, "dport": {port}}
		for k, v := range extra {
			p[k] = v
		}
		return c.call("POST", base+"/rules", p)
	}
	for _, port := range []string{"1", "2", "3"} {
		if r := post(port, url.Values{"enable": {"1"}, "pos": {"2"}}); r.code != 200 || r.data != nil {
			t.Fatalf("create: %d %q %v", r.code, r.reason, r.body)
		}
	}
	if r := post("4", nil); r.code != 200 {
		t.Fatalf("create without enable: %d %q", r.code, r.reason)
	}
	got, digest := list()
	if want := "4/0 3/1 2/1 1/1"; strings.Join(got, " ") != want {
		t.Errorf("rules %q, want %q: new rules on top, disabled without enable", got, want)
	}
	// Down: moveto 3 puts rule 0 before what is at 3 now, so at 2.
	if r := c.call("PUT", base+"/rules/0", url.Values{"moveto": {"3"}, "digest": {digest}}); r.code != 200 {
		t.Fatalf("move: %d %q", r.code, r.reason)
	}
	if got, _ = list(); strings.Join(got, " ") != "3/1 2/1 4/0 1/1" {
		t.Errorf("after moving 0 to 3: %q", got)
	}
	// The digest read before the move is stale now.
	if r := c.call("DELETE", base+"/rules/0", url.Values{"digest": {digest}}); r.code != 500 ||
		r.reason != "detected modified configuration - file changed by other user? Try again." {
		t.Errorf("stale digest: %d %q", r.code, r.reason)
	}
	// Up, past the end, and out of range.
	c.call("PUT", base+"/rules/3", url.Values{"moveto": {"0"}})
	c.call("PUT", base+"/rules/1", url.Values{"moveto": {"9"}})
	if got, _ = list(); strings.Join(got, " ") != "1/1 2/1 4/0 3/1" {
		t.Errorf("after moving 3 to 0 and 1 past the end: %q", got)
	}
	if r := c.call("DELETE", base+"/rules/4", nil); r.code != 500 || r.reason != "no rule at position 4" {
		t.Errorf("delete past the end: %d %q", r.code, r.reason)
	}
	if r := c.call("DELETE", base+"/rules/0", nil); r.code != 200 {
		t.Fatalf("delete: %d %q", r.code, r.reason)
	}
	if got, _ = list(); strings.Join(got, " ") != "2/1 4/0 3/1" {
		t.Errorf("after deleting 0: %q", got)
	}
	// An update changes and deletes properties and is verified again.
	if r := c.call("PUT", base+"/rules/1", url.Values{"dport": {"40"}, "enable": {"1"}, "delete": {"comment"}}); r.code != 200 {
		t.Fatalf("update: %d %q %v", r.code, r.reason, r.body)
	}
	if got, _ = list(); strings.Join(got, " ") != "2/1 40/1 3/1" {
		t.Errorf("after the update: %q", got)
	}
	refusals := map[string]struct {
		method, path string
		p            url.Values
		param, msg   string
	}{
		"dport without proto":   {"POST", "/rules", url.Values{"type": {"in"}, "action": {"ACCEPT"}, "dport": {"22"}}, "proto", "missing property - 'dport' requires this property"},
		"ports of icmp":         {"POST", "/rules", url.Values{"type": {"in"}, "action": {"ACCEPT"}, "proto": {"icmp"}, "sport": {"22"}}, "sport", "protocol 'icmp' does not support ports"},
		"an iface not netN":     {"POST", "/rules", url.Values{"type": {"in"}, "action": {"ACCEPT"}, "iface": {"eth0"}}, "iface", `value does not match the regex pattern 'net\d+'`},
		"a forward rule":        {"POST", "/rules", url.Values{"type": {"forward"}, "action": {"ACCEPT"}}, "type", "invalid rule type 'forward' for rule_env 'ct'"},
		"an unknown action":     {"POST", "/rules", url.Values{"type": {"in"}, "action": {"accept"}}, "action", "unknown action 'accept'"},
		"an alias it lacks":     {"POST", "/rules", url.Values{"type": {"in"}, "action": {"ACCEPT"}, "source": {"office"}}, "source", "no such alias 'office'"},
		"deleting the type":     {"PUT", "/rules/0", url.Values{"delete": {"type"}}, "delete", "unable to delete required property 'type'"},
		"deleting nothing real": {"PUT", "/rules/0", url.Values{"delete": {"port"}}, "delete", "no such property ('port')"},
	}
	for name, tc := range refusals {
		r := c.call(tc.method, base+tc.path, tc.p)
		if r.code != 400 || r.reason != "Parameter verification failed." {
			t.Errorf("%s: %d %q, want 400", name, r.code, r.reason)
			continue
		}
		errs, _ := r.body["errors"].(map[string]any)
		if errs[tc.param] != tc.msg {
			t.Errorf("%s: errors %v, want %s: %s", name, errs, tc.param, tc.msg)
		}
	}
	// The schema refuses what is not a rule at all, before the handler.
	if r := c.call("POST", base+"/rules", url.Values{"type": {"sideways"}, "action": {"ACCEPT"}}); r.code != 400 {
		t.Errorf("a type outside the schema's enum: %d %q", r.code, r.reason)
	}
}

func TestFirewallOptions(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	path := "/nodes/pve1/lxc/101/firewall/options"
	get := func() map[string]any { t.Helper(); return c.call("GET", path, nil).data.(map[string]any) }
	digest := get()["digest"].(string)
	if r := c.call("PUT", path, url.Values{"enable": {"1"}, "policy_in": {"DROP"}, "dhcp": {"0"}, "digest": {digest}}); r.code != 200 {
		t.Fatalf("set: %d %q %v", r.code, r.reason, r.body)
	}
	o := get()
	if o["enable"] != "1" || o["policy_in"] != "DROP" || o["dhcp"] != "0" || o["digest"] == digest {
		t.Errorf("options %v", o)
	}
	if r := c.call("PUT", path, url.Values{"policy_out": {"DROP"}, "digest": {digest}}); r.code != 500 {
		t.Errorf("stale digest: %d %q", r.code, r.reason)
	}
	if r := c.call("PUT", path, url.Values{"delete": {"policy_in,nothing"}}); r.code != 400 {
		t.Errorf("deleting an unknown option: %d %q", r.code, r.reason)
	}
	if r := c.call("PUT", path, url.Values{"policy_in": {"drop"}}); r.code != 400 {
		t.Errorf("a policy outside the enum: %d %q", r.code, r.reason)
	}
	if r := c.call("PUT", path, url.Values{"delete": {"policy_in"}}); r.code != 200 {
		t.Fatalf("delete: %d %q", r.code, r.reason)
	}
	if _, ok := get()["policy_in"]; ok {
		t.Error("policy_in still set")
	}
}
