package main

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/proxmox"
)

// TestSystemdUnitCommandParses checks that the unit's ExecStart is a command
// line phoenix accepts, and that the environment file names only the
// variables phoenix reads.
func TestSystemdUnitCommandParses(t *testing.T) {
	f, err := os.Open("../../examples/deploy/phoenix.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var exec string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
			exec = v
		}
	}
	args := strings.Fields(exec)
	if len(args) < 2 || args[0] != "/usr/local/bin/phoenix" {
		t.Fatalf("ExecStart %q", exec)
	}
	root := newRootCmd(os.Stdout, os.Stderr)
	cmd, rest, err := root.Find(args[1:])
	if err != nil || cmd.Name() != "run" {
		t.Fatalf("ExecStart names no phoenix command: %v", err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("ExecStart flags: %v", err)
	}
	if paths, _ := cmd.Flags().GetStringArray("filename"); len(paths) != 1 {
		t.Errorf("ExecStart specs: %v", paths)
	}

	known := map[string]bool{"PROXMOX_VE_ENDPOINT": true, "PROXMOX_VE_CA_FILE": true, "PROXMOX_VE_API_TOKEN": true,
		"PROXMOX_VE_USERNAME": true, "PROXMOX_VE_PASSWORD": true, "PROXMOX_VE_INSECURE": true, "PROXMOX_VE_SSH_USERNAME": true,
		"PROXMOX_VE_SSH_PRIVATE_KEY": true, "PROXMOX_VE_SSH_KNOWN_HOSTS": true, "PROXMOX_VE_SSH_PORT": true, EnvNodeAccess: true,
		proxmox.EnvAllowSpecEndpoint: true}
	env, err := os.ReadFile("../../examples/deploy/phoenix.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(env), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "#")
		if k, _, ok := strings.Cut(line, "="); ok && strings.ToUpper(k) == k && !strings.Contains(k, " ") && !known[k] {
			t.Errorf("phoenix.env sets %s, which phoenix does not read", k)
		}
	}
}
