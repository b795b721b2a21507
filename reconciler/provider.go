package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// Cluster is the Proxmox VE API as the reconciler needs it. Every method is
// idempotent or fails with an *APIError or *TaskError; long operations wait
// for their task with context-aware backoff.
type Cluster interface {
	// Guests lists every guest of the cluster from one /cluster/resources call.
	Guests(ctx context.Context) ([]GuestSummary, error)
	// Nodes lists the cluster's nodes with the addresses /cluster/status reports.
	Nodes(ctx context.Context) ([]NodeInfo, error)
	// Status reads one container's state (status/current).
	Status(ctx context.Context, node string, vmid int) (GuestSummary, error)
	// GuestConfig reads a container's configuration, every key kept, with
	// pending changes merged in (what Proxmox answers by default).
	GuestConfig(ctx context.Context, node string, vmid int) (Config, error)
	// Pending lists a container's options with the changes that wait for its
	// next start (GET .../pending); only entries with Pending or Delete set
	// wait for something.
	Pending(ctx context.Context, node string, vmid int) ([]PendingOption, error)
	// Storages lists the storages a node sees, with their content types.
	Storages(ctx context.Context, node string) ([]StorageInfo, error)
	// Volumes lists the volume IDs of one content type (vztmpl, rootdir, ...)
	// on a node's storage.
	Volumes(ctx context.Context, node, storage, content string) ([]string, error)
	// Bridges lists the names of a node's network bridges, SDN vnets included.
	Bridges(ctx context.Context, node string) ([]string, error)
	// Appliances lists the node's appliance index (GET /nodes/{node}/aplinfo):
	// the templates pveam can download.
	Appliances(ctx context.Context, node string) ([]Appliance, error)
	// DownloadAppliance downloads a template of the node's appliance index
	// to a storage (POST /nodes/{node}/aplinfo) and waits for the task.
	DownloadAppliance(ctx context.Context, node, storage, template string) error
	// DownloadURL downloads a file from a URL into a storage, checking its
	// checksum (POST .../storage/{storage}/download-url), and waits for
	// the task.
	DownloadURL(ctx context.Context, req DownloadRequest) error
	Create(ctx context.Context, req CreateRequest) error
	Clone(ctx context.Context, req CloneRequest) error
	// SetConfig changes a container's options; an empty digest skips the
	// optimistic concurrency check.
	SetConfig(ctx context.Context, node string, vmid int, set map[string]string, del []string, digest string) error
	Resize(ctx context.Context, node string, vmid int, disk, size string) error
	Start(ctx context.Context, node string, vmid int) error
	Shutdown(ctx context.Context, node string, vmid int) error
	Reboot(ctx context.Context, node string, vmid int) error
	// ConvertToTemplate returns once the config shows template: 1.
	ConvertToTemplate(ctx context.Context, node string, vmid int) error
	// Delete destroys a stopped, unprotected container and purges it from
	// the cluster's other configuration.
	Delete(ctx context.Context, node string, vmid int) error
	// Firewall reads a container's firewall: options, rules, aliases and
	// ipsets with their entries.
	Firewall(ctx context.Context, node string, vmid int) (FirewallConfig, error)
	// ChangeFirewall makes one write to a container's firewall.
	ChangeFirewall(ctx context.Context, node string, vmid int, op FirewallOp) error
	// SecurityGroups lists the names of the cluster's firewall security groups.
	SecurityGroups(ctx context.Context) ([]string, error)
	// ClusterFirewallSets lists the names of the cluster's firewall aliases and ipsets.
	ClusterFirewallSets(ctx context.Context) (ClusterFirewallSets, error)
	// Snapshots lists a container's snapshots, oldest first, without
	// Proxmox's "current" entry.
	Snapshots(ctx context.Context, node string, vmid int) ([]Snapshot, error)
	// CreateSnapshot snapshots a container and waits for the task.
	CreateSnapshot(ctx context.Context, node string, vmid int, name, description string) error
	// DeleteSnapshot deletes a snapshot and waits; one that is gone is
	// what was wanted.
	DeleteSnapshot(ctx context.Context, node string, vmid int, name string) error
	// RollbackSnapshot puts a container back to a snapshot (Proxmox stops
	// a running one and leaves it stopped) and waits.
	RollbackSnapshot(ctx context.Context, node string, vmid int, name string) error
	// RootSession reports whether the session may set what Proxmox reserves
	// for root@pam (dev[n], features beyond nesting): a root@pam password
	// ticket. API tokens never may, not even root's own.
	RootSession() bool
}

