package sim

import (
	"net/url"
	"testing"
)

// wantRefusal checks a call's status, reason and, for a 400, the parameter's message.
func wantRefusal(t *testing.T, what string, r apiResponse, code int, reason, param, msg string) {
	t.Helper()
	if r.code != code || r.reason != reason {
		t.Errorf("%s: %d %q, want %d %q", what, r.code, r.reason, code, reason)
		return
	}
	if param != "" {
		errs, _ := r.body["errors"].(map[string]any)
		if errs[param] != msg {
			t.Errorf("%s: errors %v, want %s: %s", what, errs, param, msg)
		}
	}
}

const paramFailed = "Parameter verification failed."

// TestFirewallAliases checks the aliases API against Aliases.pm: names
// compared without regard to case, a /32 read back as the address, the
// list's digest on update and delete, and that a delete does not ask
// whether a rule uses the alias: the rule then lists errors.
func TestFirewallAliases(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	base := "/nodes/pve1/lxc/101/firewall"
	ok := func(what string, r apiResponse) {
		t.Helper()
		if r.code != 200 {
			t.Fatalf("%s: %d %q %v", what, r.code, r.reason, r.body)
		}
	}
	ok("create", c.call("POST", base+"/aliases", url.Values{"name": {"office"}, "cidr": {"10.1.0.1/32"}, "comment": {"phoenix"}}))
	wantRefusal(t, "the same name in other case", c.call("POST", base+"/aliases", url.Values{"name": {"Office"}, "cidr": {"10.2.0.0/16"}}),
		400, paramFailed, "name", "alias 'Office' already exists")
	wantRefusal(t, "not an address", c.call("POST", base+"/aliases", url.Values{"name": {"bad"}, "cidr": {"10.0.0.0/33"}}), 400, paramFailed, "", "")
	list := c.call("GET", base+"/aliases", nil).data.([]any)
	a := list[0].(map[string]any)
	if a["name"] != "office" || a["cidr"] != "10.1.0.1" || a["ipversion"] != float64(4) || a["comment"] != "phoenix" {
		t.Errorf("alias read back as %v", a)
	}
	digest := a["digest"].(string)
	wantRefusal(t, "a name it lacks", c.call("GET", base+"/aliases/nothing", nil), 400, paramFailed, "name", "no such alias")

	// A rule may use it, by any case; one it lacks is refused.
	ok("a rule using it", c.call("POST", base+"/rules", url.Values{"type": {"in"}, "action": {"DROP"}, "source": {"OFFICE"}, "enable": {"1"}}))
	wantRefusal(t, "a rule using another", c.call("POST", base+"/rules", url.Values{"type": {"in"}, "action": {"DROP"}, "source": {"guest/lab"}}),
		400, paramFailed, "source", "no such alias 'guest/lab'")

	// The update writes the name as sent; a comment not sent is removed.
	ok("update", c.call("PUT", base+"/aliases/OFFICE", url.Values{"cidr": {"10.1.0.0/16"}, "digest": {digest}}))
	a = c.call("GET", base+"/aliases/office", nil).data.(map[string]any)
	if a["name"] != "OFFICE" || a["cidr"] != "10.1.0.0/16" || a["comment"] != nil {
		t.Errorf("alias after the update: %v", a)
	}
	wantRefusal(t, "a stale digest", c.call("DELETE", base+"/aliases/office", url.Values{"digest": {digest}}),
		500, "detected modified configuration - file changed by other user? Try again.", "", "")

	ok("delete, though a rule uses it", c.call("DELETE", base+"/aliases/office", nil))
	ok("delete again", c.call("DELETE", base+"/aliases/office", nil))
	rule := c.call("GET", base+"/rules", nil).data.([]any)[0].(map[string]any)
	if errs, _ := rule["errors"].(map[string]any); errs["source"] != "no such alias 'OFFICE'" {
		t.Errorf("the rule whose alias is gone: %v", rule)
	}
}

