package sim

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/phoenixhv/phoenix/providers/pveapi"
)

// caller is who sent an API request: a user, and for token requests the token.
type caller struct {
	user  string // root@pam
	token string // the token name after !, empty for a ticket
}

// rootTicket reports whether the caller may do what Proxmox reserves for
// root@pam itself: a password ticket, never a token, not even root's.
func (c caller) rootTicket() bool { return c.user == "root@pam" && c.token == "" }

func (c caller) String() string {
	if c.token != "" {
		return c.user + "!" + c.token
	}
	return c.user
}

// node is one simulated Proxmox node.
type node struct {
	WorldNode
	ip    string            // its loopback address, reported in /cluster/status
	files map[string]string // host files phoenix created (path -> content id)
	// dirs are the directories phoenix made on the node (bind mount
	// directories), with their owners; WorldNode.Directories were there.
	dirs map[string]hostDir
	// offline is a node the cluster cannot reach: requests proxied to it fail.
	offline bool
}

// devicePaths lists the NVIDIA device nodes that exist on the host with their
// major:minor numbers. A host without a driver has none, whatever its PCI bus holds.
func (n *node) devices() []hostDevice {
	if n.DriverVersion == "" {
		return nil
	}
	var out []hostDevice
	for i := range n.GPUs {
		out = append(out, hostDevice{fmt.Sprintf("/dev/nvidia%d", i), 195, i})
	}
	out = append(out, hostDevice{"/dev/nvidiactl", 195, 255}, hostDevice{"/dev/nvidia-modeset", 195, 254})
	if *n.UVMLoaded {
		out = append(out, hostDevice{"/dev/nvidia-uvm", n.UVMMajor, 0}, hostDevice{"/dev/nvidia-uvm-tools", n.UVMMajor, 1})
	}
	out = append(out, hostDevice{"/dev/nvidia-caps/nvidia-cap1", n.CapsMajor, 1},
		hostDevice{"/dev/nvidia-caps/nvidia-cap2", n.CapsMajor, 2})
	return out
}

type hostDevice struct {
	path         string
	major, minor int
}

func (n *node) hasDevice(path string) bool {
	for _, d := range n.devices() {
		if d.path == path {
			return true
		}
	}
	// Device nodes that every host has.
	return slices.Contains([]string{"/dev/null", "/dev/zero", "/dev/fuse", "/dev/net/tun", "/dev/kvm"}, path)
}

func (n *node) storage(name string) (WorldStorage, bool) {
	for _, s := range n.Storages {
		if s.Name == name {
			return s, true
		}
	}
	return WorldStorage{}, false
}

// guest is one container.
type guest struct {
	vmid int
	node string
	conf *ctConfig
	lock string
	run  *runState // nil while stopped
	disk *disk     // the root filesystem's content
	// snaps are its snapshots by name (snapshots.go).
	snaps map[string]*snapshot
}

// stopped is a container that has just stopped: its poststop hook
// (pve-container src/lxc-pve-poststop-hook) applies what was pending.
func (g *guest) stopped() {
	g.run = nil
	g.conf.applyPending()
}

func (g *guest) isTemplate() bool { return g.conf.vals["template"] == "1" }

func (g *guest) status() string {
	if g.run != nil {
		return "running"
	}
	return "stopped"
}

// runState is what a started container has: when its network comes up, and
// the devices it was started with, visible inside from a moment on.
type runState struct {
	started   time.Time
	netUp     time.Time
	devicesAt time.Time
	devices   []string
	// hotplugged are the devices passed through while it runs: each node
	// is created inside at once (device_passthrough_hotplug, pve-container
	// src/PVE/LXC.pm).
	hotplugged []string
	// access is how each passed device node is made inside: its mode and
	// owner, from the devN value it was passed with.
	access   map[string]nodeAccess
	features string // the features option the container started with
	unpriv   bool
	pid      int
	// services are the states of the services systemd started (active,
	// failed) or stopped, by name (guestfiles.go).
	services map[string]string
}