// GuestStreamer is a Cluster that can hand out its guest listing as it comes
// in, so that Observe starts each guest's config read before the listing has
// ended. StreamGuests calls yield once per guest, in the caller's goroutine;
// an error of yield ends the listing and is returned. A listing that fails
// may have yielded some guests first: only a nil return means every guest
// was yielded.
type GuestStreamer interface {
	StreamGuests(ctx context.Context, yield func(GuestSummary) error) error
}

// Node runs things on one Proxmox node: inside a container through pct, or on
// the host itself.
type Node interface {
	// Exec runs a named script inside a running container:
	// pct exec VMID -- env K=V... /bin/sh -c BODY NAME PHASE, under
	// timeout(1) when the script has a Timeout.
	Exec(ctx context.Context, vmid int, s Script) (Result, error)
	// ExecHost runs a named script on the node itself.
	ExecHost(ctx context.Context, s Script) (Result, error)
	// Push copies a file from the node into a running container.
	Push(ctx context.Context, vmid int, src, dst string, mode os.FileMode) error
	// WriteFile puts a file into a running container: its content is staged
	// on the node (readable by root only, fed through standard input, never
	// on a command line), copied with pct push beside its path (PATH.phoenix-new,
	// with its mode and owner) and renamed over it, so that nothing in the
	// guest ever reads half a file. The staged copy is removed, also after a
	// failure.
	WriteFile(ctx context.Context, vmid int, f FileWrite) error
	// HostProbe reports the NVIDIA driver and device nodes of the host.
	HostProbe(ctx context.Context) (HostInfo, error)
	// SetConfig sets container options with pct set on the node, as root:
	// the way to set dev[n] and features when the API session may not.
	SetConfig(ctx context.Context, vmid int, set map[string]string, del []string) error
	// RemoveRawLXC removes raw lxc.* lines from a container's config file,
	// which no API can do, under Proxmox VE's lock of that config.
	RemoveRawLXC(ctx context.Context, vmid int, lines [][2]string) error
	// SetRawLXC makes a container's config file hold exactly the given
	// lines for each raw lxc.* key (none for an empty list), in order, under
	// Proxmox VE's lock of that config; other lines stay as they are.
	SetRawLXC(ctx context.Context, vmid int, keys map[string][]string) error
	// FindRunfile says where the runfile of a driver version will come
	// from: the node's own copy, or the first of the URLs that has it.
	FindRunfile(ctx context.Context, q RunfileQuery) (RunfileSource, error)
	// LeaseNode takes, renews and releases the cluster-wide lease
	// (lease.go) through this node.
	LeaseNode
}

// FileWrite is a file for WriteFile. User and Group are names or numeric ids
// inside the container, as pct push takes them.
type FileWrite struct {
	Path        string
	Content     []byte
	Mode        os.FileMode
	User, Group string
}

// RunfileQuery asks a node for a driver version's runfile.
type RunfileQuery struct {
	Version string
	// Path is where the node keeps the runfile; URLs are the sources, in
	// the order they are tried.
	Path string
	URLs []string
}

// RunfileSource is where a runfile will come from: the node has it
// (Cached), or URL has it, or (neither) no source has it.
type RunfileSource struct {
	Cached bool
	URL    string
	// Tried are the sources asked before the answer.
	Tried []RunfileTry
}

