package nodecmd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

// TestSetRawLXCOwnsExactlyItsKeys runs the real script with real shells: the
// owned keys end with exactly the given lines, after the current section's
// last line; every other line (other raw keys, the pending section, a
// snapshot) stays byte for byte, and a second run changes nothing.
func TestSetRawLXCOwnsExactlyItsKeys(t *testing.T) {
	testtool.Require(t, "flock")
	const conf = `#made by hand
arch: amd64
lxc.apparmor.profile = generated
cores: 4
lxc.cgroup2.devices.allow: c 10:200 rwm
lxc.idmap: u 0 100000 65536
lxc.idmap: g 0 100000 65536
memory: 2048

[pve:pending]
lxc.idmap: u 0 1 1

[before]
lxc.apparmor.profile: generated
snaptime: 1764000000
`
	cases := map[string]struct {
		conf string
		keys map[string][]string
		want string
	}{
		"profile and id map replaced, other raw lines kept": {
			conf: conf,
			keys: map[string][]string{
				"lxc.apparmor.profile": {"unconfined"},
				"lxc.idmap":            {"u 0 100000 65536", "g 0 100000 33", "g 33 33 1", "g 34 100034 65502"},
				"lxc.mount.auto":       {"sys:rw"},
			},
			want: `#made by hand
arch: amd64
cores: 4
lxc.cgroup2.devices.allow: c 10:200 rwm
memory: 2048
lxc.apparmor.profile: unconfined
lxc.idmap: u 0 100000 65536
lxc.idmap: g 0 100000 33
lxc.idmap: g 33 33 1
lxc.idmap: g 34 100034 65502
lxc.mount.auto: sys:rw

[pve:pending]
lxc.idmap: u 0 1 1

[before]
lxc.apparmor.profile: generated
snaptime: 1764000000
`,
		},
		"an owned key without lines is removed": {
			conf: conf,
			keys: map[string][]string{"lxc.idmap": {}, "lxc.cap.drop": {}},
			want: strings.Replace(conf, "lxc.idmap: u 0 100000 65536\nlxc.idmap: g 0 100000 65536\n", "", 1),
		},
		"a file without sections": {
			conf: "arch: amd64\nlxc.mount.auto: sys:mixed\n",
			keys: map[string][]string{"lxc.mount.auto": {"sys:rw", "cgroup:rw"}},
			want: "arch: amd64\nlxc.mount.auto: sys:rw\nlxc.mount.auto: cgroup:rw\n",
		},
	}
	for name, tc := range cases {
		s, err := SetRawLXCScript(101, tc.keys)
		if err != nil {
			t.Fatal(err)
		}
		for _, shell := range testtool.Shells(t) {
			t.Run(name+"/"+filepath.Base(shell), func(t *testing.T) {
				root := t.TempDir()
				path := filepath.Join(root, "etc/pve/lxc/101.conf")
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(tc.conf), 0o640); err != nil {
					t.Fatal(err)
				}
				for run := range 2 {
					cmd := exec.Command(shell, "-c", s.Body, s.Name)
					cmd.Env = append(os.Environ(), "PHOENIX_PVE_ROOT="+root)
					for k, v := range s.Env {
						cmd.Env = append(cmd.Env, k+"="+v)
					}
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("run %d: %v\n%s", run, err, out)
					}
					got, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(tc.want, string(got)); diff != "" {
						t.Errorf("run %d: the config after the edit (-want +got):\n%s", run, diff)
					}
				}
				if left, _ := filepath.Glob(path + ".tmp.*"); len(left) > 0 {
					t.Errorf("temporary files left: %v", left)
				}
			})
		}
	}
}

// TestSetRawLXCReadsBack: a file the edit cannot make hold the lines (here
// a second writer's line the script does not know as its key's, written
// "key=value" with a space before the key) fails the read-back rather than
// passing silently; a missing config is Proxmox's error.
func TestSetRawLXCReadsBack(t *testing.T) {
	testtool.Require(t, "flock")
	s, _ := SetRawLXCScript(101, map[string][]string{"lxc.mount.auto": {"sys:rw"}})
	root := t.TempDir()
	cmd := exec.Command("sh", "-c", s.Body, s.Name)
	cmd.Env = append(os.Environ(), "PHOENIX_PVE_ROOT="+root, "PHOENIX_VMID=101", "PHOENIX_KEYS=lxc.mount.auto", "PHOENIX_LINES=lxc.mount.auto: sys:rw")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "does not exist") {
		t.Errorf("without a config: %v %s", err, out)
	}
	body := strings.Replace(s.Body, `if [ "$(owned "$conf")"`, `echo "lxc.mount.auto: cgroup:rw" >>"$conf"; if [ "$(owned "$conf")"`, 1)
	path := filepath.Join(root, "etc/pve/lxc/101.conf")
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	_ = os.WriteFile(path, []byte("arch: amd64\n"), 0o640)
	cmd = exec.Command("sh", "-c", body, s.Name)
	cmd.Env = append(os.Environ(), "PHOENIX_PVE_ROOT="+root, "PHOENIX_VMID=101", "PHOENIX_KEYS=lxc.mount.auto", "PHOENIX_LINES=lxc.mount.auto: sys:rw")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(string(out), "did not read back") {
		t.Errorf("a file that does not read back: %v %s", err, out)
	}
}

func TestSetRawLXCRefusesWhatIsNotARawKey(t *testing.T) {
	for _, keys := range []map[string][]string{
		{"features": {"nesting=1"}}, {"lxc.mount.auto": {"a\nmemory: 1"}}, {"lxc.mount.auto": {" sys:rw"}}, {"lxc.Cap": {"x"}}, {},
	} {
		if _, err := SetRawLXCScript(1, keys); err == nil {
			t.Errorf("%v accepted", keys)
		}
	}
}
