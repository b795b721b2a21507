package sim

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The read-only endpoints. Answers follow the shapes real servers send
// (answers captured from real servers): vmid a string in /nodes/{node}/lxc and an
// integer elsewhere, template only on templates in lists, no tags key when
// there are none, cpulimit as a string.

func (s *apiServer) version(request) (any, *apiError) {
	v := s.c.world.Spec.Version
	major, minor, _ := strings.Cut(v, ".")
	minor, _, _ = strings.Cut(minor, ".")
	return map[string]any{"version": v, "release": major + "." + minor, "repoid": "6d5f8a7b3c2e1d0f"}, nil
}

func (s *apiServer) clusterStatus(request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	out := []any{map[string]any{
		"type": "cluster", "id": "cluster", "name": "phoenix-sim", "nodes": len(s.c.nodes), "quorate": 1, "version": len(s.c.nodes) + 1,
	}}
	for i, n := range s.c.nodes {
		out = append(out, map[string]any{
			"type": "node", "id": "node/" + n.Name, "name": n.Name, "nodeid": i + 1, "ip": n.ip,
			"online": boolInt(!n.offline), "local": boolInt(i == 0), "level": "",
		})
	}
	return out, nil
}

func nodeStatus(n *node) string {
	if n.offline {
		return "offline"
	}
	return "online"
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

const gib = 1 << 30

// vmResource is a QEMU VM's entry in /cluster/resources (pve-manager
// src/PVE/API2/Cluster.pm): the same keys as a container's, type qemu, its
// id under qemu/. A VM carrying a tag is still a VM.
func vmResource(v *vm) map[string]any {
	status := "stopped"
	if v.running {
		status = "running"
	}
	r := map[string]any{
		"id": fmt.Sprintf("qemu/%d", v.vmid), "type": "qemu", "vmid": v.vmid, "node": v.node, "cpus": 2,
		"name": v.name, "status": status, "template": boolInt(v.template),
		"maxmem": 4 * gib, "maxdisk": 32 * gib, "maxcpu": 2,
		"mem": 0, "disk": 0, "cpu": 0, "uptime": 0, "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
	}
	if v.tags != "" {
		r["tags"] = v.tags
	}
	return r
}

func (s *apiServer) guestResource(g *guest) map[string]any {
	v := g.conf.vals
	mem, _ := strconv.Atoi(v["memory"])
	if mem == 0 {
		mem = 512
	}
	cores, _ := strconv.Atoi(v["cores"])
	if cores == 0 {
		cores = 1
	}
	// cpus is the core count, or the cpulimit when one is set: then a
	// fraction, which typed clients expecting an integer fail to read.
	var cpus any = cores
	if l, err := strconv.ParseFloat(v["cpulimit"], 64); err == nil && l > 0 {
		cpus = l
	}
	r := map[string]any{
		"id": fmt.Sprintf("lxc/%d", g.vmid), "type": "lxc", "vmid": g.vmid, "node": g.node, "cpus": cpus,
		"name": v["hostname"], "status": g.status(), "template": boolInt(g.isTemplate()),
		"maxmem": mem << 20, "maxdisk": rootfsSizeGiB(v["rootfs"]) * gib, "maxcpu": cores,
		"mem": 0, "disk": 0, "cpu": 0, "uptime": 0, "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
	}
	if g.run != nil {
		r["uptime"] = int(s.c.now().Sub(g.run.started).Seconds())
		r["mem"] = 48 << 20
	}
	if t := v["tags"]; t != "" {
		r["tags"] = t
	}
	if g.lock != "" {
		r["lock"] = g.lock
	}
	return r
}

func (s *apiServer) clusterResources(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	typ := r.params["type"]
	out := []any{}
	if typ == "" || typ == "node" {
		for _, n := range s.c.nodes {
			out = append(out, map[string]any{
				"id": "node/" + n.Name, "type": "node", "node": n.Name, "status": nodeStatus(n),
				"maxcpu": 32, "maxmem": 256 * gib, "maxdisk": 1000 * gib, "cpu": 0.02, "mem": 8 * gib,
				"disk": 20 * gib, "uptime": 86400, "level": "", "cgroup-mode": 2,
			})
		}
	}
	if typ == "" || typ == "vm" {
		ids := slices.Sorted(maps.Keys(s.c.guests))
		for vmid := range s.c.vms {
			ids = append(ids, vmid)
		}
		slices.Sort(ids)
		for _, vmid := range ids {
			if v := s.c.vms[vmid]; v != nil {
				out = append(out, vmResource(v))
				continue
			}
			out = append(out, s.guestResource(s.c.guests[vmid]))
		}
	}
	if typ == "" || typ == "storage" {
		// pve-manager's PVE/API2/Cluster.pm lists the storages enabled on
		// each node (PVE/API2Tools.pm extract_storage_stats); sizes and
		// "available" come from the RRD data pvestatd sends for active
		// storages only, so an inactive one is "unknown" without sizes.
		for _, n := range s.c.nodes {
			for _, st := range n.Storages {
				if !st.IsEnabled() {
					continue
				}
				e := map[string]any{
					"id": "storage/" + n.Name + "/" + st.Name, "type": "storage", "node": n.Name, "storage": st.Name,
					"plugintype": st.Type, "content": strings.Join(st.Content, ","), "shared": boolInt(st.IsShared()),
					"status": "unknown",
				}
				if st.IsActive() {
					e["status"], e["disk"], e["maxdisk"] = "available", s.c.storageUsed(n, st), storageTotal(st)
				}
				out = append(out, e)
			}
		}
	}
	return out, nil
}

func (s *apiServer) nextID(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if v, ok := r.params["vmid"]; ok {
		id, _ := strconv.Atoi(v)
		if s.c.guests[id] != nil || s.c.vms[id] != nil {
			return nil, paramError(map[string]string{"vmid": fmt.Sprintf("VM %d already exists", id)})
		}
		return strconv.Itoa(id), nil
	}
	return strconv.Itoa(s.c.nextVMID()), nil
}

func (s *apiServer) nodesList(request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	out := []any{}
	for _, n := range s.c.nodes {
		out = append(out, map[string]any{
			"node": n.Name, "id": "node/" + n.Name, "type": "node", "status": nodeStatus(n), "level": "",
			"maxcpu": 32, "maxmem": 256 * gib, "mem": 8 * gib, "maxdisk": 1000 * gib, "disk": 20 * gib,
			"cpu": 0.02, "uptime": 86400,
			"ssl_fingerprint": "10:94:FF:EE:95:B2:AF:57:C6:A9:2B:C7:E1:0E:F9:A2:33:64:13:D4:AB:9F:C2:BD:74:44:88:67:A2:5A:D8:3A",
		})
	}
	return out, nil
}

func (s *apiServer) nodeStatus(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	n := s.c.node(r.node())
	if n == nil {
		return nil, die("no such cluster node '%s'", r.node())
	}
	return map[string]any{
		"uptime": 86400, "pveversion": "pve-manager/" + s.c.world.Spec.Version + "/6d5f8a7b3c2e1d0f",
		"kversion": "Linux 6.14.8-2-pve #1 SMP PREEMPT_DYNAMIC PMX 6.14.8-2 (2025-07-22T10:04Z) x86_64",
		"cpu":      0.02, "wait": 0, "loadavg": []string{"0.10", "0.12", "0.09"},
		"memory":         map[string]any{"total": 256 * gib, "used": 8 * gib, "free": 248 * gib},
		"swap":           map[string]any{"total": 8 * gib, "used": 0, "free": 8 * gib},
		"rootfs":         map[string]any{"total": 100 * gib, "used": 20 * gib, "free": 80 * gib, "avail": 80 * gib},
		"cpuinfo":        map[string]any{"cpus": 32, "sockets": 1, "cores": 16, "model": "AMD EPYC 7302P 16-Core Processor", "hvm": "1"},
		"current-kernel": map[string]any{"sysname": "Linux", "release": "6.14.8-2-pve", "machine": "x86_64"},
	}, nil
}

func (s *apiServer) lxcList(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.node(r.node()) == nil {
		return nil, die("no such cluster node '%s'", r.node())
	}
	out := []any{}
	for _, vmid := range slices.Sorted(maps.Keys(s.c.guests)) {
		g := s.c.guests[vmid]
		// pve-container src/PVE/API2/LXC.pm vmlist: only CTs the caller
		// has VM.Audit on.
		if g.node != r.node() || !s.c.can(r.who, fmt.Sprintf("/vms/%d", vmid), "VM.Audit") {
			continue
		}
		e := s.guestResource(g)
		delete(e, "id")
		delete(e, "node")
		e["vmid"] = strconv.Itoa(g.vmid) // a string here, an integer elsewhere
		e["type"] = "lxc"
		if !g.isTemplate() {
			delete(e, "template")
		}
		if g.run != nil {
			e["pid"] = g.run.pid
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *apiServer) lxcIndex(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if _, err := s.c.lookup(r.node(), r.vmid()); err != nil {
		return nil, err
	}
	var out []any
	for _, sub := range []string{"config", "status", "vncproxy", "termproxy", "vncwebsocket", "spiceproxy",
		"migrate", "clone", "rrd", "rrddata", "firewall", "snapshot", "resize", "pending", "interfaces", "mtunnel"} {
		out = append(out, map[string]string{"subdir": sub})
	}
	return out, nil
}

func (s *apiServer) lxcConfig(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	g, err := s.c.lookup(r.node(), r.vmid())
	if err != nil {
		return nil, err
	}
	vals := g.conf.effective()
	if boolParam(r.params["current"]) {
		vals = g.conf.vals
	}
	out := map[string]any{"digest": g.conf.digest()}
	for k, v := range vals {
		if k == "description" {
			v = readDescription(v)
		}
		out[k] = jsonValue(k, v)
	}
	if g.lock != "" {
		out["lock"] = g.lock
	}
	if len(g.conf.lxc) > 0 {
		lines := [][]string{}
		for _, l := range g.conf.lxc {
			lines = append(lines, []string{l[0], l[1]})
		}
		out["lxc"] = lines
	}
	return out, nil
}

func (s *apiServer) lxcPending(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	g, err := s.c.lookup(r.node(), r.vmid())
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for k := range g.conf.vals {
		keys[k] = true
	}
	for k := range g.conf.pending {
		keys[k] = true
	}
	for _, k := range g.conf.pendingDel {
		keys[k] = true
	}
	// config_with_pending_array (pve-guest-common src/PVE/GuestHelpers.pm)
	// walks the loaded config, which holds its digest and lock as keys too.
	keys["digest"] = true
	if g.lock != "" {
		keys["lock"] = true
	}
	out := map[string]map[string]any{}
	for k := range keys {
		e := map[string]any{}
		switch {
		case k == "digest":
			e["value"] = g.conf.digest()
		case k == "lock" && g.lock != "":
			e["value"] = g.lock
		}
		if v, ok := g.conf.vals[k]; ok {
			e["value"] = jsonValue(k, v)
		}
		if v, ok := g.conf.pending[k]; ok {
			e["pending"] = jsonValue(k, v)
		}
		if slices.Contains(g.conf.pendingDel, k) {
			e["delete"] = 1
		}
		out[k] = e
	}
	// The entries come in the order of Perl hashes, that is none.
	return s.c.hashToArray(out, "key"), nil
}

func (s *apiServer) lxcStatus(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	g, err := s.c.lookup(r.node(), r.vmid())
	if err != nil {
		return nil, err
	}
	e := s.guestResource(g)
	delete(e, "id")
	delete(e, "node")
	e["ha"] = map[string]any{"managed": 0}
	if g.run != nil {
		e["pid"] = g.run.pid
	}
	return e, nil
}

func (s *apiServer) taskJSON(t *task) map[string]any {
	e := map[string]any{
		"upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.start.Unix(),
		"type": t.typ, "id": t.id, "user": t.caller.user, "status": "running",
	}
	if t.caller.token != "" {
		e["tokenid"] = t.caller.token
	}
	if !t.running {
		e["status"] = "stopped"
		e["exitstatus"] = t.exit
	}
	return e
}

func (s *apiServer) task(r request) (*task, *apiError) {
	t := s.c.tasks[r.params["upid"]]
	if t == nil || t.node != r.node() {
		return nil, die("no such task")
	}
	return t, nil
}

func (s *apiServer) taskStatus(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	t, err := s.task(r)
	if err != nil {
		return nil, err
	}
	return s.taskJSON(t), nil
}

func (s *apiServer) taskLog(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	t, err := s.task(r)
	if err != nil {
		return nil, err
	}
	start, _ := strconv.Atoi(r.params["start"])
	limit := 50
	if v, ok := r.params["limit"]; ok {
		limit, _ = strconv.Atoi(v)
	}
	out := []any{}
	for i := start; i < len(t.log) && len(out) < limit; i++ {
		out = append(out, map[string]any{"n": i + 1, "t": t.log[i]})
	}
	return out, nil
}

// taskList is GET /nodes/{node}/tasks, as node_tasks in pve-manager's
// PVE/API2/Tasks.pm answers it:
//   - source=active lists the active list's tasks that are not yet archived
//     (in start order, status RUNNING even when they have ended: the list
//     learns how a task ended only when it archives it); archive (the
//     default) the task index, newest archived first, with the status and the
//     time of archiving as endtime; all the active ones, then the index. A
//     task ends up in the index at pvestatd's next update cycle (archived).
//   - userfilter matches the user (token tasks: without the token) as a
//     case-insensitive substring; typefilter the type exactly; vmid the ID;
//     since and until the start time.
//   - statusfilter keeps the listed status types (ok, warning, error,
//     unknown; a task without a status is unknown); errors=1 drops ok only
//     and overrides statusfilter.
//   - start skips that many matches, limit (default 50) caps the answer.
//
// Every caller of the simulator may audit the node (root@pam and its
// tokens), so no task is hidden from the one who asks.
func (s *apiServer) taskList(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	p := r.params
	start, limit := 0, 50
	if v, ok := p["start"]; ok {
		start, _ = strconv.Atoi(v)
	}
	if v, ok := p["limit"]; ok {
		limit, _ = strconv.Atoi(v)
	}
	source := cmpOr(p["source"], "archive")
	statuses := map[string]bool{"ok": true, "warning": true, "error": true, "unknown": true}
	switch {
	case p["statusfilter"] != "" && !boolParam(p["errors"]):
		statuses = map[string]bool{}
		for _, f := range splitList(p["statusfilter"]) {
			statuses[strings.ToLower(f)] = true
		}
	case boolParam(p["errors"]):
		statuses["ok"] = false
	}
	since, hasSince := p["since"]
	until, hasUntil := p["until"]
	count := 0
	listed := func(t *task, status string) bool {
		switch {
		case p["userfilter"] != "" && !strings.Contains(strings.ToLower(t.caller.user), strings.ToLower(p["userfilter"])):
			return false
		case p["typefilter"] != "" && t.typ != p["typefilter"]:
			return false
		case p["vmid"] != "" && t.id != p["vmid"]:
			return false
		case hasSince && t.start.Unix() < int64(atoiOr0(since)):
			return false
		case hasUntil && t.start.Unix() > int64(atoiOr0(until)):
			return false
		case !statuses[statusType(status)]:
			return false
		}
		count++
		if count <= start || limit <= 0 {
			return false
		}
		limit--
		return true
	}
	var active, index []*task
	archivedAt := map[*task]time.Time{}
	for _, id := range s.c.order {
		t := s.c.tasks[id]
		if t.node != r.node() {
			continue
		}
		if at, done := s.c.archived(t); done {
			archivedAt[t] = at
			index = append(index, t)
		} else {
			active = append(active, t)
		}
	}
	out := []any{}
	if source == "active" || source == "all" {
		for _, t := range active {
			if listed(t, "") {
				e := s.taskJSON(t)
				e["status"], e["saved"] = "RUNNING", "0"
				delete(e, "exitstatus")
				out = append(out, e)
			}
		}
	}
	if source != "active" {
		// The index is read backwards: the last batch archived comes first,
		// and a batch was written newest first, so within it the oldest.
		slices.SortStableFunc(index, func(a, b *task) int {
			if c := archivedAt[b].Compare(archivedAt[a]); c != 0 {
				return c
			}
			return a.start.Compare(b.start)
		})
		for _, t := range index {
			if listed(t, t.exit) {
				e := s.taskJSON(t)
				e["status"], e["endtime"] = t.exit, archivedAt[t].Unix()
				delete(e, "exitstatus")
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// storageContent is GET /nodes/{node}/storage/{storage}/content, which is
// PVE::Storage::volume_list (pve-storage src/PVE/Storage.pm): the storage
// must exist in storage.cfg; only the content types it holds are listed; it
// is activated first (disabled, restricted to other nodes or inactive: a
// 500); volumes come sorted by their lower-cased ID.
func (s *apiServer) storageContent(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	n := s.c.node(r.node())
	if n == nil {
		return nil, die("no such cluster node '%s'", r.node())
	}
	st, aerr := s.c.storageCheckEnabled(r.params["storage"], n.Name)
	if aerr != nil {
		return nil, aerr
	}
	if err := activateStorage(st); err != nil {
		return nil, die("%v", err)
	}
	want := func(ct string) bool {
		return slices.Contains(st.Content, ct) && (r.params["content"] == "" || r.params["content"] == ct)
	}
	out := []map[string]any{}
	if want("vztmpl") {
		for _, t := range s.c.osTemplates(n) {
			if strings.HasPrefix(t, st.Name+":") {
				out = append(out, map[string]any{"volid": t, "format": "tzst", "content": "vztmpl", "size": templateSize, "ctime": 1757349290})
			}
		}
	}
	if want("rootdir") {
		for _, vmid := range slices.Sorted(maps.Keys(s.c.guests)) {
			g := s.c.guests[vmid]
			vol := propString(g.conf.vals["rootfs"], "volume")["volume"]
			if (g.node == n.Name || st.IsShared()) && strings.HasPrefix(vol, st.Name+":") {
				out = append(out, map[string]any{"volid": vol, "format": "raw", "content": "rootdir", "vmid": vmid,
					"size": rootfsSizeGiB(g.conf.vals["rootfs"]) * gib, "ctime": 1757349290})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b map[string]any) int {
		return strings.Compare(strings.ToLower(a["volid"].(string)), strings.ToLower(b["volid"].(string)))
	})
	list := []any{}
	for _, e := range out {
		list = append(list, e)
	}
	return list, nil
}
