package proxmox

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/phoenixhv/phoenix/reconciler"
)

// Pending reads a container's pending list. Proxmox answers one entry per
// option, with value, pending and delete present only when they apply. The
// entries are decoded straight into their fields (read.go).
func (c *Client) Pending(ctx context.Context, node string, vmid int) ([]reconciler.PendingOption, error) {
	op := "GET " + ctPath(node, vmid) + "/pending"
	var raw []struct {
		Key     jsonScalar `json:"key"`
		Value   jsonScalar `json:"value"`
		Pending jsonScalar `json:"pending"`
		Delete  jsonScalar `json:"delete"`
	}
	if err := c.call(ctx, http.MethodGet, ctPath(node, vmid)+"/pending", nil, &raw); err != nil {
		return nil, err
	}
	out := make([]reconciler.PendingOption, 0, len(raw))
	for _, r := range raw {
		key := r.Key.value()
		if key == "" {
			return nil, errUnexpected(op, "entry without a key", r)
		}
		p := reconciler.PendingOption{Key: key, Value: r.Value.value()}
		if r.Pending.set() {
			p.Pending, p.HasPending = r.Pending.value(), true
		}
		if d := r.Delete.value(); d != "" && d != "0" {
			p.Delete = true
		}
		out = append(out, p)
	}
	return out, nil
}

// Storages lists the storages a node sees.
func (c *Client) Storages(ctx context.Context, node string) ([]reconciler.StorageInfo, error) {
	op := "GET /nodes/" + node + "/storage"
	var raw []map[string]any
	if err := c.call(ctx, http.MethodGet, "/nodes/"+url.PathEscape(node)+"/storage", nil, &raw); err != nil {
		return nil, err
	}
	out := make([]reconciler.StorageInfo, 0, len(raw))
	for _, r := range raw {
		name := scalar(r["storage"])
		if name == "" {
			return nil, errUnexpected(op, "storage without a name", r)
		}
		st := reconciler.StorageInfo{Name: name, Type: scalar(r["type"]), Shared: scalar(r["shared"]) == "1",
			// Proxmox leaves out active and enabled on some storage types:
			// absent is not a reason to refuse the storage.
			Active: scalar(r["active"]) != "0", Enabled: scalar(r["enabled"]) != "0"}
		for part := range strings.SplitSeq(scalar(r["content"]), ",") {
			if part = strings.TrimSpace(part); part != "" {
				st.Content = append(st.Content, part)
			}
		}
		slices.Sort(st.Content)
		out = append(out, st)
	}
	return out, nil
}

// Volumes lists the volume IDs of one content type on a node's storage.
func (c *Client) Volumes(ctx context.Context, node, storage, content string) ([]string, error) {
	path := "/nodes/" + url.PathEscape(node) + "/storage/" + url.PathEscape(storage) + "/content"
	var raw []map[string]any
	var params map[string]string
	if content != "" {
		params = map[string]string{"content": content}
	}
	if err := c.call(ctx, http.MethodGet, path, params, &raw); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		if v := scalar(r["volid"]); v != "" {
			out = append(out, v)
		}
	}
	return out, nil
}

// Bridges lists a node's bridges: Linux and OVS bridges and SDN vnets,
// everything a container's netN may name as its bridge.
func (c *Client) Bridges(ctx context.Context, node string) ([]string, error) {
	var raw []map[string]any
	if err := c.call(ctx, http.MethodGet, "/nodes/"+url.PathEscape(node)+"/network", map[string]string{"type": "any_bridge"}, &raw); err != nil {
		return nil, err
	}
	var out []string
	for _, r := range raw {
		if name := scalar(r["iface"]); name != "" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Endpoint is the API base URL the client talks to (no credentials in it).
func (c *Client) Endpoint() string { return c.cfg.Endpoint }