// cluster is the whole simulated state, guarded by one mutex. Long operations
// are tasks that sleep without the lock and take it to apply their effect.
type cluster struct {
	mu      sync.Mutex
	world   *World
	now     func() time.Time
	rng     *rand.Rand
	ids     *rand.Rand
	nodes   []*node
	guests  map[int]*guest
	vms     map[int]*vm // QEMU VMs: listed, holding their VMIDs, missed by every lxc path
	tasks   map[string]*task
	order   []string // task UPIDs in start order
	journal *journal
	stats   map[string]int
	pid     int
	ctx     context.Context // cancelled when the simulator closes: tasks stop waiting
	wg      sync.WaitGroup
	// storageFree is when each storage's lock is free again after the
	// allocations of the full clones under way ("node/storage" for a
	// storage of one node; see clone).
	storageFree map[string]time.Time
	// firewalls are the guests' firewall files, by VMID (firewall.go).
	firewalls map[int]*vmFirewall
	// configMethod is PUT .../config in the schema: which keys are options.
	configMethod *pveapi.Method
	// cfs is the cluster file system's locks and phoenix's files beside
	// them, the same on every node (see pmxcfs.go); made on first use.
	cfs *pmxcfs
	// procs are the scripts that run on in containers and nodes after
	// their session ended (see hang.go).
	procs []*proc
	// real runs the containers for real in a world with realGuests (see
	// real.go); nil in a model-only world.
	real *realGuests
	// serviceFails counts the failed starts of faults.services, by key.
	serviceFails map[string]int
	// bodyExits are the outcomes tests give user script bodies (usersteps.go).
	bodyExits map[bodyKey]bodyExit
	// stepLocks are, per VMID, the scripts that run on after their session
	// ended holding phoenix's step lock: each channel closes when its
	// script ends (orphans.go).
	stepLocks map[int][]chan struct{}
}

func newCluster(ctx context.Context, w *World) *cluster {
	c := &cluster{
		world: w, now: time.Now, rng: rand.New(rand.NewPCG(uint64(w.Spec.Seed), 0x9e3779b97f4a7c15)),
		ids:    rand.New(rand.NewPCG(uint64(w.Spec.Seed), 0x2545f4914f6cdd1d)),
		guests: map[int]*guest{}, vms: map[int]*vm{}, tasks: map[string]*task{}, journal: &journal{},
		stats: map[string]int{}, pid: 4000, ctx: ctx, storageFree: map[string]time.Time{},
	}
	for i, wn := range w.Spec.Nodes {
		c.nodes = append(c.nodes, &node{WorldNode: wn, ip: fmt.Sprintf("127.0.0.%d", i+2), files: map[string]string{}})
	}
	for _, wg := range w.Spec.Guests {
		if wg.Type == "qemu" {
			c.vms[wg.VMID] = &vm{vmid: wg.VMID, node: wg.Node, name: wg.Name, running: wg.Running, template: wg.Template,
				tags: normalizeTags(strings.Join(wg.Tags, ";"))}
			continue
		}
		g := &guest{vmid: wg.VMID, node: wg.Node, conf: newConfig(), disk: newDisk("")}
		for _, k := range slices.Sorted(maps.Keys(wg.Config)) {
			// Raw lxc.* lines live apart from the options, in file order;
			// the API answers them as lxc: [[key, value], ...].
			if strings.HasPrefix(k, "lxc.") {
				g.conf.lxc = append(g.conf.lxc, [2]string{k, wg.Config[k]})
				continue
			}
			g.conf.vals[k] = wg.Config[k]
		}
		if wg.Name != "" {
			g.conf.vals["hostname"] = wg.Name
		}
		if len(wg.Tags) > 0 {
			g.conf.vals["tags"] = normalizeTags(strings.Join(wg.Tags, ";"))
		}
		if wg.Template {
			g.conf.vals["template"] = "1"
		}
		if _, ok := g.conf.vals["rootfs"]; !ok {
			g.conf.vals["rootfs"] = fmt.Sprintf("local-lvm:vm-%d-disk-0,size=8G", wg.VMID)
		}
		if os := g.conf.vals["ostype"]; os == "" {
			g.conf.vals["ostype"] = "ubuntu"
		}
		g.disk = newDisk(g.conf.vals["ostype"])
		g.disk.hostKeys, g.disk.machineID = c.randomID(), c.randomID()
		if wg.Running {
			g.run = c.startRuntime(g)
			// A guest that was running before phoenix came is long initialised.
			g.run.netUp, g.run.devicesAt = g.run.started, g.run.started
		}
		c.guests[wg.VMID] = g
	}
	return c
}