// RunfileTry is one source asked, and its HTTP status (000: no answer).
type RunfileTry struct {
	URL    string
	Status string
}

// Found reports whether the runfile is somewhere.
func (s RunfileSource) Found() bool { return s.Cached || s.URL != "" }

// GuestSummary is one guest as /cluster/resources lists it.
type GuestSummary struct {
	VMID     int
	Type     string // lxc or qemu
	Node     string
	Name     string
	Status   string // running, stopped
	Template bool
	Tags     []string
	Lock     string
}

// NodeInfo is one cluster node.
type NodeInfo struct {
	Name   string
	IP     string
	Online bool
}

// Config is a container's configuration with nothing dropped: every option as
// the string Proxmox stores, the raw lxc.* lines in order, and the digest to
// send back with changes.
type Config struct {
	Values map[string]string
	LXC    [][2]string
	Digest string
}

// PendingOption is one entry of a container's pending list: the current
// value (empty when the key is not set now), the value that waits for the next
// start, and whether the key's deletion waits.
type PendingOption struct {
	Key     string
	Value   string
	Pending string
	// HasPending tells an empty pending value from none.
	HasPending bool
	Delete     bool
}

// Waiting reports whether the option changes at the next start.
func (p PendingOption) Waiting() bool { return p.HasPending || p.Delete }

// StorageInfo is a storage as a node sees it.
type StorageInfo struct {
	Name string
	// Type is Proxmox's storage type: dir, lvm, lvmthin, zfspool, rbd, ...
	Type string
	// Content lists what it may hold: rootdir, images, vztmpl, iso, backup, ...
	Content []string
	Shared  bool
	// Active is false for a storage the node cannot reach now.
	Active bool
	// Enabled is false for a storage disabled in the cluster's configuration.
	Enabled bool
}

// CreateRequest creates a container from an OS template. Options holds the
// config options to set (hostname, cores, memory, net0, features, ...).
type CreateRequest struct {
	Node       string
	VMID       int
	OSTemplate string
	Storage    string
	DiskGiB    int
	Options    map[string]string
}

// CloneRequest clones a container or template.
type CloneRequest struct {
	Node        string // the source's node
	SourceVMID  int
	NewID       int
	Hostname    string
	Description string
	Full        bool
	Target      string // another node, or empty
	Storage     string // full clones only
	// Snapshot, when set, is the source's snapshot to clone (snapname).
	Snapshot string
}

// Snapshot is one of a container's snapshots.
type Snapshot struct {
	Name        string
	Description string
	// Parent is the snapshot this one descends from, empty for none.
	Parent string
	Time   time.Time
}

// Script is a named piece of shell run inside a guest or on a host. The name
// (feature/step) shows in ps, logs and the simulator's journal; parameters are
// passed as environment variables, never spliced into the body.
type Script struct {
	Name  string
	Phase string // check, apply, verify or uninstall
	Body  string
	Env   map[string]string
	// Output, when set, is called with each line the script prints, as it
	// prints it (stdout and stderr), where the node can stream them. The
	// Result still holds the whole output.
	Output func(line string) `json:"-"`
	// Timeout, when set, bounds the script where it runs, not only the
	// wait for it: the node runs it under timeout(1), which sends it (and
	// the processes it started) SIGTERM once Timeout has passed and SIGKILL
	// ScriptKillAfter later. It then exits 124, or 137 after the SIGKILL.
	Timeout time.Duration
}

// ScriptKillAfter is how long a script that ran out of time has between
// SIGTERM and SIGKILL.
const ScriptKillAfter = 30 * time.Second

