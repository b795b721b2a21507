package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// WorldAPIVersion is the apiVersion of world files. The spec loader skips such
// documents, so a world file can live beside the specs it is meant for.
const WorldAPIVersion = "sim.phoenix/v1alpha1"

// World is everything the simulator starts from: nodes and their GPUs and
// storages, guests that already exist, timings, faults and credentials.
type World struct {
	APIVersion string                `yaml:"apiVersion"`
	Kind       string                `yaml:"kind"`
	Metadata   struct{ Name string } `yaml:"metadata"`
	Spec       WorldSpec             `yaml:"spec"`
}

// WorldSpec is the body of a world file.
type WorldSpec struct {
	// Seed makes every random choice (network delays, faults) repeatable.
	Seed int64 `yaml:"seed"`
	// TimeScale multiplies every duration: 0.01 runs a 20 s clone in 200 ms.
	TimeScale float64 `yaml:"timeScale"`
	// Version is the Proxmox VE version /version reports, e.g. 9.1.2.
	Version   string       `yaml:"version"`
	Latency   Duration     `yaml:"latency"`
	Nodes     []WorldNode  `yaml:"nodes"`
	Guests    []WorldGuest `yaml:"guests"`
	Durations Durations    `yaml:"durations"`
	Faults    Faults       `yaml:"faults"`
	Users     Users        `yaml:"users"`
	// SecurityGroups are the firewall security groups defined at the
	// cluster level (Datacenter > Firewall > Security Group), by name.
	SecurityGroups []string `yaml:"securityGroups"`
	// FirewallAliases are the cluster's firewall aliases (Datacenter >
	// Firewall > Alias), name to address; FirewallIPSets the names of its
	// ipsets (Datacenter > Firewall > IPSet).
	FirewallAliases map[string]string `yaml:"firewallAliases"`
	FirewallIPSets  []string          `yaml:"firewallIPSets"`
	// Appliances are the appliance index every node has (pveam
	// available; aplinfo.go); URLs are what a download-url can fetch, the
	// simulator reaching no network.
	Appliances []WorldAppliance `yaml:"appliances"`
	URLs       []WorldURL       `yaml:"urls"`
	// RealGuests makes every container a real LXC container on the machine
	// running the simulator (package lxc; root and the lxc tools needed):
	// pct create copies a pristine Debian 12 root file system (only Debian
	// 12 templates are accepted), a clone copies its source's, start, stop,
	// shutdown and reboot start and stop it, pct exec runs the command in it
	// with lxc-attach, pct push copies into it, destroy removes it;
	// unprivileged picks the id-mapped root file system, features nesting
	// and keyctl the LXC config docker needs, devN device nodes with the
	// simulated host's majors and minors. The API, tasks, journal and the
	// node's own side (host probe, the runfile on the node, raw lxc lines,
	// the lease) stay modelled; container tasks end when their real work
	// does (the durations of create, clone, start, stop, shutdown, reboot,
	// destroy and exec are not waited), and exec faults and hangs are not
	// injected. Guests listed in the world must not be containers then.
	RealGuests bool `yaml:"realGuests"`
	// LockTimeout is how long the cluster file system keeps a lock
	// directory nobody renews (see pmxcfs.go): 120 s, as in Proxmox VE,
	// unless a world shortens it to see locks expire. Wall time: it is not
	// scaled, so that a phoenix with its default renewal holds its lease.
	LockTimeout Duration `yaml:"lockTimeout"`
}

