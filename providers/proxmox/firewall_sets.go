package proxmox

import (
	"context"
	"net/http"
	"strings"

	"github.com/phoenixhv/phoenix/reconciler"
)

// A guest's aliases and ipsets (pve-firewall src/PVE/API2/Firewall/Aliases.pm
// and IPSet.pm). Each list answers with the digest of the whole list in every
// entry; an empty list has none, and needs none: there is nothing to change
// or delete in it.

// firewallSets reads the aliases, the ipsets and each ipset's entries.
func (c *Client) firewallSets(ctx context.Context, base string, fw *reconciler.FirewallConfig) error {
	var aliases []map[string]any
	if err := c.call(ctx, http.MethodGet, base+"/aliases", nil, &aliases); err != nil {
		return err
	}
	for _, a := range aliases {
		fw.AliasesDigest = scalar(a["digest"])
		fw.Aliases = append(fw.Aliases, reconciler.FirewallAlias{Name: scalar(a["name"]), CIDR: scalar(a["cidr"]), Comment: commentOf(a)})
	}
	var sets []map[string]any
	if err := c.call(ctx, http.MethodGet, base+"/ipset", nil, &sets); err != nil {
		return err
	}
	for _, s := range sets {
		fw.IPSetsDigest = scalar(s["digest"])
		set := reconciler.FirewallIPSet{Name: scalar(s["name"]), Comment: commentOf(s)}
		var entries []map[string]any
		if err := c.call(ctx, http.MethodGet, base+"/ipset/"+set.Name, nil, &entries); err != nil {
			return err
		}
		for _, e := range entries {
			set.Digest = scalar(e["digest"])
			nomatch, _ := integer(e["nomatch"])
			set.Entries = append(set.Entries, reconciler.FirewallIPSetEntry{CIDR: scalar(e["cidr"]), NoMatch: nomatch == 1, Comment: commentOf(e)})
		}
		fw.IPSets = append(fw.IPSets, set)
	}
	return nil
}

func commentOf(m map[string]any) string {
	if v, ok := m["comment"]; ok && v != nil {
		return scalar(v)
	}
	return ""
}

// setWrite is the request of an alias or ipset write. An ipset entry's
// path holds its CIDR, slash and all: Proxmox mounts the ipset's methods
// with an empty fragment delimiter, so the rest of the path is the entry.
func setWrite(base string, op reconciler.FirewallOp) (path, method string, q map[string]string, ok bool) {
	q = map[string]string{}
	for k, v := range op.Set {
		q[k] = v
	}
	if op.Digest != "" {
		q["digest"] = op.Digest
	}
	set := base + "/ipset/" + op.Name
	switch op.Kind {
	case reconciler.FirewallCreateAlias:
		q["name"] = op.Name
		delete(q, "digest") // create_alias takes none
		return base + "/aliases", http.MethodPost, q, true
	case reconciler.FirewallUpdateAlias:
		return base + "/aliases/" + op.Name, http.MethodPut, q, true
	case reconciler.FirewallDeleteAlias:
		return base + "/aliases/" + op.Name, http.MethodDelete, onlyDigest(q), true
	case reconciler.FirewallCreateIPSet:
		q["name"] = op.Name
		return base + "/ipset", http.MethodPost, q, true
	case reconciler.FirewallUpdateIPSet:
		// A rename to its own name changes only the comment, and is the
		// one write of an ipset that checks the list's digest.
		q["name"], q["rename"] = op.Name, op.Name
		return base + "/ipset", http.MethodPost, q, true
	case reconciler.FirewallDeleteIPSet:
		// Without force Proxmox refuses a set with entries ("IPSet 'x'
		// is not empty"); the delete checks no digest.
		return set, http.MethodDelete, map[string]string{"force": "1"}, true
	case reconciler.FirewallAddIPSetEntry:
		q["cidr"] = op.CIDR
		delete(q, "digest") // create_ip takes none
		return set, http.MethodPost, q, true
	case reconciler.FirewallUpdateIPSetEntry:
		// update_ip sets nomatch and comment to what is sent: left out is removed.
		return set + "/" + op.CIDR, http.MethodPut, q, true
	case reconciler.FirewallDeleteIPSetEntry:
		return set + "/" + op.CIDR, http.MethodDelete, onlyDigest(q), true
	}
	return "", "", nil, false
}

func onlyDigest(q map[string]string) map[string]string {
	if d := q["digest"]; d != "" {
		return map[string]string{"digest": d}
	}
	return map[string]string{}
}

// ClusterFirewallSets lists the names of the cluster's aliases and ipsets.
func (c *Client) ClusterFirewallSets(ctx context.Context) (reconciler.ClusterFirewallSets, error) {
	var out reconciler.ClusterFirewallSets
	for _, l := range []struct {
		path string
		into *[]string
	}{{"/cluster/firewall/aliases", &out.Aliases}, {"/cluster/firewall/ipset", &out.IPSets}} {
		var raw []map[string]any
		if err := c.call(ctx, http.MethodGet, l.path, nil, &raw); err != nil {
			return reconciler.ClusterFirewallSets{}, err
		}
		for _, e := range raw {
			*l.into = append(*l.into, strings.ToLower(scalar(e["name"])))
		}
	}
	return out, nil
}
