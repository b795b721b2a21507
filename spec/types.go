package spec

import "strconv"

// APIVersion is the only apiVersion phoenix reads.
const APIVersion = "phoenix/v1alpha1"

// SimAPIVersion is the apiVersion of the simulator's world files. Such documents may
// sit beside the specs (examples/homelab/world.yaml does) and the spec loader skips them.
const SimAPIVersion = "sim.phoenix/v1alpha1"

// Kind names a document type.
type Kind string

const (
	KindCluster   Kind = "Cluster"
	KindTemplate  Kind = "Template"
	KindContainer Kind = "Container"
	KindFeature   Kind = "Feature"
)

// Source is where a document starts.
type Source struct {
	File string
	Line int
}

// Metadata identifies a document. For guests the name is also the hostname.
type Metadata struct {
	Name string `json:"name"`
}

// Cluster holds cluster-wide settings. Credentials never appear here: they come
// from the environment (PROXMOX_VE_API_TOKEN, PROXMOX_VE_PASSWORD, ...).
type Cluster struct {
	Source   Source      `json:"-"`
	Metadata Metadata    `json:"metadata"`
	Spec     ClusterSpec `json:"spec"`

	pos *positions
}

// ClusterSpec overrides the connection settings taken from the environment and
// sets defaults for guests.
type ClusterSpec struct {
	// Deployment names this spec set's deployment: every guest phoenix makes
	// records it, and phoenix changes and deletes only its own deployment's
	// guests. Default: the Cluster's metadata.name.
	Deployment string `json:"deployment,omitempty"`
	// Endpoint is the API URL, https://pve1:8006/ (with or without /api2/json):
	// the cluster these specs are for. Where credentials go is the
	// environment's to say: it must be PROXMOX_VE_ENDPOINT, unless
	// PHOENIX_ALLOW_SPEC_ENDPOINT=1 lets the spec choose.
	Endpoint string `json:"endpoint,omitempty"`
	// CAFile is a PEM bundle that signs the API's certificate. Like Endpoint,
	// it must be PROXMOX_VE_CA_FILE unless PHOENIX_ALLOW_SPEC_ENDPOINT=1.
	CAFile   string          `json:"caFile,omitempty"`
	Defaults ClusterDefaults `json:"defaults,omitempty"`
	SSH      SSHSettings     `json:"ssh,omitempty"`
	NVIDIA   NVIDIASettings  `json:"nvidia,omitempty"`
}

// ClusterDefaults fill guest fields that neither the guest nor its ancestors set.
type ClusterDefaults struct {
	Node    string `json:"node,omitempty"`
	Storage string `json:"storage,omitempty"`
	Bridge  string `json:"bridge,omitempty"`
}

// SSHSettings say how phoenix reaches the nodes to run pct.
type SSHSettings struct {
	Username       string `json:"username,omitempty"`
	Port           *int   `json:"port,omitempty"`
	KnownHostsFile string `json:"knownHostsFile,omitempty"`
	// Nodes maps a node name to the address to dial, where /cluster/status's
	// node IP is not the one phoenix can reach.
	Nodes map[string]string `json:"nodes,omitempty"`
}

// NVIDIASettings locate the userspace driver runfiles.
type NVIDIASettings struct {
	// RunfileURL is a URL pattern in which {version} is replaced by the host's
	// driver version. It is tried before RunfileURLs.
	RunfileURL string `json:"runfileURL,omitempty"`
	// RunfileURLs are URL patterns tried in order until one has the host's
	// version. Unset, NVIDIA's consumer (XFree86) and datacenter (tesla)
	// download paths are tried. The runfile runs as root in every GPU
	// container: a plain-http source is used only for a version SHA256
	// gives the digest of.
	RunfileURLs []string `json:"runfileURLs,omitempty"`
	// SHA256 maps a driver version to the runfile's expected digest.
	SHA256 map[string]string `json:"sha256,omitempty"`
}