// WorldNode is one Proxmox node.
type WorldNode struct {
	Name string `yaml:"name"`
	// GPUs is the number of NVIDIA GPUs on the node's PCI bus.
	GPUs int `yaml:"gpus"`
	// DriverVersion is the host kernel module's version; empty means no
	// working driver (a GPU on PCI without device nodes).
	DriverVersion string `yaml:"driverVersion"`
	// UVMMajor and CapsMajor are the dynamic majors of nvidia-uvm and
	// nvidia-caps, which differ from host to host.
	UVMMajor  int `yaml:"uvmMajor"`
	CapsMajor int `yaml:"capsMajor"`
	// UVMLoaded is false on a host where nothing has loaded nvidia-uvm since
	// boot: /dev/nvidia-uvm* are missing.
	UVMLoaded *bool `yaml:"uvmLoaded"`
	// DriverSource is where NVIDIA publishes the runfile of the host's
	// driver: consumer (the default: download.nvidia.com/XFree86/),
	// datacenter (H100/H200 class: tesla/), or apt (installed from NVIDIA's
	// apt repository: no runfile anywhere).
	DriverSource string         `yaml:"driverSource"`
	Storages     []WorldStorage `yaml:"storages"`
	// OSTemplates are the container template volumes present on the node.
	OSTemplates []string `yaml:"osTemplates"`
	// Bridges are the node's Linux bridges, the first of them holding the
	// node's address on its NIC; default [vmbr0], as the installer sets up.
	Bridges []string `yaml:"bridges"`
	// OVSBridges are Open vSwitch bridges, VNets the SDN vnets whose zone
	// includes the node. A container's netN may name any of the three.
	OVSBridges []string `yaml:"ovsBridges"`
	VNets      []string `yaml:"vnets"`
	// Directories are directories the node has (owned by root), such as
	// the parents of bind mount directories; their parents exist too.
	Directories []string `yaml:"directories"`
	// SubUID and SubGID are the lines of the node's /etc/subuid and
	// /etc/subgid ("root:33:1"); unset, a Proxmox VE install's
	// (root:100000:65536). LXC maps a container's ids only within root's.
	SubUID []string `yaml:"subuid"`
	SubGID []string `yaml:"subgid"`
}

// WorldStorage is a storage as the node sees it.
type WorldStorage struct {
	Name string `yaml:"name"`
	// Type is a Proxmox storage type: dir, lvm, lvmthin, zfspool, rbd, nfs, btrfs.
	Type    string   `yaml:"type"`
	Content []string `yaml:"content"`
	// Shared storages are reachable from every node (clones to another node
	// need one); default from the type.
	Shared *bool `yaml:"shared"`
	// Enabled false is a storage disabled in storage.cfg ("disable 1"),
	// which is cluster-wide: every node listing the storage must agree.
	Enabled *bool `yaml:"enabled"`
	// Active false is a storage the node cannot activate (NFS server gone,
	// mount point not mounted, volume group or pool missing); default true.
	Active *bool `yaml:"active"`
}

// IsEnabled reports whether storage.cfg does not disable the storage.
func (s WorldStorage) IsEnabled() bool { return s.Enabled == nil || *s.Enabled }

// IsActive reports whether the node can activate the storage.
func (s WorldStorage) IsActive() bool { return s.Active == nil || *s.Active }

// LinkedClones reports whether the storage type supports linked clones of a
// container's root disk.
func (s WorldStorage) LinkedClones() bool {
	return slices.Contains([]string{"lvmthin", "zfspool", "rbd", "btrfs"}, s.Type)
}

// IsShared reports whether every node reaches the storage.
func (s WorldStorage) IsShared() bool {
	if s.Shared != nil {
		return *s.Shared
	}
	return slices.Contains([]string{"rbd", "nfs", "cephfs"}, s.Type)
}

// WorldGuest is a container (or a VM) that exists before phoenix runs.
type WorldGuest struct {
	VMID int    `yaml:"vmid"`
	Name string `yaml:"name"`
	Node string `yaml:"node"`
	// Type is lxc (the default) or qemu: a VM is modelled as far as the
	// cluster's listing and its VMID go (it is listed, its VMID is taken),
	// and every container path misses it, as in Proxmox VE.
	Type     string            `yaml:"type"`
	Running  bool              `yaml:"running"`
	Template bool              `yaml:"template"`
	Tags     []string          `yaml:"tags"`
	Config   map[string]string `yaml:"config"`
}

