package sim

import (
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The control API at PHOENIX_SIM_URL: what tests and demos read and change
// outside Proxmox's own API.
//
//	GET  /journal  every event, in order
//	GET  /stats    API requests per endpoint ("METHOD /path/{template}")
//	POST /world    change node facts: {"nodes":{"pve1":{"driverVersion":"580.95.05","uvmLoaded":true}}},
//	               or reboot a node: {"nodes":{"pve1":{"reboot":true}}}

// NodeChange is a change to one node's facts.
type NodeChange struct {
	// Online false takes the node out of reach of the cluster (proxied
	// requests answer 595), true brings it back.
	Online        *bool   `json:"online"`
	DriverVersion *string `json:"driverVersion"`
	// UVMLoaded is the running host's state: true is what
	// nvidia-modprobe -c0 -u does (/dev/nvidia-uvm* appear), until the
	// next reboot, which restores the world's boot state.
	UVMLoaded *bool `json:"uvmLoaded"`
	GPUs      *int  `json:"gpus"`
	// Reboot reboots the node after the other facts changed (a driver
	// upgrade, then the reboot it needs); see rebootNode.
	Reboot bool `json:"reboot"`
}

// WorldChange is the body of POST /world.
type WorldChange struct {
	Nodes map[string]NodeChange `json:"nodes"`
}

// Change applies a world change, as a node upgrade or reboot would.
func (s *Sim) Change(wc WorldChange) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(wc.Nodes)) {
		if s.c.node(name) == nil {
			return &apiError{Status: http.StatusNotFound, Reason: "no node " + name}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(wc.Nodes)) {
		ch, n := wc.Nodes[name], s.c.node(name)
		if ch.DriverVersion != nil {
			n.DriverVersion = *ch.DriverVersion
		}
		if ch.UVMLoaded != nil {
			v := *ch.UVMLoaded
			n.UVMLoaded = &v
		}
		if ch.GPUs != nil {
			n.GPUs = *ch.GPUs
		}
		if ch.Online != nil {
			n.offline = !*ch.Online
		}
		s.c.journal.add(s.c.now(), Event{Node: name, Kind: "world", Name: "change", OK: true})
		if ch.Reboot {
			s.c.rebootNode(n)
		}
	}
	return nil
}

// rebootNode reboots a node as a host reboot goes with pve-guests.service:
//   - on the way down, stopall (pve-manager PVE/API2/Nodes.pm) shuts every
//     running container down, highest startup order and VMID first; their
//     poststop hooks apply what was pending; then systemd signals every
//     worker still running, which dies "received interrupt" (interruptTasks);
//   - the host comes back with its kernel modules as the world boots them:
//     nvidia-uvm stays unloaded where the world says it is not loaded at boot
//     (/dev/nvidia-uvm* missing until something loads it);
//   - startall starts every onboot container (startAll).
//
// The reboot itself takes no time, and the node stays as reachable as it
// was. Call with c.mu held.
func (c *cluster) rebootNode(n *node) {
	root := caller{user: "root@pam"}
	stopall := c.newTask(n.Name, "stopall", "", root)
	for _, e := range c.startList(n.Name, false) {
		g := c.guests[e.vmid]
		if g.run == nil {
			continue
		}
		down := 180
		if e.down >= 0 {
			down = e.down
		}
		stopall.logf("Stopping CT %d (timeout = %d seconds)", e.vmid, down)
		t := c.newTask(n.Name, "vzshutdown", strconv.Itoa(e.vmid), root)
		g.stopped()
		c.finish(t, nil)
	}
	c.finish(stopall, nil)
	c.interruptTasks(n.Name)
	for _, wn := range c.world.Spec.Nodes {
		if wn.Name == n.Name && wn.UVMLoaded != nil {
			boot := *wn.UVMLoaded
			n.UVMLoaded = &boot
		}
	}
	c.journal.add(c.now(), Event{Node: n.Name, Kind: "world", Name: "reboot", OK: true})
	c.startAll(n.Name, root)
}

// startEntry is one guest of pve-manager's get_start_stop_list: its startup
// order (LONG_MAX without one) and delays, -1 where unset.
type startEntry struct {
	vmid, order, up, down int
}

// startList is get_start_stop_list (pve-manager PVE/API2/Nodes.pm) for the
// node's containers, templates left out: onboot ones only for startall,
// sorted by startup order, then VMID; reversed for stopall.
func (c *cluster) startList(nodeName string, boot bool) []startEntry {
	var out []startEntry
	for _, vmid := range slices.Sorted(maps.Keys(c.guests)) {
		g := c.guests[vmid]
		if g.node != nodeName || g.isTemplate() || boot && !boolParam(g.conf.vals["onboot"]) {
			continue
		}
		e, _ := parseStartup(g.conf.vals["startup"])
		e.vmid = vmid
		if e.order < 0 {
			e.order = math.MaxInt64
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b startEntry) int { return cmp.Compare(a.order, b.order) })
	if !boot {
		slices.Reverse(out)
	}
	return out
}