// Guest is a Template or a Container document.
type Guest struct {
	Source   Source    `json:"-"`
	Kind     Kind      `json:"-"`
	Metadata Metadata  `json:"metadata"`
	Spec     GuestSpec `json:"spec"`

	pos *positions
}

// Name is the guest's name, which is also its hostname.
func (g *Guest) Name() string { return g.Metadata.Name }

// GuestSpec is what a Template or Container document asks for. Pointer and slice
// fields distinguish unset (nil: take the parent template's value) from set; an
// explicit empty list clears what the parent had.
type GuestSpec struct {
	VMID int    `json:"vmid"`
	Node string `json:"node,omitempty"`
	// The container's host name when it is not the document's name: a DNS
	// name, dots allowed. Not inherited.
	Hostname string `json:"hostname,omitempty"`
	From     From   `json:"from"`
	// CloneMode is how a clone is made from its template: linked (Proxmox's
	// default for a template source) or full.
	CloneMode CloneMode `json:"cloneMode,omitempty"`
	// Storage holds the root disk of a created guest or a full clone.
	Storage   string    `json:"storage,omitempty"`
	Resources Resources `json:"resources,omitempty"`
	Network   []NIC     `json:"network,omitempty"`
	// Nameservers are the DNS servers the container uses. Unset, Proxmox
	// gives a new container the host's; an empty list takes the setting
	// away again.
	Nameservers []string `json:"nameservers,omitempty"`
	// SearchDomains are the DNS search domains of the container; unset and
	// empty as nameservers.
	SearchDomains []string `json:"searchDomains,omitempty"`
	Unprivileged  *bool    `json:"unprivileged,omitempty"`
	GPUs          *GPUSet  `json:"gpus,omitempty"`
	// GPUGroup is the group (a gid inside the container) the passed-through
	// GPU device nodes belong to, read-write for the group only. Unset, they
	// keep the host nodes' mode (0666) so that any user in the container,
	// such as ollama's service user, reaches the GPU.
	GPUGroup *int `json:"gpuGroup,omitempty"`
	// Mounts are the container's mount points (mp0, mp1, ...): volumes on a
	// storage and bind mounts of host directories. Unset, a clone has its
	// template's; an explicit empty list removes them.
	Mounts        []Mount           `json:"mounts,omitempty"`
	Features      []string          `json:"features,omitempty"`
	FeatureConfig map[string]Params `json:"featureConfig,omitempty"`
	Tags          []string          `json:"tags,omitempty"`
	OnBoot        *bool             `json:"onboot,omitempty"`
	// Startup is when the container starts and stops at boot relative to
	// the others with onboot: Proxmox's startup option.
	Startup *Startup `json:"startup,omitempty"`
	// DependsOn names Containers that must be converged and running before
	// this guest is made or changed.
	DependsOn []string `json:"dependsOn,omitempty"`
	// State is whether a Container runs: running (the default) or stopped.
	// Templates have no run state.
	State      RunState `json:"state,omitempty"`
	Protection *bool    `json:"protection,omitempty"`
	// Firewall is the guest's Proxmox VE firewall: its options and rules.
	// Unset, phoenix leaves the firewall as it is (spec/firewall.go).
	Firewall *Firewall `json:"firewall,omitempty"`
	// Security is the container's features flags, AppArmor profile, id
	// maps and raw lxc.* keys. Each field inherits on its own
	// (spec/security.go).
	Security *Security `json:"security,omitempty"`
	// Snapshots asks for Proxmox snapshots around what phoenix changes on a
	// Container. Not inherited (spec/snapshots.go).
	Snapshots *Snapshots `json:"snapshots,omitempty"`
	// Adopt lets phoenix take over the guest that holds the VMID: one it did
	// not make, or that another deployment made, or a copy of a managed
	// guest (a hand-made clone, a restored backup). Phoenix tags it and
	// writes its own record into it. Not inherited.
	Adopt bool `json:"adopt,omitempty"`
	// Files are files phoenix keeps inside the container, written with pct
	// push through a temporary file and an atomic rename (files.go). Not
	// inherited: a feature's files come with the feature instead.
	Files []File `json:"files,omitempty"`
	// Renewal lets a Template be made again when it goes stale (a host driver
	// upgrade leaves its installs behind) while linked clones use its disk.
	Renewal *Renewal `json:"renewal,omitempty"`
	// Health are the container's own health checks, run inside it by
	// phoenix run on their interval and once by phoenix status. Not
	// inherited: a Template never runs and has none (spec/health.go).
	Health []HealthCheck `json:"health,omitempty"`
}