// Durations are how long things take at time scale 1.
type Durations struct {
	Create    Duration `yaml:"create"`
	Clone     Duration `yaml:"clone"`
	FullClone Duration `yaml:"fullClone"`
	Start     Duration `yaml:"start"`
	Stop      Duration `yaml:"stop"`
	Shutdown  Duration `yaml:"shutdown"`
	Reboot    Duration `yaml:"reboot"`
	Destroy   Duration `yaml:"destroy"`
	Template  Duration `yaml:"template"`
	Resize    Duration `yaml:"resize"`
	// Snapshot is how long taking, deleting or rolling back a snapshot takes.
	Snapshot Duration `yaml:"snapshot"`
	// Download is how long an OS template download takes.
	Download Duration `yaml:"download"`
	// NetworkUp and DevicesVisible are ranges after a start: the guest's
	// network and its passed-through device nodes appear at a random moment
	// within them.
	NetworkUp      [2]Duration `yaml:"networkUp"`
	DevicesVisible [2]Duration `yaml:"devicesVisible"`
	// Exec is the default duration of a command inside a guest; Scripts
	// overrides it per script name (e.g. nvidia-driver/install).
	Exec    Duration            `yaml:"exec"`
	Scripts map[string]Duration `yaml:"scripts"`

	// Alloc is how long allocating a full clone's new volume holds its
	// storage's lock (default 1 s, an lvcreate's or a file's creation); a
	// full clone that would wait for that lock longer than Proxmox VE's
	// 10 s fails on it, so a dozen full clones to one storage at once may
	// see the lock time out, as on a real cluster.
	Alloc Duration `yaml:"alloc"`
}

// Faults are probabilities of things going wrong, drawn from the seed.
type Faults struct {
	API  APIFaults  `yaml:"api"`
	Exec ExecFaults `yaml:"exec"`
	// TaskWarnings makes a task that succeeds log a warning and end with
	// "WARNINGS: 1", which Proxmox counts as success.
	TaskWarnings float64 `yaml:"taskWarnings"`
	// Hang is work that never ends by itself.
	Hang HangFaults `yaml:"hang"`
	// Health makes health checks fail, by "VMID/CHECK" (health.go).
	Health map[string]HealthFault `yaml:"health"`
	// Services make starts of a container's service fail, by VMID/NAME
	// ("101/ollama"): that many starts (by phoenix/service or at the
	// container's start), -1 for every one. The service is failed then.
	Services map[string]int `yaml:"services"`
}

// HangFaults are work that never ends by itself (see hang.go).
type HangFaults struct {
	// Tasks are workers that never finish: a task type (vzstart), or a type
	// and a VMID (vzstart:960).
	Tasks []string `yaml:"tasks"`
	// Scripts name scripts whose apply never exits unless signalled.
	Scripts []string `yaml:"scripts"`
}

// APIFaults apply per API request.
type APIFaults struct {
	// Error500 answers 500 with a transient-looking reason.
	Error500 float64 `yaml:"error500"`
	// LockTimeout answers a write with Proxmox's config lock timeout.
	LockTimeout float64 `yaml:"lockTimeout"`
	// DropConnection closes the connection without an answer.
	DropConnection float64 `yaml:"dropConnection"`
}

// ExecFaults apply per command run inside a guest.
type ExecFaults struct {
	Failure float64 `yaml:"failure"`
	// Scripts adds a failure probability for the apply of named scripts:
	// {nginx/install: 1} makes that one step always fail; for
	// phoenix/host-probe, for the probe of a node's GPUs.
	Scripts map[string]float64 `yaml:"scripts"`
}

// Users are the credentials the API accepts. Empty values are generated.
type Users struct {
	RootPassword string  `yaml:"rootPassword"`
	Tokens       []Token `yaml:"tokens"`
	// TicketLifetime is how long a password ticket and its CSRF token stay
	// valid, in world time: two hours, as in Proxmox VE, unless a world
	// shortens it to see tickets expire.
	TicketLifetime Duration `yaml:"ticketLifetime"`
}

// Token is an API token: ID is user@realm!name.
type Token struct {
	ID     string `yaml:"id"`
	Secret string `yaml:"secret"`
	// Privsep is the token's privilege separation: with it the token has
	// only what its own ACL grants (and its user has); without it, its
	// user's privileges, all of them for root@pam (privileges.go).
	Privsep bool  `yaml:"privsep"`
	ACL     []ACL `yaml:"acl"`
}

