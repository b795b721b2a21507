package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/spec"
)

// convergedNginx starts a simulator and makes nginx (and its template) with
// apply --target.
func convergedNginx(t *testing.T) *sim.Sim {
	t.Helper()
	s := startSim(t, "../../examples/homelab/world.yaml", nil)
	if code, out, errOut := phoenix(t, "apply", "-f", "../../examples/homelab", "--target", "nginx", "--auto-approve", "--quiet"); code != 0 {
		t.Fatalf("apply --target nginx: exit %d\n%s\n%s", code, out, errOut)
	}
	return s
}

// count counts the journal's events of a kind and name for a VMID; tasks
// are counted when they end.
func count(s *sim.Sim, vmid int, kind, name string) int {
	n := 0
	for _, e := range s.Journal() {
		if e.VMID == vmid && e.Kind == kind && e.Name == name && !strings.HasPrefix(e.Detail, "started ") {
			n++
		}
	}
	return n
}

// TestRestart: restart reboots the container through the API and waits
// for it as apply does; it refuses what it must not restart.
func TestRestart(t *testing.T) {
	s := convergedNginx(t)
	reboots, waits := count(s, 960, "task", "vzreboot"), count(s, 960, "exec", "phoenix/initialized")
	code, out, errOut := phoenix(t, "restart", "-f", "../../examples/homelab", "NGINX")
	if code != 0 || out != "Restarting nginx (Container 960 on pve1)...\nnginx restarted: its network is up and its devices are there.\n" {
		t.Fatalf("restart nginx: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := count(s, 960, "task", "vzreboot"); got != reboots+1 {
		t.Errorf("%d reboot tasks after the restart, want %d", got, reboots+1)
	}
	if got := count(s, 960, "exec", "phoenix/initialized"); got <= waits {
		t.Errorf("restart did not wait for the container (%d phoenix/initialized checks, %d before)", got, waits)
	}
	before := len(s.Journal())
	for name, tc := range map[string]struct{ guest, want string }{
		"a template":         {"ubuntu-2404-base", "ubuntu-2404-base is a Template: phoenix does not restart a template"},
		"not made yet":       {"vllm-qwen", "vllm-qwen (Container 950) does not exist yet: phoenix apply makes it"},
		"a guest of no spec": {"pihole", `no Container named "pihole" in the specs`},
		"an unknown name":    {"ngnix", `no Container named "ngnix" in the specs (did you mean nginx?)`},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := phoenix(t, "restart", "-f", "../../examples/homelab", tc.guest)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q, want 1 and %q", code, errOut, tc.want)
			}
		})
	}
	for _, e := range s.Journal()[before:] {
		if e.Kind == "task" || e.Kind == "exec" && e.Node != "" && e.VMID != 0 {
			t.Errorf("a refused restart did something: %+v", e)
		}
	}
}

// TestRestartRefusesAStoppedContainer: a stopped container is apply's to
// start, and restart says so.
func TestRestartRefusesAStoppedContainer(t *testing.T) {
	startSim(t, "../../examples/homelab/world.yaml", nil)
	if code, _, errOut := phoenix(t, "apply", "-f", "../../examples/homelab", "--target", "nginx", "--auto-approve", "--quiet"); code != 0 {
		t.Fatal(errOut)
	}
	stopGuest(t, 960)
	code, _, errOut := phoenix(t, "restart", "-f", "../../examples/homelab", "nginx")
	if want := "nginx (Container 960 on pve1) is stopped: phoenix does not restart a stopped container; phoenix apply starts it"; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, stderr %q, want 1 and %q", code, errOut, want)
	}
}

// TestExec: exec runs the command in the container, prints what it prints
// and exits with its status; it refuses what is not the deployment's.
func TestExec(t *testing.T) {
	s := convergedNginx(t)
	code, out, errOut := phoenix(t, "exec", "-f", "../../examples/homelab", "nginx", "--", "echo", "it's", "$HOME; true")
	if code != 0 || out != "it's $HOME; true\n" {
		t.Errorf("exec echo: exit %d, stdout %q\n%s", code, out, errOut)
	}
	if count(s, 960, "exec", "phoenix/exec") != 1 {
		t.Errorf("the journal lacks phoenix/exec in 960")
	}
	if code, out, _ := phoenix(t, "exec", "-f", "../../examples/homelab", "nginx", "--", "hostname"); code != 0 || out != "nginx\n" {
		t.Errorf("exec hostname: exit %d, %q", code, out)
	}
	for _, status := range []string{"3", "1", "0"} {
		code, _, _ := phoenix(t, "exec", "-f", "../../examples/homelab", "nginx", "--", "sh", "-c", "exit "+status)
		if want := int(status[0] - '0'); code != want {
			t.Errorf("exit %s: phoenix exited %d", status, code)
		}
	}
	code, out, _ = phoenix(t, "exec", "-f", "../../examples/homelab", "nginx", "--", "frobnicate")
	if code != 127 || !strings.Contains(out, "frobnicate: not found") {
		t.Errorf("an unknown command: exit %d, %q", code, out)
	}
	execs := count(s, 120, "exec", "phoenix/exec")
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"a guest of no spec": {[]string{"pihole", "--", "true"}, `no Container named "pihole" in the specs`},
		"a template":         {[]string{"gpu-base", "--", "true"}, "gpu-base is a Template"},
		"no --":              {[]string{"nginx", "true"}, "give the command after --"},
		"no command":         {[]string{"nginx", "--"}, "no command after --"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := phoenix(t, append([]string{"exec", "-f", "../../examples/homelab"}, tc.args...)...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q, want 1 and %q", code, errOut, tc.want)
			}
		})
	}
	if count(s, 120, "exec", "phoenix/exec") != execs {
		t.Errorf("exec ran in the unmanaged guest")
	}
}

// stopGuest shuts a container down through the API, as a person would.
func stopGuest(t *testing.T, vmid int) {
	t.Helper()
	cfg, err := proxmox.ConfigFromEnv(os.Getenv, spec.ClusterSpec{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := proxmox.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(context.Background(), "pve1", vmid); err != nil {
		t.Fatal(err)
	}
}

// TestChoresRefuseAnUnmanagedGuest: a container phoenix did not make, at a
// spec's VMID, is neither restarted nor has commands run in it.
func TestChoresRefuseAnUnmanagedGuest(t *testing.T) {
	s := startSim(t, "../../examples/homelab/world.yaml", func(w *sim.World) {
		w.Spec.Guests = append(w.Spec.Guests, sim.WorldGuest{VMID: 950, Name: "handmade", Node: "pve1", Running: true})
	})
	for _, args := range [][]string{{"restart", "-f", "../../examples/homelab", "vllm-qwen"}, {"exec", "-f", "../../examples/homelab", "vllm-qwen", "--", "true"}} {
		code, _, errOut := phoenix(t, args...)
		if want := "vllm-qwen (VMID 950 on pve1) is not this deployment's: it has no phoenix-managed tag; phoenix does not"; code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("%s: exit %d, stderr %q, want 1 and %q", args[0], code, errOut, want)
		}
	}
	for _, e := range s.Journal() {
		if e.VMID == 950 && (e.Kind == "task" || e.Kind == "exec") {
			t.Errorf("a refused chore did something to 950: %+v", e)
		}
	}
}
