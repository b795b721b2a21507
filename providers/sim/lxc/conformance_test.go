package lxc

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Privileged and unprivileged containers boot systemd, reach Debian's
// archive through the host (apt-get update and install work), reach a
// 127.0.0.1 server through Forward with a CA given to TrustCA, and reach
// nothing else: no other host, no other port of the host, no other site
// through the proxy, no resolver.
func TestContainersReachTheArchiveAndForwardedServersOnly(t *testing.T) {
	for _, unpriv := range []bool{false, true} {
		t.Run(fmt.Sprintf("unprivileged=%t", unpriv), func(t *testing.T) {
			h := prepare(t)
			port, ca := tlsServer(t, h.Gateway(), "hello from the host")
			if _, err := h.Forward(port); err != nil {
				t.Fatal(err)
			}
			if err := h.TrustCA(ca); err != nil {
				t.Fatal(err)
			}
			secret := plainServer(t)
			c := started(t, h, "net", ContainerOptions{Unprivileged: unpriv})

			if got := sh(t, c, "id -u; hostname"); got != "0\nnet\n" {
				t.Errorf("id -u; hostname = %q, want 0 and the container's name", got)
			}
			// ifupdown configured the address inside, as on Proxmox VE.
			if got := sh(t, c, "ip -4 -o addr show eth0; ip route show default"); !strings.Contains(got, " "+c.Address()+"/24 ") ||
				!strings.Contains(got, "default via "+h.Gateway()+" dev eth0") {
				t.Errorf("eth0 and the default route:\n%s\nwant %s/24 via %s", got, c.Address(), h.Gateway())
			}
			resp, err := h.HTTPClient().Get(fmt.Sprintf("https://%s:%d/", h.Gateway(), port))
			if err != nil {
				t.Fatalf("the host cannot fetch what it forwards: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "hello from the host" {
				t.Errorf("host fetch = %q", body)
			}
			if got := sh(t, c, "getent hosts "+h.mirror.Hostname()); !strings.HasPrefix(got, h.Gateway()+" ") {
				t.Errorf("the mirror's name resolves to %q, want the gateway %s", got, h.Gateway())
			}
			sh(t, c, "apt-get update -q")
			sh(t, c, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends curl ca-certificates")
			url := fmt.Sprintf("https://%s:%d/", h.Gateway(), port)
			if got := sh(t, c, "curl -sS --max-time 20 "+url); got != "hello from the host" {
				t.Errorf("curl %s = %q, want the server's body", url, got)
			}
			refused := map[string]string{
				"a public address":                "curl -sS --max-time 20 http://1.1.1.1/",
				"a name (no resolver)":            "curl -sS --max-time 20 http://example.com/",
				"an unforwarded port of the host": fmt.Sprintf("curl -sS --max-time 20 http://%s:%d/", h.Gateway(), secret),
				"the host at 127.0.0.1":           fmt.Sprintf("curl -sS --max-time 20 http://127.0.0.1:%d/", secret),
				"another site through the proxy":  fmt.Sprintf("curl -sS -f --max-time 20 -x http://%s:%d http://example.com/", h.Gateway(), h.proxy.port()),
			}
			for what, cmd := range refused {
				if out, code := shCode(t, c, cmd); code == 0 {
					t.Errorf("%s is reachable: %s printed %q", what, cmd, out)
				}
			}
		})
	}
}

// A clone's root file system is a copy of its source's; Push writes files
// owned by the container's root (shifted on the host when unprivileged)
// with the given mode.
func TestCloneCopiesTheDiskAndPushSetsOwnerAndMode(t *testing.T) {
	for _, unpriv := range []bool{false, true} {
		t.Run(fmt.Sprintf("unprivileged=%t", unpriv), func(t *testing.T) {
			h := prepare(t)
			src := started(t, h, "src", ContainerOptions{Unprivileged: unpriv})
			if err := src.Push(strings.NewReader("#!/bin/sh\necho pushed\n"), "/usr/local/bin/pushed", 0o750); err != nil {
				t.Fatal(err)
			}
			if got := sh(t, src, "stat -c '%a %u %g' /usr/local/bin/pushed; /usr/local/bin/pushed"); got != "750 0 0\npushed\n" {
				t.Errorf("pushed file = %q, want mode 750, owner 0:0, runnable", got)
			}
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(src.Rootfs(), "usr/local/bin/pushed"), &st); err != nil {
				t.Fatal(err)
			}
			wantUID := uint32(0)
			if unpriv {
				wantUID = IDMapBase
			}
			if st.Uid != wantUID || st.Gid != wantUID {
				t.Errorf("on the host the pushed file is owned by %d:%d, want %d:%d", st.Uid, st.Gid, wantUID, wantUID)
			}
			if err := src.PushOwned(strings.NewReader("x"), "/tmp/owned", 0o600, "1000", "video"); err != nil {
				t.Fatal(err)
			}
			if got := sh(t, src, "stat -c '%a %u %g' /tmp/owned"); got != "600 1000 44\n" {
				t.Errorf("PushOwned file = %q, want 600 1000 44", got)
			}
			if err := src.Push(strings.NewReader("x"), "/no/such/dir/file", 0o644); err == nil {
				t.Error("push into a missing directory succeeded")
			}
			sh(t, src, "echo written-in-src > /root/marker")
			ctx := context.Background()
			if err := src.Shutdown(ctx, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			if src.Running() {
				t.Fatal("source still running after Shutdown")
			}
			if _, err := h.Clone(ctx, src, "clone", ContainerOptions{Unprivileged: !unpriv}); err == nil {
				t.Error("a clone with another id map than its source's was made")
			}
			cl, err := h.Clone(ctx, src, "clone", ContainerOptions{Unprivileged: unpriv, Hostname: "web-2"})
			if err != nil {
				t.Fatal(err)
			}
			boot(t, cl)
			if got := sh(t, cl, "cat /root/marker; /usr/local/bin/pushed; hostname"); got != "written-in-src\npushed\nweb-2\n" {
				t.Errorf("clone = %q, want the source's files and its own host name", got)
			}
			if cl.Address() == src.Address() {
				t.Errorf("clone and source share address %s", cl.Address())
			}
			if err := cl.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := cl.Attach(ctx, []string{"true"}, nil, nil, nil, nil); err == nil {
				t.Error("attach to a stopped container succeeded")
			}
		})
	}
}

// Device nodes exist in the container with the devN's major, minor, mode and
// owner; opening one fails, as no driver serves it.
func TestDevicesHaveModeAndOwner(t *testing.T) {
	for _, unpriv := range []bool{false, true} {
		t.Run(fmt.Sprintf("unprivileged=%t", unpriv), func(t *testing.T) {
			h := prepare(t)
			c := started(t, h, "gpu", ContainerOptions{Unprivileged: unpriv, Devices: []Device{
				{Path: "/dev/nvidia0", Major: 195, Minor: 0, Mode: 0o666},
				{Path: "/dev/nvidia-caps/nvidia-cap1", Major: 237, Minor: 1, Mode: 0o400},
				{Path: "/dev/nvidia-uvm", Major: 511, Minor: 0, Mode: 0o660, UID: 1000, GID: 44},
			}})
			got := sh(t, c, "stat -c '%n %F %t:%T %a %u %g' /dev/nvidia0 /dev/nvidia-caps/nvidia-cap1 /dev/nvidia-uvm")
			want := "/dev/nvidia0 character special file c3:0 666 0 0\n" +
				"/dev/nvidia-caps/nvidia-cap1 character special file ed:1 400 0 0\n" +
				"/dev/nvidia-uvm character special file 1ff:0 660 1000 44\n"
			if got != want {
				t.Errorf("device nodes:\n%s\nwant:\n%s", got, want)
			}
			if out, code := shCode(t, c, "head -c1 /dev/nvidia-uvm"); code == 0 {
				t.Errorf("opening a device without a driver succeeded: %q", out)
			}
		})
	}
}

// Close stops and removes the containers, the bridge, the nftables table and
// the directories; Prepare removes what a killed process left.
func TestCloseAndPrepareLeaveNothingBehind(t *testing.T) {
	h := prepare(t)
	c := started(t, h, "gone", ContainerOptions{})
	lxcPath, lxcName, rootfs := h.lxcPath, c.lxcName, c.Rootfs()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if linkExists(h.bridge) {
		t.Errorf("bridge %s left", h.bridge)
	}
	if tableExists(context.Background(), h.table) {
		t.Errorf("nftables table %s left", h.table)
	}
	for _, p := range []string{lxcPath, rootfs} {
		if exists(p) {
			t.Errorf("%s left", p)
		}
	}
	if out, _ := exec.Command("lxc-info", "-P", lxcPath, "-n", lxcName, "-s", "-H").CombinedOutput(); strings.TrimSpace(string(out)) == "RUNNING" {
		t.Errorf("container %s still running", lxcName)
	}

	// What a killed process leaves: a bridge, a table, an lxc path.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%dx1", dead.Process.Pid)
	bridge, table := bridgePrefix+id, tablePrefix+strings.ReplaceAll(id, "x", "_")
	if err := run(context.Background(), "ip", "link", "add", bridge, "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	if err := nft(context.Background(), "add table inet "+table); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(runRoot, id, "ct"), 0o755); err != nil {
		t.Fatal(err)
	}
	prepare(t)
	if linkExists(bridge) || tableExists(context.Background(), table) || exists(filepath.Join(runRoot, id)) {
		t.Errorf("a dead process's bridge %s, table %s or directory is left after Prepare", bridge, table)
	}
}

// With Nesting, Debian's docker.io runs a container: an image imported from
// Debian's busybox-static, since no registry is reachable.
func TestNestingRunsDocker(t *testing.T) {
	for _, unpriv := range []bool{false, true} {
		t.Run(fmt.Sprintf("unprivileged=%t", unpriv), func(t *testing.T) {
			h := prepare(t)
			c := started(t, h, "docker", ContainerOptions{Unprivileged: unpriv, Nesting: true, Keyctl: true})
			sh(t, c, "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io busybox-static")
			sh(t, c, `set -e; d=$(mktemp -d); mkdir "$d/bin"; cp /bin/busybox "$d/bin/"; "$d/bin/busybox" --install -s "$d/bin" 2>/dev/null || true
for a in sh echo; do ln -sf busybox "$d/bin/$a"; done; tar -C "$d" -c . | docker import - tiny:latest >/dev/null`)
			if got := sh(t, c, "docker run --rm tiny:latest /bin/echo hello from docker"); got != "hello from docker\n" {
				t.Errorf("docker run = %q", got)
			}
		})
	}
}