// Duration is a time.Duration written as "250ms" or "2s".
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as 250ms or 2s", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: want a duration such as 250ms or 2s, got %q", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration the way UnmarshalYAML reads it.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// LoadWorld reads a world file.
func LoadWorld(path string) (*World, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	w, err := ParseWorld(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, nil
}

var (
	nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)
	versionRE  = regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+)?$`)
	// serviceFaultRE is a key of faults.services: a VMID (100..999999999)
	// and a unit name without .service.
	serviceFaultRE = regexp.MustCompile(`^[1-9][0-9]{2,8}/[A-Za-z0-9][A-Za-z0-9:_.@-]*$`)
)

// ParseWorld reads a world file's contents: the first document whose
// apiVersion is WorldAPIVersion (other documents, such as specs, are skipped).
// Missing values get defaults; contradictions are errors.
func ParseWorld(data []byte) (*World, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("no document with apiVersion %s", WorldAPIVersion)
		} else if err != nil {
			return nil, err
		}
		var head struct {
			APIVersion string `yaml:"apiVersion"`
		}
		if err := n.Decode(&head); err != nil || head.APIVersion != WorldAPIVersion {
			continue
		}
		var w World
		strict := yaml.NewDecoder(bytes.NewReader(mustEncode(&n)))
		strict.KnownFields(true)
		if err := strict.Decode(&w); err != nil {
			return nil, err
		}
		if w.Kind != "World" {
			return nil, fmt.Errorf("kind %q: want World", w.Kind)
		}
		w.setDefaults()
		if err := w.check(); err != nil {
			return nil, err
		}
		return &w, nil
	}
}

func mustEncode(n *yaml.Node) []byte {
	b, err := yaml.Marshal(n)
	if err != nil {
		panic(err) // a node the decoder produced always encodes
	}
	return b
}

func (w *World) setDefaults() {
	s := &w.Spec
	if s.TimeScale == 0 {
		s.TimeScale = 1
	}
	if s.Version == "" {
		s.Version = "9.1.2"
	}
	d := &s.Durations
	def := func(v *Duration, x time.Duration) {
		if *v == 0 {
			*v = Duration(x)
		}
	}
	def(&d.Create, 20*time.Second)
	def(&d.Clone, 5*time.Second)
	def(&d.FullClone, 40*time.Second)
	def(&d.Start, 3*time.Second)
	def(&d.Stop, 2*time.Second)
	def(&d.Shutdown, 5*time.Second)
	def(&d.Reboot, 7*time.Second)
	def(&d.Destroy, 3*time.Second)
	def(&d.Template, 2*time.Second)
	def(&d.Resize, 2*time.Second)
	def(&d.Snapshot, time.Second)
	def(&d.Download, 10*time.Second)
	def(&d.Exec, 200*time.Millisecond)
	def(&d.Alloc, time.Second)
	if d.NetworkUp == [2]Duration{} {
		d.NetworkUp = [2]Duration{Duration(2 * time.Second), Duration(8 * time.Second)}
	}
	if d.DevicesVisible == [2]Duration{} {
		d.DevicesVisible = [2]Duration{Duration(500 * time.Millisecond), Duration(3 * time.Second)}
	}
	if s.RealGuests {
		// Real containers take the time they take.
		for _, v := range []*Duration{&d.Create, &d.Clone, &d.FullClone, &d.Start, &d.Stop, &d.Shutdown, &d.Reboot, &d.Destroy, &d.Exec} {
			*v = 0
		}
		d.Scripts = nil
		d.NetworkUp, d.DevicesVisible = [2]Duration{}, [2]Duration{}
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if n.UVMMajor == 0 {
			n.UVMMajor = 508
		}
		if n.CapsMajor == 0 {
			n.CapsMajor = 509
		}
		if n.UVMLoaded == nil {
			t := true
			n.UVMLoaded = &t
		}
		if len(n.Storages) == 0 {
			n.Storages = []WorldStorage{
				{Name: "local", Type: "dir", Content: []string{"vztmpl", "iso", "backup"}},
				{Name: "local-lvm", Type: "lvmthin", Content: []string{"rootdir", "images"}},
			}
		}
		// Only an absent list gets the installer's bridge: "bridges: []"
		// is a node without Linux bridges.
		if n.Bridges == nil {
			n.Bridges = []string{"vmbr0"}
		}
	}
}

var (
	// storageIDRE is pve-storage-id (pve-common src/PVE/JSONSchema.pm
	// parse_id): two characters at least.
	storageIDRE = regexp.MustCompile(`(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$`)
	// ifaceRE is pve-iface (pve-common src/PVE/JSONSchema.pm
	// pve_verify_iface), which the network list's iface follows.
	ifaceRE = regexp.MustCompile(`(?i)^[a-z][a-z0-9_]{1,20}([:.]\d+)?$`)
	// vnetRE is pve-sdn-vnet-id (pve-network
	// src/PVE/Network/SDN/VnetPlugin.pm): 2 to 8 letters and digits.
	vnetRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9]{0,6}[a-zA-Z0-9]$`)
	// storageTypes are the storage plugins of Proxmox VE 8 and 9 (pve-storage
	// PVE/Storage.pm registers them; glusterfs was dropped in 9).
	storageTypes = []string{"btrfs", "cephfs", "cifs", "dir", "esxi", "glusterfs", "iscsi", "iscsidirect",
		"lvm", "lvmthin", "nfs", "pbs", "rbd", "zfs", "zfspool"}
	// contentTypes are the values of pve-storage-content.
	contentTypes = []string{"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"}
)