func (c *cluster) node(name string) *node {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// lookup finds a container on a node the way Proxmox does: by its config file
// under that node, so a CT on another node is as missing as one that never was.
func (c *cluster) lookup(nodeName string, vmid int) (*guest, *apiError) {
	g := c.guests[vmid]
	if g == nil || g.node != nodeName {
		return nil, die("Configuration file 'nodes/%s/lxc/%d.conf' does not exist", nodeName, vmid)
	}
	return g, nil
}

// checkLock is PVE's check_lock: any lock refuses the operation.
func (g *guest) checkLock() *apiError {
	if g.lock != "" {
		return die("CT is locked (%s)", g.lock)
	}
	return nil
}

// randomBetween draws a duration in [lo, hi] from the seeded source.
func (c *cluster) randomBetween(lo, hi Duration) time.Duration {
	a, b := c.world.Scaled(lo), c.world.Scaled(hi)
	if b <= a {
		return a
	}
	return a + time.Duration(c.rng.Int64N(int64(b-a)+1))
}

// chance reports whether an event of probability p happens.
// randomID is a fresh identity: SSH host keys or a machine-id. Its own
// source, so that identities leave the seeded draws of faults and delays as
// they were.
func (c *cluster) randomID() string { return fmt.Sprintf("%016x", c.ids.Uint64()) }

func (c *cluster) chance(p float64) bool {
	return p > 0 && c.rng.Float64() < p
}

// startRuntime starts a container: the devices it gets are the dev entries
// whose paths exist on the node now; they and the network appear later.
func (c *cluster) startRuntime(g *guest) *runState {
	now := c.now()
	if g.disk.machineID == "" {
		// systemd-machine-id-setup at boot, for an emptied machine-id.
		g.disk.machineID = c.randomID()
	}
	c.pid++
	r := &runState{started: now, pid: c.pid}
	r.netUp = now.Add(c.randomBetween(c.world.Spec.Durations.NetworkUp[0], c.world.Spec.Durations.NetworkUp[1]))
	r.devicesAt = now.Add(c.randomBetween(c.world.Spec.Durations.DevicesVisible[0], c.world.Spec.Durations.DevicesVisible[1]))
	r.features = g.conf.vals["features"]
	r.unpriv = g.conf.vals["unprivileged"] == "1"
	r.services = c.bootServices(g)
	n := c.node(g.node)
	r.access = map[string]nodeAccess{}
	for _, k := range sortedDevKeys(g.conf.vals) {
		path := devPath(g.conf.vals[k])
		if n.hasDevice(path) {
			r.devices = append(r.devices, path)
			r.access[path] = accessOf(g.conf.vals[k])
		}
	}
	return r
}

// sortedDevKeys lists dev0..dev255 present in a config, by index.
func sortedDevKeys(vals map[string]string) []string {
	var keys []string
	for k := range vals {
		if isIndexed(k, "dev") {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		x, _ := strconv.Atoi(a[3:])
		y, _ := strconv.Atoi(b[3:])
		return x - y
	})
	return keys
}

func isIndexed(key, prefix string) bool {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok || rest == "" {
		return false
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}

// devPath extracts the path of a dev[n] value: "[path=]/dev/x[,gid=..]".
func devPath(v string) string {
	for part := range strings.SplitSeq(v, ",") {
		if p, ok := strings.CutPrefix(part, "path="); ok {
			return p
		}
		if !strings.Contains(part, "=") {
			return part
		}
	}
	return ""
}

// nextVMID is the lowest free VMID from 100.
func (c *cluster) nextVMID() int {
	for id := 100; ; id++ {
		if c.guests[id] == nil && c.vms[id] == nil {
			return id
		}
	}
}

// vm is a QEMU VM, as far as a container manager meets one: in the
// cluster's listing, and holding its VMID.
type vm struct {
	vmid              int
	node, name, tags  string
	running, template bool
}

// vmidUsed is PVE::Cluster::check_vmid_unused (pve-cluster
// src/PVE/Cluster.pm): a VMID held by a container or a VM cannot be taken,
// and the message names which.
func (c *cluster) vmidUsed(vmid int) *apiError {
	if g := c.guests[vmid]; g != nil {
		return die("CT %d already exists on node '%s'", vmid, g.node)
	}
	if v := c.vms[vmid]; v != nil {
		return die("VM %d already exists on node '%s'", vmid, v.node)
	}
	return nil
}
