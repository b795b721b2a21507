package proxmox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
)

// Container snapshots (pve-container src/PVE/API2/LXC/Snapshot.pm). Taking,
// deleting and rolling back are workers (vzsnapshot, vzdelsnapshot,
// vzrollback) whose refusals (a template, a lock, a storage without
// snapshots) come as the task's exit status.

func snapshotPath(node string, vmid int, name string) string {
	p := ctPath(node, vmid) + "/snapshot"
	if name != "" {
		p += "/" + name
	}
	return p
}

// Snapshots lists a container's snapshots, oldest first (Proxmox lists them
// in no order), without the "current" entry.
func (c *Client) Snapshots(ctx context.Context, node string, vmid int) ([]reconciler.Snapshot, error) {
	op := "GET " + snapshotPath(node, vmid, "")
	var raw []map[string]any
	if err := c.call(ctx, http.MethodGet, snapshotPath(node, vmid, ""), nil, &raw); err != nil {
		return nil, err
	}
	out := []reconciler.Snapshot{}
	for _, r := range raw {
		name := scalar(r["name"])
		if name == "current" {
			continue
		}
		s := reconciler.Snapshot{Name: name, Description: scalar(r["description"]), Parent: scalar(r["parent"])}
		if t, ok := r["snaptime"]; ok {
			sec, err := integer(t)
			if err != nil {
				return nil, errUnexpected(op, "snaptime", t)
			}
			s.Time = time.Unix(int64(sec), 0).UTC()
		}
		out = append(out, s)
	}
	slices.SortStableFunc(out, func(a, b reconciler.Snapshot) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// CreateSnapshot snapshots a container. A name already used is what a
// repeated request (after a dropped answer) finds: success.
func (c *Client) CreateSnapshot(ctx context.Context, node string, vmid int, name, description string) error {
	p := map[string]string{"snapname": name}
	if description != "" {
		p["description"] = description
	}
	err := c.task(ctx, http.MethodPost, snapshotPath(node, vmid, ""), p)
	if taskFailedWith(err, fmt.Sprintf("snapshot name '%s' already used", name)) {
		return nil
	}
	return err
}

// DeleteSnapshot deletes a snapshot; one that does not exist is what was
// wanted.
func (c *Client) DeleteSnapshot(ctx context.Context, node string, vmid int, name string) error {
	err := c.task(ctx, http.MethodDelete, snapshotPath(node, vmid, name), nil)
	if taskFailedWith(err, fmt.Sprintf("snapshot '%s' does not exist", name)) {
		return nil
	}
	return err
}

// RollbackSnapshot puts a container back to a snapshot. Proxmox stops a
// running container first and, without start=1, leaves it stopped; its
// description (phoenix's record) stays as it is.
func (c *Client) RollbackSnapshot(ctx context.Context, node string, vmid int, name string) error {
	return c.task(ctx, http.MethodPost, snapshotPath(node, vmid, name)+"/rollback", nil)
}

// taskFailedWith reports a failed task whose exit status is text.
func taskFailedWith(err error, text string) bool {
	var te *reconciler.TaskError
	return errors.As(err, &te) && strings.TrimSpace(te.ExitStatus) == text
}