// Argv is how a script runs: env K=V... /bin/sh -c BODY NAME PHASE, with
// the variables sorted so the command is the same every time.
func (s Script) Argv() []string {
	argv := []string{"env"}
	for _, k := range sortedKeys(s.Env) {
		argv = append(argv, k+"="+s.Env[k])
	}
	argv = append(argv, "/bin/sh", "-c", s.Body, s.Name)
	if s.Phase != "" {
		argv = append(argv, s.Phase)
	}
	return argv
}

// Result is what a command left behind.
type Result struct {
	ExitCode int
	Stdout   string
	Stderr   string
}

// HostInfo is what the host probe found.
type HostInfo struct {
	// DriverVersion is the NVIDIA kernel module's version, empty without one.
	DriverVersion string
	// PCIGPUs counts NVIDIA GPUs on the PCI bus.
	PCIGPUs int
	// Devices are the NVIDIA device nodes with their real numbers.
	Devices []Device
}

// BrokenDriver reports a host with GPUs on PCI but no device nodes: no
// working driver, nothing to pass through.
func (h HostInfo) BrokenDriver() bool { return h.PCIGPUs > 0 && len(h.Devices) == 0 }

// Device is a character device node on the host.
type Device struct {
	Path         string
	Major, Minor int
	// Mode is the node's permission bits (0666 for NVIDIA's nodes).
	Mode os.FileMode
}

// The kinds of failure the reconciler branches on. Providers classify what
// Proxmox answers into these, in one place each, and decide there whether a
// failure is worth retrying.
var (
	ErrLocked        = errors.New("locked")
	ErrAlreadyExists = errors.New("already exists")
	ErrNotFound      = errors.New("not found")
	ErrPermission    = errors.New("permission denied")
	ErrBadRequest    = errors.New("bad request")
	ErrConflict      = errors.New("modified concurrently")
	ErrTaskFailed    = errors.New("task failed")
	ErrUnavailable   = errors.New("unavailable")
	// ErrNotRunning is a command refused because its container is not
	// running (it also matches ErrRefused where a provider reports it so).
	ErrNotRunning = errors.New("not running")
	// ErrRefused is any other refusal by the server: the request as made
	// will not succeed (a linked clone of a non-template, a shrink, ...).
	ErrRefused = errors.New("refused")
)

// APIError is a failed API call, with Proxmox's own words kept.
type APIError struct {
	Kind      error // one of the Err* values
	Op        string
	Status    int
	Message   string
	Params    map[string]string // per-parameter messages of a 400
	Transient bool
}

func (e *APIError) Error() string {
	var b strings.Builder
	if e.Status == 0 {
		// No answer came (a dropped connection): there is no status to print.
		fmt.Fprintf(&b, "%s: %s", e.Op, e.Message)
	} else {
		fmt.Fprintf(&b, "%s: %d %s", e.Op, e.Status, e.Message)
	}
	for _, k := range sortedKeys(e.Params) {
		fmt.Fprintf(&b, "; %s: %s", k, strings.TrimSpace(e.Params[k]))
	}
	return b.String()
}

func (e *APIError) Is(target error) bool { return target == e.Kind }

// Retryable reports whether trying again may succeed without a change.
func (e *APIError) Retryable() bool { return e.Transient }

// TaskError is a Proxmox task that ended in failure.
type TaskError struct {
	UPID       string
	ExitStatus string
	LogTail    []string
	Transient  bool
}

func (e *TaskError) Error() string {
	msg := fmt.Sprintf("task %s failed: %s", e.UPID, e.ExitStatus)
	if len(e.LogTail) > 0 {
		msg += "\n  " + strings.Join(e.LogTail, "\n  ")
	}
	return msg
}

func (e *TaskError) Is(target error) bool { return target == ErrTaskFailed }

// Retryable reports whether the task failed for a reason that passes (a lock).
func (e *TaskError) Retryable() bool { return e.Transient }

// Retryable reports whether an error says to try again later. Errors that do
// not say are permanent.
func Retryable(err error) bool {
	var r interface{ Retryable() bool }
	return errors.As(err, &r) && r.Retryable()
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
