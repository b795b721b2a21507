package sim

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// task is a Proxmox worker: identified by its UPID, running until its work is
// done, then stopped with an exit status that alone says whether it failed.
type task struct {
	upid     string
	node     string
	typ      string // vzcreate, vzclone, vzstart, ...
	id       string
	caller   caller
	pid      int
	pstart   int
	start    time.Time
	end      time.Time
	running  bool
	exit     string
	log      []string
	warnings int
	// interrupt is the worker's own error handling when a signal ends it
	// early (a host reboot): it cleans up what the worker had made and
	// returns the task's error. Nil: the error is the signal's alone.
	interrupt func(err error) error
	// killed is a worker a signal ended: its work never runs.
	killed bool
}

// logf appends a line to the task log.
func (t *task) logf(format string, args ...any) {
	t.log = append(t.log, fmt.Sprintf(format, args...))
}

// warnf logs a warning; a task with warnings ends "WARNINGS: N", which is success.
func (t *task) warnf(format string, args ...any) {
	t.warnings++
	t.logf("WARN: "+format, args...)
}

// upid formats Proxmox's task ID: UPID:node:pid:pstart:starttime:type:id:user:
// with pid, pstart and starttime as 8 upper-case hex digits.
func upid(node string, pid, pstart int, start time.Time, typ, id string, who caller) string {
	return fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", node, pid, pstart, start.Unix(), typ, id, who)
}

// newTask registers a worker that has started on a node, as fork_worker
// (pve-common src/PVE/RESTEnvironment.pm) does: a UPID, a line in the active
// list, a start in the journal. Call with c.mu held.
func (c *cluster) newTask(nodeName, typ, id string, who caller) *task {
	c.pid++
	now := c.now()
	t := &task{
		node: nodeName, typ: typ, id: id, caller: who, pid: c.pid,
		pstart: int(now.Sub(c.journal.epoch()) / (10 * time.Millisecond)), start: now, running: true,
	}
	t.upid = upid(nodeName, t.pid, t.pstart, now, typ, id, who)
	c.tasks[t.upid] = t
	c.order = append(c.order, t.upid)
	c.journal.add(c.now(), Event{Node: nodeName, VMID: atoiOr0(id), Kind: "task", Name: typ, Detail: "started " + t.upid, OK: true})
	return t
}

// startTask registers a worker and runs work after d without the cluster lock,
// then with it. work returns the task's error; its text becomes the exit status.
// Call with c.mu held.
func (c *cluster) startTask(nodeName, typ, id string, who caller, d time.Duration, work func(t *task) error) *task {
	t := c.newTask(nodeName, typ, id, who)
	if c.taskHangs(typ, id) {
		c.hangTask(t)
		return t
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-c.ctx.Done():
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.killed {
			return
		}
		err := work(t)
		if c.ctx.Err() != nil && err == nil {
			err = fmt.Errorf("interrupted by signal")
		}
		if err == nil && c.chance(c.world.Spec.Faults.TaskWarnings) {
			t.warnf("unable to apply the host's default sysctl settings (injected warning)")
		}
		c.finish(t, err)
	}()
	return t
}

// interruptTasks ends every worker running on a node the way a shutdown
// does: systemd signals them, and fork_worker's handler (pve-common
// src/PVE/RESTEnvironment.pm) dies "received interrupt" into the worker's
// own error handling. Call with c.mu held.
func (c *cluster) interruptTasks(nodeName string) {
	for _, id := range c.order {
		t := c.tasks[id]
		if t.node != nodeName || !t.running {
			continue
		}
		err := errors.New("received interrupt")
		if t.interrupt != nil {
			err = t.interrupt(err)
		}
		t.killed = true
		c.finish(t, err)
	}
}

// archiveCycle is how often pvestatd's update_status (pve-manager
// PVE/Service/pvestatd.pm, $updatetime = 10) calls active_workers
// (pve-common src/PVE/RESTEnvironment.pm), which moves the tasks that have
// ended from the active list into the task index, with the time it noticed
// as their end time.
const archiveCycle = Duration(10 * time.Second)

// archived reports whether a task has moved into the task index, and when:
// at the first update cycle after it ended, up to archiveCycle later.
func (c *cluster) archived(t *task) (time.Time, bool) {
	if t.running {
		return time.Time{}, false
	}
	at := t.end
	if cycle := c.world.Scaled(archiveCycle); cycle > 0 {
		epoch := c.journal.epoch()
		at = epoch.Add((t.end.Sub(epoch)/cycle + 1) * cycle)
	}
	return at, !c.now().Before(at)
}

// finish stops a task with its exit status and the closing log line.
func (c *cluster) finish(t *task, err error) {
	t.running = false
	t.end = c.now()
	switch {
	case err != nil:
		t.exit = strings.ReplaceAll(strings.TrimRight(err.Error(), "\n"), "\n", " ")
		t.logf("TASK ERROR: %s", t.exit)
	case t.warnings > 0:
		t.exit = fmt.Sprintf("WARNINGS: %d", t.warnings)
		t.logf("TASK WARNINGS: %d", t.warnings)
	default:
		t.exit = "OK"
		t.logf("TASK OK")
	}
	c.journal.add(c.now(), Event{Node: t.node, VMID: atoiOr0(t.id), Kind: "task", Name: t.typ, OK: err == nil, Detail: t.exit})
}

func atoiOr0(s string) int {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		return 0
	}
	return n
}

// statusType is PVE::UPID::normalize_status_type (pve-common
// src/PVE/UPID.pm): ok, warning, error, or unknown for a task without a
// status yet (running, or ended and not yet archived).
func statusType(status string) string {
	switch {
	case status == "" || status == "unexpected status":
		return "unknown"
	case status == "OK":
		return "ok"
	case warningsRE.MatchString(status):
		return "warning"
	}
	return "error"
}

var warningsRE = regexp.MustCompile(`^WARNINGS: \d+$`)