// TestFirewallIPSets checks the ipset API against IPSet.pm.
func TestFirewallIPSets(t *testing.T) {
	_, c := startAPISim(t, apiWorld+"  firewallAliases: {backup: 10.9.0.1}\n  firewallIPSets: [dcset]\n")
	base := "/nodes/pve1/lxc/101/firewall"
	ok := func(what string, r apiResponse) {
		t.Helper()
		if r.code != 200 {
			t.Fatalf("%s: %d %q %v", what, r.code, r.reason, r.body)
		}
	}
	wantRefusal(t, "a rule using a set before it exists", c.call("POST", base+"/rules", url.Values{"type": {"in"}, "action": {"ACCEPT"}, "source": {"+trusted"}}),
		400, paramFailed, "source", "no such ipset 'trusted'")
	ok("a rule using the cluster's set", c.call("POST", base+"/rules", url.Values{"type": {"in"}, "action": {"ACCEPT"}, "source": {"+dc/dcset"}}))
	ok("create", c.call("POST", base+"/ipset", url.Values{"name": {"trusted"}, "comment": {"phoenix: who"}}))
	wantRefusal(t, "create twice", c.call("POST", base+"/ipset", url.Values{"name": {"trusted"}}), 400, paramFailed, "name", "IPSet 'trusted' already exists")
	set := base + "/ipset/trusted"
	ok("an entry with host bits", c.call("POST", set, url.Values{"cidr": {"10.0.0.5/24"}}))
	ok("an address", c.call("POST", set, url.Values{"cidr": {"10.0.0.7/32"}, "nomatch": {"1"}, "comment": {"printer"}}))
	ok("the cluster's alias", c.call("POST", set, url.Values{"cidr": {"dc/backup"}}))
	wantRefusal(t, "the same network", c.call("POST", set, url.Values{"cidr": {"10.0.0.0/24"}}), 400, paramFailed, "cidr", "address '10.0.0.0/24' already exists")
	wantRefusal(t, "a zero prefix", c.call("POST", set, url.Values{"cidr": {"0.0.0.0/0"}}), 400, paramFailed, "cidr", "a zero prefix is not allowed in ipset entries")
	wantRefusal(t, "an alias nobody has", c.call("POST", set, url.Values{"cidr": {"lab"}}), 500, "no such alias 'lab'", "", "")
	wantRefusal(t, "a set it lacks", c.call("POST", base+"/ipset/other", url.Values{"cidr": {"10.0.0.1"}}), 500, "no such IPSet 'other'", "", "")

	entries := c.call("GET", set, nil).data.([]any)
	var cidrs []any
	for _, e := range entries {
		cidrs = append(cidrs, e.(map[string]any)["cidr"])
	}
	if len(cidrs) != 3 || cidrs[0] != "dc/backup" || cidrs[1] != "10.0.0.7" || cidrs[2] != "10.0.0.0/24" {
		t.Errorf("entries %v, want the newest first, cleaned and without /32", cidrs)
	}
	if e := entries[1].(map[string]any); e["nomatch"] != float64(1) || e["comment"] != "printer" {
		t.Errorf("entry %v", e)
	}
	digest := entries[0].(map[string]any)["digest"].(string)
	// The entry's path holds its CIDR, slash and all.
	ok("update", c.call("PUT", set+"/10.0.0.0/24", url.Values{"comment": {"lan"}, "digest": {digest}}))
	if e := c.call("GET", set+"/10.0.0.0/24", nil).data.(map[string]any); e["comment"] != "lan" {
		t.Errorf("entry after the update: %v", e)
	}
	wantRefusal(t, "a stale digest", c.call("DELETE", set+"/10.0.0.7", url.Values{"digest": {digest}}),
		500, "detected modified configuration - file changed by other user? Try again.", "", "")
	wantRefusal(t, "an entry it lacks", c.call("PUT", set+"/10.5.0.0/16", url.Values{"comment": {"x"}}), 400, paramFailed, "cidr", "no such IP/Network")
	// The update sets what is sent: nomatch and comment left out go.
	ok("update without nomatch", c.call("PUT", set+"/10.0.0.7", nil))
	if e := c.call("GET", set+"/10.0.0.7", nil).data.(map[string]any); e["nomatch"] != nil || e["comment"] != nil {
		t.Errorf("entry after an update with neither: %v", e)
	}

	// The comment changes by a rename to the same name.
	sets := c.call("GET", base+"/ipset", nil).data.([]any)
	listDigest := sets[0].(map[string]any)["digest"].(string)
	ok("comment", c.call("POST", base+"/ipset", url.Values{"name": {"trusted"}, "rename": {"trusted"}, "comment": {"phoenix: new"}, "digest": {listDigest}}))
	wantRefusal(t, "a rename with a stale digest", c.call("POST", base+"/ipset", url.Values{"name": {"trusted"}, "rename": {"trusted"}, "digest": {listDigest}}),
		500, "detected modified configuration - file changed by other user? Try again.", "", "")

	ok("a rule using it", c.call("POST", base+"/rules", url.Values{"type": {"in"}, "action": {"ACCEPT"}, "source": {"+trusted"}}))
	wantRefusal(t, "delete with entries", c.call("DELETE", set, nil), 500, "IPSet 'trusted' is not empty", "", "")
	ok("delete with force, though a rule uses it", c.call("DELETE", set, url.Values{"force": {"1"}}))
	wantRefusal(t, "delete again", c.call("DELETE", set, url.Values{"force": {"1"}}), 500, "no such IPSet 'trusted'", "", "")
	rule := c.call("GET", base+"/rules", nil).data.([]any)[0].(map[string]any)
	if errs, _ := rule["errors"].(map[string]any); errs["source"] != "no such ipset 'trusted'" {
		t.Errorf("the rule whose ipset is gone: %v", rule)
	}
	if cl := c.call("GET", "/cluster/firewall/aliases", nil).data.([]any); len(cl) != 1 || cl[0].(map[string]any)["name"] != "backup" {
		t.Errorf("cluster aliases %v", cl)
	}
}

// TestFirewallCloneCopiesSets: a clone's file is a copy of its source's,
// aliases and ipsets too, and its own.
func TestFirewallCloneCopiesSets(t *testing.T) {
	c := &cluster{}
	f := c.firewallOf(100)
	f.init()
	f.aliases["office"] = map[string]string{"name": "office", "cidr": "10.1.0.0/16", "ipversion": "4"}
	f.ipsets["trusted"] = []map[string]string{{"cidr": "10.0.0.0/24"}}
	f.ipsetComments["trusted"] = "phoenix"
	c.cloneFirewall(100, 200)
	g := c.firewallOf(200)
	if g.aliases["office"]["cidr"] != "10.1.0.0/16" || g.ipsets["trusted"][0]["cidr"] != "10.0.0.0/24" || g.ipsetComments["trusted"] != "phoenix" {
		t.Fatalf("the clone's sets: %+v", g.fwSets)
	}
	g.ipsets["trusted"][0]["cidr"] = "10.9.0.0/24"
	g.aliases["office"]["cidr"] = "10.9.0.0/16"
	if f.ipsets["trusted"][0]["cidr"] != "10.0.0.0/24" || f.aliases["office"]["cidr"] != "10.1.0.0/16" {
		t.Error("the clone shares its source's sets")
	}
}
