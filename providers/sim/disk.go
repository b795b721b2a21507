package sim

import (
	"maps"
	"strings"
)

// disk is what is installed on a container's root filesystem. A clone copies
// it, which is how features arrive on clones in the simulator as they do on a
// real cluster: nothing is re-derived, the bytes are inherited.
type disk struct {
	osID, osVersion string // from /etc/os-release

	files    map[string]string // files pushed or downloaded into the guest: path -> content id
	records  map[string]bool   // scripts the model does not know that applied successfully
	base     bool              // the base packages
	nvidia   string            // userspace driver version
	cudaRepo string            // distribution of the installed cuda-keyring
	cuda     string            // cuda-toolkit MAJOR.MINOR
	docker   bool
	nct      bool // nvidia-container-toolkit installed
	nctDock  bool // runtime configured for docker
	noCgroup bool // nvidia-container-cli no-cgroups = true
	ollama   string
	vllm     string
}

// newDisk returns a fresh root filesystem for an OS template or ostype.
func newDisk(template string) *disk {
	d := &disk{files: map[string]string{}, records: map[string]bool{}}
	d.osID, d.osVersion = osFromTemplate(template)
	return d
}

func (d *disk) clone() *disk {
	c := *d
	c.files = maps.Clone(d.files)
	c.records = maps.Clone(d.records)
	return &c
}

// osFromTemplate reads the distribution from a template volume name such as
// local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst, or an ostype.
func osFromTemplate(v string) (id, version string) {
	name := v
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	id, rest, _ := strings.Cut(name, "-")
	version, _, _ = strings.Cut(rest, "-")
	switch id {
	case "ubuntu":
		if version == "" {
			version = "24.04"
		}
	case "debian":
		if version == "" {
			version = "12"
		}
		version, _, _ = strings.Cut(version, ".")
	default:
		id, version = "ubuntu", "24.04"
	}
	return id, version
}

// osRelease renders /etc/os-release.
func (d *disk) osRelease() string {
	name := map[string]string{"ubuntu": "Ubuntu", "debian": "Debian GNU/Linux"}[d.osID]
	return "PRETTY_NAME=\"" + name + " " + d.osVersion + "\"\nNAME=\"" + name + "\"\nVERSION_ID=\"" + d.osVersion +
		"\"\nID=" + d.osID + "\n"
}

// cudaDistro is the name NVIDIA's repositories use for the distribution.
func (d *disk) cudaDistro() string {
	return d.osID + strings.ReplaceAll(d.osVersion, ".", "")
}
