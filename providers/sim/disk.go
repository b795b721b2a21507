package sim

import (
	"maps"
	"slices"
	"strings"
)

// disk is what is installed on a container's root filesystem. A clone copies
// it, which is how features arrive on clones in the simulator as they do on a
// real cluster: nothing is re-derived, the bytes are inherited.
type disk struct {
	os   distro // what /etc/os-release says
	osID string // Proxmox's ostype for it, which create writes to the config

	files    map[string]string // files pushed or downloaded into the guest: path -> content id
	records  map[string]bool   // scripts the model does not know that applied successfully
	base     bool              // the base packages
	nvidia   string            // userspace driver version
	cudaRepo string            // distribution of the installed cuda-keyring
	cuda     string            // cuda-toolkit MAJOR.MINOR
	docker   bool
	nct      bool // nvidia-container-toolkit installed
	nctDock  bool // runtime configured for docker
	// nctDefault: nvidia is docker's default runtime
	nctDefault bool
	noCgroup   bool // nvidia-container-cli no-cgroups = true
	ollama     string
	vllm       string
	// hostKeys stands for the SSH host keys in /etc/ssh and machineID for
	// /etc/machine-id: what makes a container itself. Empty is none.
	hostKeys  string
	machineID string
	// fileMeta (each file's mode and owner), dirs (directories made beyond
	// the standard ones) and units (services' enablement, by name) are
	// shared with clones and snapshots: changed by copy, never in place
	// (guestfiles.go).
	fileMeta map[string]fileMeta
	dirs     map[string]bool
	units    map[string]bool
}

// newDisk returns a fresh root filesystem for an OS template or ostype.
func newDisk(template string) *disk {
	d := &disk{files: map[string]string{}, records: map[string]bool{}}
	d.os = osFromTemplate(template)
	d.osID = d.os.ostype
	return d
}

// clone is the copy pct clone makes: every file, the SSH host keys
// included; the distribution's post-clone hook only empties /etc/machine-id
// (pve-container src/PVE/LXC/Setup/Base.pm, post_clone_hook), and systemd
// makes a new one at the next boot.
func (d *disk) clone() *disk {
	c := *d
	c.files = maps.Clone(d.files)
	c.records = maps.Clone(d.records)
	c.machineID = ""
	return &c
}

// distro is what the simulator knows of a distribution: the ostype Proxmox
// gives it, its /etc/os-release, and the release assumed when only the
// ostype is known.
type distro struct {
	ostype, id, name, version string
}

// distros by the first word of a template's name. Proxmox detects Rocky and
// AlmaLinux as ostype centos.
var distros = map[string]distro{
	"ubuntu":     {"ubuntu", "ubuntu", "Ubuntu", "24.04"},
	"debian":     {"debian", "debian", "Debian GNU/Linux", "12"},
	"devuan":     {"devuan", "devuan", "Devuan GNU/Linux", "5"},
	"alpine":     {"alpine", "alpine", "Alpine Linux", "3.20"},
	"fedora":     {"fedora", "fedora", "Fedora Linux", "41"},
	"centos":     {"centos", "centos", "CentOS Stream", "9"},
	"rockylinux": {"centos", "rocky", "Rocky Linux", "9"},
	"almalinux":  {"centos", "almalinux", "AlmaLinux", "9"},
	"opensuse":   {"opensuse", "opensuse-leap", "openSUSE Leap", "15.6"},
	"archlinux":  {"archlinux", "arch", "Arch Linux", ""},
	"gentoo":     {"gentoo", "gentoo", "Gentoo", ""},
}

// osFromTemplate reads the distribution from a template volume name such as
// local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst, or from an
// ostype alone. What the simulator does not know is Ubuntu 24.04.
func osFromTemplate(v string) distro {
	name := v
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	word, rest, _ := strings.Cut(name, "-")
	d, ok := distros[word]
	if !ok {
		return distros["ubuntu"]
	}
	// The release is the second word when it is one: archlinux-base_...
	// and gentoo-current-... carry none.
	if version, _, _ := strings.Cut(rest, "-"); version != "" && version[0] >= '0' && version[0] <= '9' {
		d.version = version
	}
	if d.id == "debian" || d.id == "devuan" {
		// Their os-release VERSION_ID is the major release.
		d.version, _, _ = strings.Cut(d.version, ".")
	}
	return d
}

// osRelease renders /etc/os-release.
func (d *disk) osRelease() string {
	out := "PRETTY_NAME=\"" + strings.TrimSpace(d.os.name+" "+d.os.version) + "\"\nNAME=\"" + d.os.name + "\"\n"
	if d.os.version != "" {
		out += "VERSION_ID=\"" + d.os.version + "\"\n"
	}
	return out + "ID=" + d.os.id + "\n"
}

// cudaRepos are the distributions NVIDIA publishes CUDA repositories for
// (developer.download.nvidia.com/compute/cuda/repos/<name>/x86_64/).
var cudaRepos = []string{"ubuntu2004", "ubuntu2204", "ubuntu2404", "debian11", "debian12", "rhel8", "rhel9",
	"fedora41", "fedora42", "opensuse15"}

// cudaDistro is the name NVIDIA's repositories use for the distribution, or
// "" where NVIDIA has none (Alpine's musl, Arch, Devuan, ...).
func (d *disk) cudaDistro() string {
	major, _, _ := strings.Cut(d.os.version, ".")
	var name string
	switch d.os.id {
	case "ubuntu":
		name = "ubuntu" + strings.ReplaceAll(d.os.version, ".", "")
	case "debian":
		name = "debian" + major
	case "rocky", "almalinux", "centos":
		name = "rhel" + major
	case "fedora":
		name = "fedora" + major
	case "opensuse-leap":
		name = "opensuse" + major
	}
	if !slices.Contains(cudaRepos, name) {
		return ""
	}
	return name
}
