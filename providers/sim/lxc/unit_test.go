package lxc

import (
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

func TestMirrorIn(t *testing.T) {
	cases := map[string]struct {
		text string
		want string
	}{
		"one-line":              {text: "# comment\ndeb http://ftp.de.debian.org/debian/ bookworm main\n", want: "http://ftp.de.debian.org/debian"},
		"one-line with options": {text: "deb [arch=amd64 signed-by=/k.gpg] http://m.lab/debian bookworm main\n", want: "http://m.lab/debian"},
		"security only":         {text: "deb http://deb.debian.org/debian-security bookworm-security main\n", want: ""},
		"deb822": {text: "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n" +
			"Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n", want: "http://deb.debian.org/debian"},
		"deb822 other suite": {text: "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n", want: ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := mirrorIn(tc.text); got != tc.want {
				t.Errorf("mirrorIn = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSecurityMirror(t *testing.T) {
	for in, want := range map[string]string{
		"http://deb.debian.org/debian": "http://deb.debian.org/debian-security",
		"https://m.lab/mirror/debian":  "https://m.lab/mirror/debian-security",
		"http://m.lab/deb":             "http://m.lab/deb-security",
	} {
		u, _ := url.Parse(in)
		if got := securityMirror(u); got != want {
			t.Errorf("securityMirror(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestGrantsRoot(t *testing.T) {
	for text, want := range map[string]bool{
		"":                                      false,
		"root:100000:65536\n":                   true,
		"user:100000:65536\n":                   false,
		"root:100000:1000\n":                    false,
		"alice:165536:65536\nroot:0:4294967295": true,
	} {
		if got := grantsRoot(text); got != want {
			t.Errorf("grantsRoot(%q) = %t, want %t", text, got, want)
		}
	}
}

func TestDeviceCheck(t *testing.T) {
	for _, d := range []Device{
		{Path: "/tmp/x", Mode: 0o666},
		{Path: "/dev/../etc/passwd", Mode: 0o666},
		{Path: "/dev/nvidia0", Mode: 0o4666},
		{Path: "/dev/nvidia0", Mode: 0o666, UID: 70000},
		{Path: "/dev/nvidia0", Mode: 0o666, GID: -1},
	} {
		if err := d.check(); err == nil {
			t.Errorf("device %+v accepted", d)
		}
	}
	if err := (Device{Path: "/dev/nvidia-caps/nvidia-cap1", Mode: 0o400}).check(); err != nil {
		t.Error(err)
	}
}

// Every file of a shifted tree is owned by base plus its old owner, a file
// with two hard links included (shifting it twice leaves an id outside the
// container's map, which dpkg then cannot replace).
func TestShiftIDsShiftsHardLinksOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		testtool.Unable(t, "chown needs root")
	}
	dir := t.TempDir()
	a := filepath.Join(dir, "perl")
	if err := os.WriteFile(a, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(a, filepath.Join(dir, "perl5.36")); err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(dir, "su")
	if err := os.WriteFile(suid, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(suid, 0, 5); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	if err := shiftIDs(dir, IDMapBase); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][3]uint32{"perl": {IDMapBase, IDMapBase, 0o755}, "perl5.36": {IDMapBase, IDMapBase, 0o755}, "su": {IDMapBase, IDMapBase + 5, 0o4755}} {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, name), &st); err != nil {
			t.Fatal(err)
		}
		if got := [3]uint32{st.Uid, st.Gid, st.Mode & 0o7777}; got != want {
			t.Errorf("%s: uid, gid, mode = %v, want %v", name, got, want)
		}
	}
}
