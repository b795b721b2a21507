package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/phoenixhv/phoenix/reconciler"
)

// upidNode returns the node a task runs on: the second field of its UPID.
func upidNode(upid string) (string, error) {
	parts := strings.Split(upid, ":")
	if len(parts) < 9 || parts[0] != "UPID" || parts[1] == "" {
		return "", fmt.Errorf("not a task ID: %q", upid)
	}
	return parts[1], nil
}

// pollBackOff is the polling schedule of a task or a background change: short
// at first (most tasks are quick), growing, with jitter, bounded by ctx only.
func (c *Client) pollBackOff(ctx context.Context) backoff.BackOff {
	// The intervals go to the constructor, whose Reset starts the schedule
	// at them (backoff.Retry resets it again, but a schedule set after its
	// constructor begins at the library's default until then).
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(c.cfg.TaskPoll), backoff.WithMaxInterval(c.cfg.TaskPollMax),
		backoff.WithMultiplier(1.5), backoff.WithRandomizationFactor(0.2), backoff.WithMaxElapsedTime(0))
	return backoff.WithContext(b, ctx)
}

// poll calls check until it returns nil or a permanent error, waiting between
// calls on the poll schedule. A retryable error (a dropped connection while
// polling) is polled through.
func (c *Client) poll(ctx context.Context, check func() error) error {
	err := backoff.Retry(func() error {
		err := check()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errStillRunning), reconciler.Retryable(err):
			return err
		}
		return backoff.Permanent(err)
	}, c.pollBackOff(ctx))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// untrackedWait bounds a wait that has no task to follow: a change Proxmox
// makes in a worker it does not name, awaited through what the worker should
// leave behind. Sixty polls at the longest interval, two minutes with the
// default TaskPollMax: a worker that died unseen must not hold the caller
// forever.
func (c *Client) untrackedWait() time.Duration { return 60 * c.cfg.TaskPollMax }

// pollFor is poll bounded by untrackedWait. When the bound passes first, the
// error names what did not happen (and the last error the checks met), and
// is worth another try: the operation may be re-sent.
func (c *Client) pollFor(ctx context.Context, op, what string, check func(ctx context.Context) error) error {
	limit := c.untrackedWait()
	bounded, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	err := c.poll(bounded, func() error {
		err := check(bounded)
		if err != nil && !errors.Is(err, errStillRunning) && bounded.Err() == nil {
			last = err
		}
		return err
	})
	if err == nil || ctx.Err() != nil || bounded.Err() == nil {
		return err
	}
	msg := fmt.Sprintf("gave up after %v: %s", limit, what)
	if last != nil {
		msg += " (last error: " + last.Error() + ")"
	}
	return &reconciler.APIError{Kind: reconciler.ErrUnavailable, Op: op, Message: msg, Transient: true}
}

// nodeTasks lists the UPIDs of a node's tasks of one type for one guest.
// source=all reads the active list too: a worker is listed from its start,
// while the index (the default source) has it only once pvestatd archived
// it, up to about 10 s after it ended (pve-manager PVE/API2/Tasks.pm).
func (c *Client) nodeTasks(ctx context.Context, node string, vmid int, typ string) ([]string, error) {
	var list []struct {
		UPID string `json:"upid"`
	}
	p := map[string]string{"vmid": strconv.Itoa(vmid), "typefilter": typ, "source": "all"}
	if err := c.call(ctx, http.MethodGet, "/nodes/"+node+"/tasks", p, &list); err != nil {
		return nil, err
	}
	var out []string
	for _, t := range list {
		if t.UPID != "" {
			out = append(out, t.UPID)
		}
	}
	return out, nil
}

type taskStatus struct {
	Status     string `json:"status"`
	ExitStatus string `json:"exitstatus"`
}

