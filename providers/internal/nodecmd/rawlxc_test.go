package nodecmd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

// A container's config file as Proxmox writes it, with raw GPU lines the
// original scripts added, a snapshot and a pending section that hold the
// same lines (which are not the current config's to edit).
const rawConf = `#GPU container%3A made by hand
arch: amd64
cores: 4
dev0: /dev/nvidia0,mode=0666
hostname: ollama
lxc.cgroup2.devices.allow: c 195:* rwm
lxc.cgroup2.devices.allow: c 508:* rwm
lxc.mount.entry: /dev/nvidia0 dev/nvidia0 none bind,optional,create=file
lxc.apparmor.profile: unconfined
memory: 16384
rootfs: local-lvm:vm-955-disk-0,size=64G

[pending]
lxc.cgroup2.devices.allow: c 195:* rwm

[before-upgrade]
lxc.cgroup2.devices.allow: c 195:* rwm
lxc.mount.entry: /dev/nvidia0 dev/nvidia0 none bind,optional,create=file
snaptime: 1764000000
`

// TestRemoveRawLXCEditsExactlyTheLines runs the real script with real
// shells: it removes the given lines from the current section and leaves
// every other byte of the file as it was.
func TestRemoveRawLXCEditsExactlyTheLines(t *testing.T) {
	testtool.Require(t, "flock")
	want := strings.Replace(rawConf, "lxc.cgroup2.devices.allow: c 195:* rwm\nlxc.cgroup2.devices.allow: c 508:* rwm\nlxc.mount.entry: /dev/nvidia0 dev/nvidia0 none bind,optional,create=file\n", "", 1)
	lines := [][2]string{
		{"lxc.cgroup2.devices.allow", "c 195:* rwm"}, {"lxc.cgroup2.devices.allow", "c 508:* rwm"},
		{"lxc.mount.entry", "/dev/nvidia0 dev/nvidia0 none bind,optional,create=file"},
		{"lxc.mount.entry", "/dev/nvidia1 dev/nvidia1 none bind,optional,create=file"}, // not there: no error
	}
	s, err := RemoveRawLXCScript(955, lines)
	if err != nil {
		t.Fatal(err)
	}
	for _, shell := range testtool.Shells(t) {
		t.Run(filepath.Base(shell), func(t *testing.T) {
			root := t.TempDir()
			conf := filepath.Join(root, "etc/pve/lxc/955.conf")
			if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(conf, []byte(rawConf), 0o640); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(shell, "-c", s.Body, s.Name)
			cmd.Env = append(os.Environ(), "PHOENIX_PVE_ROOT="+root, "PHOENIX_VMID="+s.Env["PHOENIX_VMID"], "PHOENIX_LINES="+s.Env["PHOENIX_LINES"])
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			got, err := os.ReadFile(conf)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, string(got)); diff != "" {
				t.Errorf("the config after the edit (-want +got):\n%s", diff)
			}
			if left, _ := filepath.Glob(conf + ".tmp.*"); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// TestRemoveRawLXCWaitsForProxmoxsLock: while Proxmox holds the container's
// config lock, the edit waits for it, then fails as Proxmox's own lock
// timeout does.
func TestRemoveRawLXCWaitsForProxmoxsLock(t *testing.T) {
	flock := testtool.Require(t, "flock")
	root := t.TempDir()
	conf := filepath.Join(root, "etc/pve/lxc/955.conf")
	lock := filepath.Join(root, "run/lock/lxc/pve-config-955.lock")
	for _, dir := range []string{filepath.Dir(conf), filepath.Dir(lock)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(conf, []byte(rawConf), 0o640); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command(flock, lock, "sleep", "30")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	held := false
	for deadline := time.Now().Add(10 * time.Second); !held && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		held = exec.Command(flock, "-n", lock, "true").Run() != nil
	}
	if !held {
		t.Fatal("the holder never took the lock")
	}
	s, _ := RemoveRawLXCScript(955, [][2]string{{"lxc.cgroup2.devices.allow", "c 195:* rwm"}})
	body := strings.Replace(s.Body, "flock -w 10 9", "flock -w 1 9", 1)
	cmd := exec.Command("sh", "-c", body, s.Name)
	cmd.Env = append(os.Environ(), "PHOENIX_PVE_ROOT="+root, "PHOENIX_VMID=955", "PHOENIX_LINES="+s.Env["PHOENIX_LINES"])
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "got timeout") {
		t.Errorf("with the lock held: %v %s", err, out)
	}
	if got, _ := os.ReadFile(conf); string(got) != rawConf {
		t.Error("the file changed without the lock")
	}
}

func TestRemoveRawLXCRefusesWhatIsNotARawLine(t *testing.T) {
	for _, l := range [][2]string{{"dev0", "/dev/nvidia0"}, {"lxc.mount.entry", "a\nmemory: 1"}} {
		if _, err := RemoveRawLXCScript(1, [][2]string{l}); err == nil {
			t.Errorf("%v accepted", l)
		}
	}
}
