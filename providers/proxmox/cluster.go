package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/phoenixhv/phoenix/reconciler"
)

func ctPath(node string, vmid int) string { return fmt.Sprintf("/nodes/%s/lxc/%d", node, vmid) }

// Guests lists every guest from one /cluster/resources call, collected from
// StreamGuests (stream.go): each entry is decoded straight into its fields
// (read.go), and a listing of thousands of guests is not built as maps first.
func (c *Client) Guests(ctx context.Context) ([]reconciler.GuestSummary, error) {
	out := []reconciler.GuestSummary{}
	err := c.StreamGuests(ctx, func(g reconciler.GuestSummary) error {
		out = append(out, g)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Nodes lists the nodes and the addresses the cluster knows them by.
func (c *Client) Nodes(ctx context.Context) ([]reconciler.NodeInfo, error) {
	var raw []map[string]any
	if err := c.call(ctx, http.MethodGet, "/cluster/status", nil, &raw); err != nil {
		return nil, err
	}
	var out []reconciler.NodeInfo
	for _, r := range raw {
		if scalar(r["type"]) != "node" {
			continue
		}
		out = append(out, reconciler.NodeInfo{Name: scalar(r["name"]), IP: scalar(r["ip"]), Online: scalar(r["online"]) == "1"})
	}
	return out, nil
}

// Status reads one container's state.
func (c *Client) Status(ctx context.Context, node string, vmid int) (reconciler.GuestSummary, error) {
	var r map[string]any
	if err := c.call(ctx, http.MethodGet, ctPath(node, vmid)+"/status/current", nil, &r); err != nil {
		return reconciler.GuestSummary{}, err
	}
	g := reconciler.GuestSummary{VMID: vmid, Type: "lxc", Node: node, Name: scalar(r["name"]), Status: scalar(r["status"]),
		Template: scalar(r["template"]) == "1", Lock: scalar(r["lock"])}
	for t := range strings.FieldsFuncSeq(scalar(r["tags"]), func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
		g.Tags = append(g.Tags, t)
	}
	return g, nil
}

// GuestConfig reads a container's config as a raw map, nothing dropped. Its
// values are decoded straight into strings (read.go), not into interfaces
// first.
func (c *Client) GuestConfig(ctx context.Context, node string, vmid int) (reconciler.Config, error) {
	op := "GET " + ctPath(node, vmid) + "/config"
	var raw map[string]jsonScalar
	if err := c.call(ctx, http.MethodGet, ctPath(node, vmid)+"/config", nil, &raw); err != nil {
		return reconciler.Config{}, err
	}
	cfg := reconciler.Config{Values: make(map[string]string, len(raw))}
	for k, v := range raw {
		switch k {
		case "digest":
			cfg.Digest = v.value()
		case "lxc":
			lines, ok := v.any().([]any)
			if !ok {
				return reconciler.Config{}, errUnexpected(op, "lxc", v.any())
			}
			for _, l := range lines {
				pair, ok := l.([]any)
				if !ok || len(pair) != 2 {
					return reconciler.Config{}, errUnexpected(op, "lxc line", l)
				}
				cfg.LXC = append(cfg.LXC, [2]string{scalar(pair[0]), scalar(pair[1])})
			}
		default:
			if v.object() {
				return reconciler.Config{}, errUnexpected(op, k, v.any())
			}
			cfg.Values[intern(k)] = internShort(v.value())
		}
	}
	return cfg, nil
}

// Create makes a container from an OS template and waits for it.
// unprivileged is always sent: its default changed between PVE 8 and 9.
func (c *Client) Create(ctx context.Context, req reconciler.CreateRequest) error {
	p := map[string]string{
		"vmid": strconv.Itoa(req.VMID), "ostemplate": req.OSTemplate, "storage": req.Storage,
		"rootfs": fmt.Sprintf("%s:%d", req.Storage, req.DiskGiB),
	}
	for k, v := range req.Options {
		p[k] = v
	}
	if _, ok := p["unprivileged"]; !ok {
		return fmt.Errorf("create %d: unprivileged must be set explicitly (its default differs between Proxmox VE 8 and 9)", req.VMID)
	}
	err := c.task(ctx, http.MethodPost, "/nodes/"+req.Node+"/lxc", p)
	// pve-container's create_vm refuses a caller without VM.Allocate with a
	// bare "Permission check failed" (raise_perm_exc()); say what it lacked.
	var ae *reconciler.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusForbidden && ae.Message == "Permission check failed" {
		return fmt.Errorf("%w (creating CT %d needs VM.Allocate on /vms/%d)", err, req.VMID, req.VMID)
	}
	return err
}

// Clone clones a container or template and waits for it.
func (c *Client) Clone(ctx context.Context, req reconciler.CloneRequest) error {
	p := map[string]string{"newid": strconv.Itoa(req.NewID), "full": boolParam(req.Full)}
	if req.Hostname != "" {
		p["hostname"] = req.Hostname
	}
	if req.Description != "" {
		p["description"] = req.Description
	}
	if req.Snapshot != "" {
		p["snapname"] = req.Snapshot
	}
	if req.Target != "" && req.Target != req.Node {
		p["target"] = req.Target
	}
	if req.Storage != "" {
		if !req.Full {
			return fmt.Errorf("clone %d: a linked clone stays on its template's storage", req.NewID)
		}
		p["storage"] = req.Storage
	}
	return c.task(ctx, http.MethodPost, ctPath(req.Node, req.SourceVMID)+"/clone", p)
}

func boolParam(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// SetConfig changes options synchronously (Proxmox answers null).
func (c *Client) SetConfig(ctx context.Context, node string, vmid int, set map[string]string, del []string, digest string) error {
	if len(set) == 0 && len(del) == 0 {
		return nil
	}
	p := map[string]string{}
	for k, v := range set {
		p[k] = v
	}
	if len(del) > 0 {
		p["delete"] = strings.Join(del, ",")
	}
	if digest != "" {
		p["digest"] = digest
	}
	return c.call(ctx, http.MethodPut, ctPath(node, vmid)+"/config", p, nil)
}

// Resize grows a disk; asking for the size it has is not an error.
func (c *Client) Resize(ctx context.Context, node string, vmid int, disk, size string) error {
	err := c.task(ctx, http.MethodPut, ctPath(node, vmid)+"/resize", map[string]string{"disk": disk, "size": size})
	if refusedWith(err, "disk is already at specified size") {
		return nil
	}
	return err
}

// Start starts a container; one that already runs is what was wanted.
func (c *Client) Start(ctx context.Context, node string, vmid int) error {
	err := c.task(ctx, http.MethodPost, ctPath(node, vmid)+"/status/start", nil)
	if refusedWith(err, "already running") {
		return nil
	}
	return err
}

// Shutdown stops a container cleanly, killing it if it has not stopped
// after a minute; one that is not running is what was wanted.
func (c *Client) Shutdown(ctx context.Context, node string, vmid int) error {
	err := c.task(ctx, http.MethodPost, ctPath(node, vmid)+"/status/shutdown", map[string]string{"timeout": "60", "forceStop": "1"})
	if refusedWith(err, "not running") {
		return nil
	}
	return err
}

// Reboot restarts a running container, applying pending changes.
func (c *Client) Reboot(ctx context.Context, node string, vmid int) error {
	return c.task(ctx, http.MethodPost, ctPath(node, vmid)+"/status/reboot", nil)
}

// ConvertToTemplate converts a stopped container. Proxmox answers null and
// converts in a vztemplate worker whose UPID it does not return, and which
// may die (plain LVM cannot hold base volumes): the worker is the vztemplate
// task of this CT in the node's task list that was not there before the
// request, and it is followed like any task, so that its failure is a
// *reconciler.TaskError with Proxmox's text. Waits without a task to follow
// (the worker not listed yet, the config after it) are bounded by
// untrackedWait.
func (c *Client) ConvertToTemplate(ctx context.Context, node string, vmid int) error {
	op := "POST " + ctPath(node, vmid) + "/template"
	isTemplate := func(ctx context.Context) error {
		cfg, err := c.GuestConfig(ctx, node, vmid)
		switch {
		case err != nil:
			return err
		case cfg.Values["template"] != "1":
			return errStillRunning
		}
		return nil
	}
	before, err := c.nodeTasks(ctx, node, vmid, "vztemplate")
	if err != nil {
		return err
	}
	err = c.call(ctx, http.MethodPost, ctPath(node, vmid)+"/template", nil, nil)
	switch {
	case refusedWith(err, "you can't convert a template to a template"):
		return c.pollFor(ctx, op, fmt.Sprintf("CT %d does not show template: 1", vmid), isTemplate)
	case err != nil:
		return err
	}
	var upid string
	err = c.pollFor(ctx, op, fmt.Sprintf("no vztemplate task of CT %d appeared on %s, and the CT does not show template: 1", vmid, node),
		func(ctx context.Context) error {
			listed, err := c.nodeTasks(ctx, node, vmid, "vztemplate")
			if err != nil {
				return err
			}
			for _, u := range listed {
				if !slices.Contains(before, u) {
					upid = u
					return nil
				}
			}
			// Not listed (to a user who may not see it, or not yet): the
			// config tells when the worker has done its work.
			return isTemplate(ctx)
		})
	if err != nil || upid == "" {
		return err
	}
	if err := c.wait(ctx, upid); err != nil {
		return err
	}
	// The worker writes template: 1 before it ends OK.
	return c.pollFor(ctx, op, fmt.Sprintf("task %s ended OK, yet CT %d does not show template: 1", upid, vmid), isTemplate)
}

// Delete destroys a container with its disks and purges it from backup jobs,
// replication and HA. A protected container is refused before any request.
func (c *Client) Delete(ctx context.Context, node string, vmid int) error {
	cfg, err := c.GuestConfig(ctx, node, vmid)
	if errors.Is(err, reconciler.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.Values["protection"] == "1" {
		return &reconciler.APIError{Kind: reconciler.ErrRefused, Op: "DELETE " + ctPath(node, vmid),
			Message: fmt.Sprintf("CT %d has protection: 1; phoenix never deletes a protected container", vmid)}
	}
	return c.task(ctx, http.MethodDelete, ctPath(node, vmid), map[string]string{"purge": "1", "destroy-unreferenced-disks": "1"})
}

// RootSession reports a root@pam password ticket: the only session Proxmox
// lets set dev[n] and features beyond nesting.
func (c *Client) RootSession() bool { return c.cfg.TokenID == "" && c.cfg.Username == "root@pam" }

// task starts an operation that answers with a UPID and waits for it.
func (c *Client) task(ctx context.Context, method, path string, params map[string]string) error {
	var upid string
	if err := c.call(ctx, method, path, params, &upid); err != nil {
		return err
	}
	return c.wait(ctx, upid)
}

// refusedWith reports a refusal whose message says that the state is already
// what the operation would make it.
func refusedWith(err error, text string) bool {
	var e *reconciler.APIError
	return errors.As(err, &e) && strings.Contains(e.Message, text)
}
