package proxmox

import (
	"context"
	"net/http"
	"net/url"

	"github.com/phoenixhv/phoenix/reconciler"
)

// Appliances reads the node's appliance index. Proxmox answers the entries
// of PVE::APLInfo::load_data (pve-manager PVE/APLInfo.pm) as they are:
// template, section, type, headline, location, sha512sum, ...
func (c *Client) Appliances(ctx context.Context, node string) ([]reconciler.Appliance, error) {
	op := "GET /nodes/" + node + "/aplinfo"
	var raw []map[string]any
	if err := c.call(ctx, http.MethodGet, "/nodes/"+url.PathEscape(node)+"/aplinfo", nil, &raw); err != nil {
		return nil, err
	}
	out := make([]reconciler.Appliance, 0, len(raw))
	for _, r := range raw {
		a := reconciler.Appliance{Template: scalar(r["template"]), Section: scalar(r["section"]), Type: scalar(r["type"])}
		if a.Template == "" {
			return nil, errUnexpected(op, "appliance without a template", r)
		}
		out = append(out, a)
	}
	return out, nil
}

// DownloadAppliance downloads a template of the node's appliance index to a
// storage, as pveam download does, and waits for the task.
func (c *Client) DownloadAppliance(ctx context.Context, node, storage, template string) error {
	return c.task(ctx, http.MethodPost, "/nodes/"+url.PathEscape(node)+"/aplinfo", map[string]string{"storage": storage, "template": template})
}

// DownloadURL downloads a file into a storage and waits for the task, which
// fails when the file's checksum is not the one given.
func (c *Client) DownloadURL(ctx context.Context, req reconciler.DownloadRequest) error {
	p := map[string]string{"content": req.Content, "filename": req.Filename, "url": req.URL}
	if req.Checksum != "" {
		p["checksum"], p["checksum-algorithm"] = req.Checksum, req.ChecksumAlgorithm
	}
	return c.task(ctx, http.MethodPost, "/nodes/"+url.PathEscape(req.Node)+"/storage/"+url.PathEscape(req.Storage)+"/download-url", p)
}
