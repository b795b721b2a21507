package sim

import (
	"fmt"
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

// startTask registers a worker and runs work after d without the cluster lock,
// then with it. work returns the task's error; its text becomes the exit status.
// Call with c.mu held.
func (c *cluster) startTask(nodeName, typ, id string, who caller, d time.Duration, work func(t *task) error) *task {
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