// parseStartup is PVE::JSONSchema::pve_parse_startup_order (pve-common
// src/PVE/JSONSchema.pm): [[order=]N][,up=N][,down=N]; any other part makes
// the whole value unreadable, as if unset. A missing order or delay is -1
// (order 0 is an order).
func parseStartup(v string) (startEntry, bool) {
	unset := startEntry{order: -1, up: -1, down: -1}
	e := unset
	if v == "" {
		return e, false
	}
	for p := range strings.SplitSeq(v, ",") {
		if strings.TrimSpace(p) == "" {
			continue
		}
		key, num, found := strings.Cut(p, "=")
		if !found {
			key, num = "order", p
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 || strings.ContainsAny(num, "+- ") {
			return unset, false
		}
		switch key {
		case "order":
			e.order = n
		case "up":
			e.up = n
		case "down":
			e.down = n
		default:
			return unset, false
		}
	}
	return e, true
}

// startAllWorkers is get_max_workers without max_workers set: the node's
// CPU threads less one, at most 8; the simulated nodes have 32.
const startAllWorkers = 8

// startAll is startall (pve-manager PVE/API2/Nodes.pm) as pve-guests.service
// runs it at boot, a startall worker of root@pam: per startup order group,
// in VMID order, it starts each onboot container that is not running through
// the start API (a vzstart worker of its own), waits its up delay, keeps at
// most startAllWorkers starts running, and waits for the group's starts to
// end before the next group; a start that fails is logged and never tried
// again. Its waits are the real one-second polls, scaled. Call with c.mu held.
func (c *cluster) startAll(nodeName string, who caller) {
	t := c.newTask(nodeName, "startall", "", who)
	list := c.startList(nodeName, true)
	tick := max(c.world.Scaled(Duration(time.Second)), time.Millisecond)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		sleep := func(d time.Duration) bool {
			timer := time.NewTimer(d)
			defer timer.Stop()
			select {
			case <-timer.C:
				return true
			case <-c.ctx.Done():
				return false
			}
		}
		// locked runs f with the cluster lock; false once the worker has
		// ended (killed by another reboot) or the simulator closes.
		locked := func(f func()) bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			if !t.running {
				return false
			}
			if c.ctx.Err() != nil {
				c.finish(t, errors.New("received interrupt"))
				return false
			}
			f()
			return true
		}
		var workers []*task
		// reap counts the starts still running and logs the ones that
		// failed, as finish_worker does.
		reap := func() (running int) {
			workers = slices.DeleteFunc(workers, func(w *task) bool {
				if w.running {
					running++
					return false
				}
				if statusType(w.exit) != "ok" && statusType(w.exit) != "warning" {
					t.logf("Starting CT %s failed: %s", w.id, w.exit)
				}
				return true
			})
			return running
		}
		wait := func(most int) bool {
			for {
				var running int
				if !locked(func() { running = reap() }) {
					return false
				}
				if running <= most || !sleep(tick) {
					return running <= most
				}
			}
		}
		run := func() {
			for i, e := range list {
				if !locked(func() {
					g := c.guests[e.vmid]
					if g == nil || g.node != nodeName || g.run != nil {
						return
					}
					t.logf("Starting CT %d", e.vmid)
					upid, aerr := c.start(who, nodeName, e.vmid)
					if aerr != nil {
						t.logf("%s", aerr.Reason)
						return
					}
					workers = append(workers, c.tasks[upid.(string)])
					if e.up > 0 {
						t.logf("Waiting for %d seconds (startup delay)", e.up)
					}
				}) {
					return
				}
				if e.up > 0 && !sleep(time.Duration(e.up)*tick) {
					return
				}
				if !wait(startAllWorkers - 1) {
					return
				}
				if last := i == len(list)-1; last || list[i+1].order != e.order {
					if !wait(0) {
						return
					}
				}
			}
		}
		// An early end is a reboot's kill, or the simulator closing, which
		// locked reports as the signal it is.
		run()
		locked(func() { c.finish(t, nil) })
	}()
}

// Stats returns API request counts per endpoint.
func (s *Sim) Stats() map[string]int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return maps.Clone(s.c.stats)
}

func (s *Sim) controlHandler() http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /journal", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Journal()) })
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Stats()) })
	mux.HandleFunc("POST /world", func(w http.ResponseWriter, r *http.Request) {
		var wc WorldChange
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&wc); err != nil {
			http.Error(w, "bad world change: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.Change(wc); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		writeJSON(w, map[string]string{"status": "ok"})
	})
	return mux
}

// SetScriptFault sets the failure probability of a named script's apply, as a
// test heals or breaks one step.
func (s *Sim) SetScriptFault(name string, p float64) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	scripts := maps.Clone(s.c.world.Spec.Faults.Exec.Scripts)
	if scripts == nil {
		scripts = map[string]float64{}
	}
	scripts[name] = p
	s.c.world.Spec.Faults.Exec.Scripts = scripts
}

// GuestIdentity reads what makes a container itself: a stand-in for its SSH
// host keys and its machine-id, empty where it has none. For tests.
func (s *Sim) GuestIdentity(vmid int) (hostKeys, machineID string, ok bool) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	g := s.c.guests[vmid]
	if g == nil {
		return "", "", false
	}
	return g.disk.hostKeys, g.disk.machineID, true
}
