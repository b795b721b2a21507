package pveapi

import "strings"

// The API dump folds net0, net1, ... into one "net[n]" key (RESTHandler::api_clone_schema),
// so how many keys a release registers has to come from the code that registers them.
//
// pve-container src/PVE/LXC/Config.pm: $MAX_LXC_NETWORKS = 32 (PVE 9), $MAX_MOUNT_POINTS =
// 256, $MAX_UNUSED_DISKS = $MAX_MOUNT_POINTS, $MAX_DEVICES = 256. PVE 8 and older
// registered $MAX_LXC_NETWORKS = 10; when 8.x moved to 32 is not confirmed, so 8.3 keeps
// the stricter 10.
var lxcIndexLimits = map[Version]map[string]int{
	V91: {"net": 32, "mp": 256, "unused": 256, "dev": 256},
	V83: {"net": 10, "mp": 256, "unused": 256, "dev": 256},
}

// qemu-server (PVE::QemuServer and its Drive/Network helpers); limits as known for 8.x
// and 9.x, not re-read from source for this package.
var qemuIndexLimits = map[string]int{
	"net": 32, "unused": 256, "ide": 4, "sata": 6, "scsi": 31, "virtio": 16, "usb": 14,
	"hostpci": 16, "serial": 4, "parallel": 3, "numa": 8, "ipconfig": 32, "virtiofs": 10,
}

// indexLimit reports how many keys base0..baseN-1 PVE registers for an indexed
// parameter of the method at path.
func indexLimit(v Version, path, base string) int {
	switch {
	case strings.HasPrefix(path, "/nodes/{node}/lxc"):
		if n, ok := lxcIndexLimits[v][base]; ok {
			return n
		}
	case strings.HasPrefix(path, "/nodes/{node}/qemu"):
		if n, ok := qemuIndexLimits[base]; ok {
			return n
		}
	case strings.HasPrefix(path, "/cluster/config"):
		// corosync links: PVE::Corosync MAX_LINK_INDEX = 7.
		if base == "link" {
			return 8
		}
	case strings.HasPrefix(path, "/nodes/{node}/config"):
		// PVE::NodeConfig: $MAXDOMAINS = 5 ACME domains per node.
		if base == "acmedomain" {
			return 5
		}
	}
	// Unknown: fail closed, no key matches.
	return 0
}

// Privilege names PVE::AccessControl accepts ('pve-priv'). PVE 9 dropped VM.Monitor for
// VM.GuestAgent.* and added VM.Replicate (pve8to9 notice, pve-access-control 9.0).
var commonPrivileges = []string{
	"Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit",
	"Group.Allocate", "Mapping.Audit", "Mapping.Modify", "Mapping.Use", "Permissions.Modify",
	"Pool.Allocate", "Pool.Audit", "Realm.Allocate", "Realm.AllocateUser", "SDN.Allocate",
	"SDN.Audit", "SDN.Use", "Sys.AccessNetwork", "Sys.Audit", "Sys.Console", "Sys.Incoming",
	"Sys.Modify", "Sys.PowerMgmt", "Sys.Syslog", "User.Modify", "VM.Allocate", "VM.Audit",
	"VM.Backup", "VM.Clone", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Cloudinit",
	"VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network",
	"VM.Config.Options", "VM.Console", "VM.Migrate", "VM.PowerMgmt", "VM.Snapshot",
	"VM.Snapshot.Rollback",
}

var versionPrivileges = map[Version][]string{
	V83: {"VM.Monitor"},
	V91: {
		"VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt",
		"VM.GuestAgent.FileWrite", "VM.GuestAgent.Unrestricted", "VM.Replicate",
	},
}

func privileges(v Version) map[string]bool {
	out := map[string]bool{}
	for _, p := range commonPrivileges {
		out[p] = true
	}
	for _, p := range versionPrivileges[v] {
		out[p] = true
	}
	return out
}
