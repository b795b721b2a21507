package proxmox

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"

	"github.com/phoenixhv/phoenix/reconciler"
)

// The guest firewall's API (pve-firewall src/PVE/API2/Firewall/VM.pm and
// Rules.pm). go-proxmox has no container firewall calls, so these go through
// the raw client like the config reads.

// Firewall reads a container's firewall options and rules.
func (c *Client) Firewall(ctx context.Context, node string, vmid int) (reconciler.FirewallConfig, error) {
	base := ctPath(node, vmid) + "/firewall"
	var opts map[string]any
	if err := c.call(ctx, http.MethodGet, base+"/options", nil, &opts); err != nil {
		return reconciler.FirewallConfig{}, err
	}
	fw := reconciler.FirewallConfig{Options: map[string]string{}}
	for k, v := range opts {
		if k == "digest" {
			fw.OptionsDigest = scalar(v)
			continue
		}
		fw.Options[k] = scalar(v)
	}
	var rules []map[string]any
	if err := c.call(ctx, http.MethodGet, base+"/rules", nil, &rules); err != nil {
		return reconciler.FirewallConfig{}, err
	}
	for i, r := range rules {
		pos, err := integer(r["pos"])
		if err != nil || pos != i {
			return reconciler.FirewallConfig{}, errUnexpected("GET "+base+"/rules", "pos", r["pos"])
		}
		rule := map[string]string{}
		for k, v := range r {
			switch k {
			case "pos", "ipversion":
			case "digest":
				// Every entry carries the digest of the whole list.
				fw.RulesDigest = scalar(v)
			default:
				if _, nested := v.(map[string]any); nested {
					continue // a rule's errors, which the digest ignores too
				}
				rule[k] = scalar(v)
			}
		}
		fw.Rules = append(fw.Rules, rule)
	}
	if err := c.firewallSets(ctx, base, &fw); err != nil {
		return reconciler.FirewallConfig{}, err
	}
	return fw, nil
}

// ChangeFirewall makes one write to a container's firewall.
func (c *Client) ChangeFirewall(ctx context.Context, node string, vmid int, op reconciler.FirewallOp) error {
	base := ctPath(node, vmid) + "/firewall"
	p := maps.Clone(op.Set)
	if p == nil {
		p = map[string]string{}
	}
	if len(op.Delete) > 0 {
		p["delete"] = strings.Join(op.Delete, ",")
	}
	if op.Digest != "" {
		p["digest"] = op.Digest
	}
	rule := fmt.Sprintf("%s/rules/%d", base, op.Pos)
	switch op.Kind {
	case reconciler.FirewallSetOptions:
		return c.call(ctx, http.MethodPut, base+"/options", p, nil)
	case reconciler.FirewallCreateRule:
		// Proxmox puts a new rule at the top and checks no digest; a rule
		// created without enable is disabled.
		delete(p, "digest")
		if p["enable"] == "" {
			p["enable"] = "0"
		}
		return c.call(ctx, http.MethodPost, base+"/rules", p, nil)
	case reconciler.FirewallUpdateRule:
		return c.call(ctx, http.MethodPut, rule, p, nil)
	case reconciler.FirewallMoveRule:
		// With moveto, the other arguments are ignored.
		q := map[string]string{"moveto": strconv.Itoa(op.MoveTo)}
		if op.Digest != "" {
			q["digest"] = op.Digest
		}
		return c.call(ctx, http.MethodPut, rule, q, nil)
	case reconciler.FirewallDeleteRule:
		q := map[string]string{}
		if op.Digest != "" {
			q["digest"] = op.Digest
		}
		return c.call(ctx, http.MethodDelete, rule, q, nil)
	}
	if path, method, q, ok := setWrite(base, op); ok {
		return c.call(ctx, method, path, q, nil)
	}
	return fmt.Errorf("firewall of %d: unknown write %d", vmid, op.Kind)
}

// SecurityGroups lists the names of the cluster's security groups.
func (c *Client) SecurityGroups(ctx context.Context) ([]string, error) {
	var raw []map[string]any
	if err := c.call(ctx, http.MethodGet, "/cluster/firewall/groups", nil, &raw); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(raw))
	for _, g := range raw {
		out = append(out, scalar(g["group"]))
	}
	return out, nil
}