// sameStorageConfig reports whether two nodes' views of a storage agree on
// what storage.cfg holds once for the whole cluster.
func sameStorageConfig(a, b WorldStorage) bool {
	ca, cb := slices.Clone(a.Content), slices.Clone(b.Content)
	slices.Sort(ca)
	slices.Sort(cb)
	return a.Type == b.Type && slices.Equal(ca, cb) && a.IsShared() == b.IsShared() && a.IsEnabled() == b.IsEnabled()
}

func (w *World) check() error {
	s := &w.Spec
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.TimeScale < 0 {
		bad("timeScale %v is negative", s.TimeScale)
	}
	if len(s.Nodes) == 0 {
		bad("a world needs at least one node")
	}
	if s.RealGuests {
		for _, g := range s.Guests {
			if g.Type != "qemu" {
				bad("guest %d: realGuests makes every container real, from a create or clone: a world cannot list containers that exist already", g.VMID)
			}
		}
	}
	nodes := map[string]*WorldNode{}
	storages := map[string]WorldStorage{}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		switch {
		case !nodeNameRE.MatchString(n.Name):
			bad("node %q: not a valid node name", n.Name)
		case nodes[n.Name] != nil:
			bad("node %s is listed twice", n.Name)
		}
		nodes[n.Name] = n
		if n.GPUs < 0 || n.GPUs > 16 {
			bad("node %s: gpus %d is outside 0..16", n.Name, n.GPUs)
		}
		switch n.DriverSource {
		case "", "consumer", "datacenter", "apt":
		default:
			bad("node %s: driverSource %q: want consumer, datacenter or apt", n.Name, n.DriverSource)
		}
		if n.DriverVersion != "" && !versionRE.MatchString(n.DriverVersion) {
			bad("node %s: malformed driverVersion %q", n.Name, n.DriverVersion)
		}
		seen := map[string]bool{}
		for _, st := range n.Storages {
			switch {
			case st.Name == "" || st.Type == "":
				bad("node %s: a storage needs a name and a type", n.Name)
				continue
			case !storageIDRE.MatchString(st.Name):
				bad("node %s: %q is not a valid storage ID", n.Name, st.Name)
			case seen[st.Name]:
				bad("node %s: storage %s is listed twice", n.Name, st.Name)
			case !slices.Contains(storageTypes, st.Type):
				bad("node %s: storage %s: unknown type %q", n.Name, st.Name, st.Type)
			case !st.IsActive() && !inactiveModelled(st.Type):
				bad("node %s: storage %s: the simulator does not model an inactive %s storage", n.Name, st.Name, st.Type)
			}
			seen[st.Name] = true
			for _, ct := range st.Content {
				if !slices.Contains(contentTypes, ct) {
					bad("node %s: storage %s: unknown content type %q", n.Name, st.Name, ct)
				}
			}
			if first, ok := storages[st.Name]; !ok {
				storages[st.Name] = st
			} else if !sameStorageConfig(first, st) {
				bad("storage %s: nodes disagree on its type, content, shared or enabled, which storage.cfg holds once for the cluster", st.Name)
			}
		}
		ifaces := map[string]bool{}
		for _, b := range slices.Concat(n.Bridges, n.OVSBridges, n.VNets) {
			switch {
			case b == "lo" || b == hostNIC:
				bad("node %s: %s is the node's own interface, not a bridge", n.Name, b)
			case slices.Contains(n.VNets, b) && !vnetRE.MatchString(b):
				bad("node %s: %q is not a valid SDN vnet name", n.Name, b)
			case !slices.Contains(n.VNets, b) && !ifaceRE.MatchString(b):
				bad("node %s: %q is not a valid bridge name", n.Name, b)
			case ifaces[b]:
				bad("node %s: interface %s is listed twice", n.Name, b)
			}
			ifaces[b] = true
		}
	}
	vmids := map[int]bool{}
	for _, g := range s.Guests {
		switch {
		case g.VMID < 100 || g.VMID > 999_999_999:
			bad("guest %d: vmid outside 100..999999999", g.VMID)
		case vmids[g.VMID]:
			bad("guest %d is listed twice", g.VMID)
		case nodes[g.Node] == nil:
			bad("guest %d: no node %q", g.VMID, g.Node)
		case g.Running && g.Template:
			bad("guest %d: a template cannot be running", g.VMID)
		case g.Type != "" && g.Type != "lxc" && g.Type != "qemu":
			bad("guest %d: type %q: want lxc or qemu", g.VMID, g.Type)
		case g.Type == "qemu" && len(g.Config) > 0:
			bad("guest %d: the simulator models a VM's listing only: a qemu guest takes no config", g.VMID)
		case g.Running:
			// A container whose bridge is missing cannot have started.
			for _, k := range slices.Sorted(maps.Keys(g.Config)) {
				if b := propString(g.Config[k], "")["bridge"]; isIndexed(k, "net") && !nodes[g.Node].hasBridge(b) {
					bad("guest %d: running, yet %s names bridge %q, which node %s does not have", g.VMID, k, b, g.Node)
				}
			}
		}
		vmids[g.VMID] = true
	}
	if l := s.LockTimeout.D(); l < 0 || l > pveLockTimeout {
		bad("lockTimeout %v is outside 0..2m: pmxcfs keeps a lock two minutes, a world may only shorten that", l)
	}
	for _, t := range s.Users.Tokens {
		for _, e := range checkACL(t) {
			bad("users: %s", e)
		}
	}
	if l := s.Users.TicketLifetime.D(); l < 0 || l > pveTicketLifetime {
		bad("users: ticketLifetime %v is outside 0..2h: Proxmox VE's tickets last two hours, a world may only shorten that", l)
	}
	probs := []float64{s.Faults.API.Error500, s.Faults.API.LockTimeout, s.Faults.API.DropConnection, s.Faults.Exec.Failure, s.Faults.TaskWarnings}
	for _, p := range s.Faults.Exec.Scripts {
		probs = append(probs, p)
	}
	for _, p := range probs {
		if p < 0 || p > 1 {
			bad("fault probability %v is outside 0..1", p)
		}
	}
	for _, h := range s.Faults.Hang.Tasks {
		if !hangTaskRE.MatchString(h) {
			bad("faults.hang.tasks: %q: want a task type such as vzstart, or type:vmid such as vzstart:960", h)
		}
	}
	for _, h := range s.Faults.Hang.Scripts {
		if h == "" {
			bad("faults.hang.scripts: an empty script name")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Faults.Services)) {
		switch n := s.Faults.Services[k]; {
		case !serviceFaultRE.MatchString(k):
			bad("faults.services: %q: want VMID/NAME, such as 101/ollama", k)
		case n < -1:
			bad("faults.services: %s: %d: want a number of failing starts, or -1 for every start", k, n)
		case s.RealGuests:
			bad("faults.services: %s: real guests run their services for real: the simulator cannot make them fail", k)
		}
	}
	for k := range s.Faults.Health {
		if !healthFaultKey.MatchString(k) {
			bad("faults.health: %q: want VMID/CHECK such as 955/ollama", k)
		}
	}
	return errors.Join(errs...)
}

// CheckWorld fills in a world built in Go rather than read from a file, and
// checks it as ParseWorld would.
func CheckWorld(w *World) error {
	w.setDefaults()
	return w.check()
}

// Scaled converts a world duration to wall time.
func (w *World) Scaled(d Duration) time.Duration {
	return time.Duration(float64(d) * w.Spec.TimeScale)
}