// Renewal says where a Template's new generations may be made. A template
// cannot run installs, and one with linked clones cannot be replaced without
// breaking them: phoenix makes a new generation at the first free VMID of
// the list, makes new clones from it, keeps the old one while linked clones
// use its disk, and deletes it (with --prune) once none does.
type Renewal struct {
	VMIDs []int `json:"vmids"`
}

// Startup is Proxmox's startup option: containers with onboot start in
// ascending order (those without an order last) and stop in the reverse.
type Startup struct {
	// Order is the place in the boot order, 0 or more.
	Order *int `json:"order,omitempty"`
	// Up is how many seconds Proxmox waits after starting this container
	// before it starts the next.
	Up *int `json:"up,omitempty"`
	// Down is how many seconds Proxmox gives this container to shut down
	// before it stops it.
	Down *int `json:"down,omitempty"`
}

// RunState is a Container's wanted run state.
type RunState string

const (
	StateRunning RunState = "running"
	StateStopped RunState = "stopped"
)

// From names a guest's origin: exactly one of an OS template volume, a
// Template, or a Container's snapshot.
type From struct {
	OSTemplate string `json:"ostemplate,omitempty"`
	// Download is where the OS template comes from when its volume is not
	// on its storage; unset, the node's appliance index. See ostemplate.go.
	Download *Download `json:"download,omitempty"`
	Template string    `json:"template,omitempty"`
	// Container names a Container to clone, from its snapshot: a full
	// clone of the snapshot, made once the Container converged and the
	// snapshot exists. See spec/snapshots.go.
	Container string `json:"container,omitempty"`
	// Snapshot is the snapshot of the container to clone.
	Snapshot string `json:"snapshot,omitempty"`
}

// CloneMode is linked or full.
type CloneMode string

const (
	CloneLinked CloneMode = "linked"
	CloneFull   CloneMode = "full"
)

// Resources are sizes in Proxmox's units: memory and swap in MiB, disk in GiB.
type Resources struct {
	Cores  *int `json:"cores,omitempty"`
	Memory *int `json:"memory,omitempty"`
	Swap   *int `json:"swap,omitempty"`
	Disk   *int `json:"disk,omitempty"`
}

// NIC is one network interface (netN).
type NIC struct {
	Name   string `json:"name"`
	Bridge string `json:"bridge,omitempty"`
	// IP is "dhcp" or an IPv4 address in CIDR form.
	IP      string `json:"ip,omitempty"`
	Gateway string `json:"gw,omitempty"`
	VLAN    *int   `json:"vlan,omitempty"`
	// IP6 is "auto" (SLAAC), "dhcp", "manual" or an IPv6 address in CIDR
	// form; unset, the interface has no IPv6 configuration.
	IP6      string `json:"ip6,omitempty"`
	Gateway6 string `json:"gw6,omitempty"`
	// The interface's MAC address, fixed. Unset, Proxmox gives the
	// interface one of its own, and a clone always gets a new one: a
	// MAC is never inherited.
	HWAddr string `json:"hwaddr,omitempty"`
	// Firewall makes the guest's firewall rules apply to this interface;
	// unset, they apply when the guest's firewall is enabled.
	Firewall *bool `json:"firewall,omitempty"`
	// MTU in bytes, 64..65535; unset, the bridge's.
	MTU *int `json:"mtu,omitempty"`
	// Rate limits the interface, in MB/s.
	Rate *float64 `json:"rate,omitempty"`
	// Type is the interface type; Proxmox knows veth only.
	Type string `json:"type,omitempty"`
}

