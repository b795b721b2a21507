package sim

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// simFiles are the files Start writes, by the variables that name them.
var simFiles = []string{"PROXMOX_VE_CA_FILE", "PROXMOX_VE_SSH_PRIVATE_KEY", "PROXMOX_VE_SSH_KNOWN_HOSTS"}

func loadSmall(t *testing.T) *World {
	t.Helper()
	w, err := LoadWorld(filepath.Join("testdata", "small.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %#o, want %#o", path, got, want)
	}
}

// entries lists what is in dir (a TMPDIR the test gave Start).
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// TestStartFileModes: the temporary directory is its owner's only (0700), the
// CA, the SSH private key and known_hosts too (0600), and Close removes it all.
func TestStartFileModes(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	s, err := Start(loadSmall(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(s.Env()["PROXMOX_VE_CA_FILE"])
	if filepath.Dir(dir) != tmp {
		t.Fatalf("directory %s is not in TMPDIR %s", dir, tmp)
	}
	checkMode(t, dir, 0o700)
	for _, v := range simFiles {
		checkMode(t, s.Env()[v], 0o600)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left := entries(t, tmp); len(left) > 0 {
		t.Errorf("Close left %q in TMPDIR", left)
	}
}

// TestStartDirModes: in a directory of the caller's, files from an earlier run
// made with looser modes are made 0600 again, and the directory stays.
func TestStartDirModes(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"ca.pem", "id_ed25519", "known_hosts"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("stale\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Start(loadSmall(t), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range simFiles {
		if filepath.Dir(s.Env()[v]) != dir {
			t.Errorf("%s = %s, not in %s", v, s.Env()[v], dir)
		}
		checkMode(t, s.Env()[v], 0o600)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("Close removed the caller's directory: %v", err)
	}
}

// TestStartFailureRemovesDir: a Start that fails after making its directory
// (here, on an address it cannot listen on) removes the directory and the
// secrets already in it.
func TestStartFailureRemovesDir(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	s, err := Start(loadSmall(t), Options{Listen: "127.0.0.1:-1"})
	if err == nil {
		_ = s.Close()
		t.Fatal("Start listened on 127.0.0.1:-1")
	}
	if left := entries(t, tmp); len(left) > 0 {
		t.Errorf("failed Start left %q in TMPDIR", left)
	}
}