// taskTimeouts bound the wait for a task, by its type: generous for what
// copies or unpacks a disk (a full clone of a large root disk on slow
// storage), short for what only changes a container's run state. A worker
// of Proxmox VE has no deadline of its own (fork_worker in pve-common
// src/PVE/RESTEnvironment.pm waits for it as long as it runs): one blocked on
// a hung storage would hold phoenix forever.
var taskTimeouts = map[string]time.Duration{
	"vzcreate":   30 * time.Minute,
	"vzclone":    30 * time.Minute,
	"resize":     30 * time.Minute,
	"vzdestroy":  10 * time.Minute,
	"vztemplate": 10 * time.Minute,
	"vzstart":    5 * time.Minute,
	"vzstop":     5 * time.Minute,
	"vzshutdown": 5 * time.Minute,
	"vzreboot":   5 * time.Minute,
}

// defaultTaskTimeout bounds a task of a type taskTimeouts does not list.
const defaultTaskTimeout = 30 * time.Minute

// taskTimeout is how long phoenix waits for a task of a type: the
// configured TaskTimeout, else the type's own bound.
func (c *Client) taskTimeout(typ string) time.Duration {
	if c.cfg.TaskTimeout > 0 {
		return c.cfg.TaskTimeout
	}
	if d, ok := taskTimeouts[typ]; ok {
		return d
	}
	return defaultTaskTimeout
}

// TaskTimeoutError is a task still running when phoenix's bound on its wait
// ran out. Phoenix stops waiting, not the task: it may still end (and
// holds the guest's lock until it does), and the next pass sees how.
type TaskTimeoutError struct {
	UPID string
	// Type and ID are the task's type (vzstart, ...) and its guest's VMID.
	Type, ID string
	After    time.Duration
}

func (e *TaskTimeoutError) Error() string {
	what := e.Type
	if e.ID != "" {
		what += " of CT " + e.ID
	}
	return fmt.Sprintf("task %s (%s) still running after %v: phoenix stopped waiting for it "+
		"(it may still end; the task log on its node says what it waits for)", e.UPID, what, e.After)
}

// ErrorKind makes a task that ran out of time a timeout to the reconciler:
// that guest fails and backs off, the others go on.
func (e *TaskTimeoutError) ErrorKind() reconciler.ErrorKind { return reconciler.ErrorTimeout }

// wait waits for a task to stop, at most its type's bound (taskTimeout).
// WARNINGS: N is success (logged); any other exit status fails with the end
// of the task log.
func (c *Client) wait(ctx context.Context, upid string) error {
	node, err := upidNode(upid)
	if err != nil {
		return err
	}
	parts := strings.Split(upid, ":")
	typ, id := parts[5], parts[6]
	limit := c.taskTimeout(typ)
	bounded, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	path := "/nodes/" + node + "/tasks/" + upid
	var st taskStatus
	err = c.poll(bounded, func() error {
		if err := c.call(bounded, http.MethodGet, path+"/status", nil, &st); err != nil {
			return err
		}
		if st.Status != "stopped" {
			return errStillRunning
		}
		return nil
	})
	if err != nil && ctx.Err() == nil && bounded.Err() != nil {
		return &TaskTimeoutError{UPID: upid, Type: typ, ID: id, After: limit}
	}
	if err != nil {
		return err
	}
	if taskOK(st.ExitStatus) {
		if st.ExitStatus != "OK" {
			c.log.Warn("proxmox task ended with warnings", "upid", upid, "exitstatus", st.ExitStatus, "log", c.logTail(ctx, path, 5))
		}
		return nil
	}
	return &reconciler.TaskError{
		UPID: upid, ExitStatus: st.ExitStatus, LogTail: c.logTail(ctx, path, 10), Transient: taskTransient(st.ExitStatus),
	}
}

// logTail returns the last lines of a task log, or nothing if it cannot be read.
func (c *Client) logTail(ctx context.Context, path string, n int) []string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var lines []struct {
		N int    `json:"n"`
		T string `json:"t"`
	}
	if err := c.call(ctx, http.MethodGet, path+"/log", map[string]string{"start": "0", "limit": "5000"}, &lines); err != nil {
		return nil
	}
	var out []string
	for _, l := range lines[max(0, len(lines)-n):] {
		out = append(out, l.T)
	}
	return out
}