// GPUSet selects host GPUs by index, or all of them. In YAML it is either the
// word all or a list of indices.
type GPUSet struct {
	All     bool
	Indices []int
}

// Empty reports whether the set selects no GPU.
func (s GPUSet) Empty() bool { return !s.All && len(s.Indices) == 0 }

func (s GPUSet) String() string {
	if s.All {
		return "all"
	}
	if len(s.Indices) == 0 {
		return "none"
	}
	b := make([]byte, 0, 2*len(s.Indices))
	for i, n := range s.Indices {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return string(b)
}

// Params are a feature's parameters. Values are strings: they reach the guest as
// environment variables.
type Params map[string]string

// Feature is a user-defined feature document.
type Feature struct {
	Source   Source      `json:"-"`
	Metadata Metadata    `json:"metadata"`
	Spec     FeatureSpec `json:"spec"`

	pos *positions
}

// FeatureSpec is a named, versioned unit of installation with ordered steps.
type FeatureSpec struct {
	Description string   `json:"description,omitempty"`
	Version     string   `json:"version,omitempty"`
	Requires    []string `json:"requires,omitempty"`
	// Config holds parameter defaults; a guest's featureConfig overrides them.
	Config Params `json:"config,omitempty"`
	// Settings are parameters of the running software, not of its
	// installation: files and services read them, and a changed value
	// rewrites files and restarts services instead of installing the
	// feature again.
	Settings Params `json:"settings,omitempty"`
	Steps    []Step `json:"steps"`
	// Files the feature writes into every guest that has it, rendered for
	// that guest, after its steps ran.
	Files []File `json:"files,omitempty"`
	// Services are the systemd services the feature provides: each is
	// kept enabled and running, or as stated.
	Services []Service `json:"services,omitempty"`
	// Health are the feature's health checks: every running container
	// that has the feature (installed or inherited) runs them. See
	// spec/health.go.
	Health []HealthCheck `json:"health,omitempty"`
}

// Step is one idempotent unit of a feature: check (exit 0 = already satisfied),
// apply, and an optional verify, each a shell body run inside the guest; and
// an optional uninstall that undoes it. A feature whose every step has one can
// be removed from a guest by taking it out of the guest's spec.
type Step struct {
	Name      string `json:"name"`
	Check     string `json:"check"`
	Apply     string `json:"apply"`
	Verify    string `json:"verify,omitempty"`
	Uninstall string `json:"uninstall,omitempty"`
	// Timeout bounds one run of apply or uninstall, e.g. 20m or 1h30m
	// (default 30m); check and verify get at most 5m. A step that runs out
	// is stopped inside the guest and fails that guest.
	Timeout string `json:"timeout,omitempty"`
}

// DefaultDeployment is the deployment of a spec set without a Cluster
// document, or whose Cluster has neither a name nor spec.deployment.
const DefaultDeployment = "default"

// DeploymentID is the deployment a spec set's guests belong to: the
// Cluster's spec.deployment, else its metadata.name, else DefaultDeployment.
func (s *Set) DeploymentID() string {
	switch {
	case s.Cluster == nil:
		return DefaultDeployment
	case s.Cluster.Spec.Deployment != "":
		return s.Cluster.Spec.Deployment
	case s.Cluster.Metadata.Name != "":
		return s.Cluster.Metadata.Name
	}
	return DefaultDeployment
}

// Set is every document loaded from the spec files.
type Set struct {
	Cluster  *Cluster
	Guests   []*Guest
	Features []*Feature
	Files    []string
}
