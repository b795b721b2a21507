package lxc

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Names of what a Host makes on the machine: a prefix, then the owning
// process id and a sequence number, so that a later Prepare recognises what
// a killed process left.
const (
	bridgePrefix = "phx"
	tablePrefix  = "phoenix_sim_"
)

// subnetBase is where Hosts take their /24s from.
var subnetBase = netip.MustParsePrefix("10.213.0.0/16")

// setupNetwork removes stale Hosts' leftovers, then picks a free /24 and
// makes the bridge and the nftables table, under a lock shared by every
// process on the machine so that two Hosts never pick one subnet.
func (h *Host) setupNetwork(ctx context.Context) error {
	unlock, err := lockFile(ctx, filepath.Join(h.opts.CacheDir, "net.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	removeStale(ctx)
	taken, err := takenPrefixes(ctx)
	if err != nil {
		return err
	}
	base := subnetBase.Addr().As4()
	found := false
	for i := 0; i < 256 && !found; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{base[0], base[1], byte(i), 0}), 24)
		clash := false
		for _, t := range taken {
			if t.Overlaps(p) {
				clash = true
				break
			}
		}
		if !clash {
			h.subnet, found = p, true
		}
	}
	if !found {
		return fmt.Errorf("no free /24 in %s for a container bridge", subnetBase)
	}
	gw := h.subnet.Addr().As4()
	gw[3] = 1
	h.gateway = netip.AddrFrom4(gw)
	h.used[h.gateway] = true

	if err := run(ctx, "ip", "link", "add", h.bridge, "type", "bridge"); err != nil {
		return fmt.Errorf("make bridge: %w", err)
	}
	steps := [][]string{
		{"ip", "addr", "add", netip.PrefixFrom(h.gateway, 24).String(), "dev", h.bridge},
		{"ip", "link", "set", h.bridge, "up"},
	}
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			_ = h.teardownNetwork(ctx)
			return fmt.Errorf("set up bridge: %w", err)
		}
	}
	// DNAT to 127.0.0.1 (Forward) needs the bridge to route loopback
	// destinations.
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+h.bridge+"/route_localnet", []byte("1"), 0o644); err != nil {
		_ = h.teardownNetwork(ctx)
		return fmt.Errorf("route_localnet on %s: %w", h.bridge, err)
	}
	// Containers reach the host only through forwarded ports (the apt
	// proxy among them) and nothing beyond it: no forwarding at all. A
	// refusal rather than a silent drop, so that what tries fails at once.
	table := fmt.Sprintf(`table inet %[1]s {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
	}
	chain output {
		type nat hook output priority -100; policy accept;
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname %[2]q ct state established,related accept
		iifname %[2]q ct status dnat accept
		iifname %[2]q meta l4proto tcp counter reject with tcp reset
		iifname %[2]q counter reject with icmpx type admin-prohibited
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname %[2]q meta l4proto tcp counter reject with tcp reset
		iifname %[2]q counter reject with icmpx type admin-prohibited
		oifname %[2]q counter drop
	}
}
`, h.table, h.bridge)
	if err := nftScript(ctx, table); err != nil {
		_ = h.teardownNetwork(ctx)
		return fmt.Errorf("nftables table %s: %w", h.table, err)
	}
	return nil
}

// teardownNetwork removes the Host's table and bridge; what is already gone
// is no error.
func (h *Host) teardownNetwork(ctx context.Context) error {
	var errs []error
	if tableExists(ctx, h.table) {
		if err := nft(ctx, "delete table inet "+h.table); err != nil {
			errs = append(errs, err)
		}
	}
	if linkExists(h.bridge) {
		if err := run(ctx, "ip", "link", "delete", h.bridge); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// takenPrefixes are the IPv4 networks already on the machine's interfaces
// and routes.
func takenPrefixes(ctx context.Context) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, args := range [][]string{{"-4", "-o", "addr", "show"}, {"-4", "route", "show", "table", "all"}} {
		text, err := output(ctx, "ip", args...)
		if err != nil {
			return nil, err
		}
		for _, f := range strings.Fields(text) {
			if p, err := netip.ParsePrefix(f); err == nil && p.Addr().Is4() {
				out = append(out, p.Masked())
			} else if a, err := netip.ParseAddr(f); err == nil && a.Is4() && !a.IsUnspecified() {
				out = append(out, netip.PrefixFrom(a, 32))
			}
		}
	}
	return out, nil
}

// removeStale removes bridges, tables, containers and directories of Hosts
// whose process is gone.
func removeStale(ctx context.Context) {
	ids := map[string]bool{}
	if links, err := output(ctx, "ip", "-o", "link", "show", "type", "bridge"); err == nil {
		for _, line := range strings.Split(links, "\n") {
			f := strings.Fields(line)
			if len(f) > 1 {
				name := strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")
				if id, ok := strings.CutPrefix(name, bridgePrefix); ok {
					ids[id] = true
				}
			}
		}
	}
	if tables, err := output(ctx, "nft", "list", "tables"); err == nil {
		for _, line := range strings.Split(tables, "\n") {
			f := strings.Fields(line)
			if len(f) == 3 && f[1] == "inet" {
				if id, ok := strings.CutPrefix(f[2], tablePrefix); ok {
					ids[strings.ReplaceAll(id, "_", "x")] = true
				}
			}
		}
	}
	if dirs, err := os.ReadDir(runRoot); err == nil {
		for _, d := range dirs {
			ids[d.Name()] = true
		}
	}
	for id := range ids {
		pid, err := strconv.Atoi(strings.SplitN(id, "x", 2)[0])
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		lxcPath := filepath.Join(runRoot, id)
		if cts, err := os.ReadDir(lxcPath); err == nil {
			for _, c := range cts {
				_ = exec.CommandContext(ctx, "lxc-stop", "-P", lxcPath, "-n", c.Name(), "-k").Run()
			}
		}
		_ = os.RemoveAll(lxcPath)
		if tableExists(ctx, tablePrefix+strings.ReplaceAll(id, "x", "_")) {
			_ = nft(ctx, "delete table inet "+tablePrefix+strings.ReplaceAll(id, "x", "_"))
		}
		if linkExists(bridgePrefix + id) {
			_ = run(ctx, "ip", "link", "delete", bridgePrefix+id)
		}
	}
}

// removeStaleGuests removes root file systems of Hosts whose process is
// gone (under cacheDir/guests).
func removeStaleGuests(cacheDir string) {
	dirs, err := os.ReadDir(filepath.Join(cacheDir, "guests"))
	if err != nil {
		return
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.SplitN(d.Name(), "x", 2)[0])
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(cacheDir, "guests", d.Name()))
	}
}

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

func tableExists(ctx context.Context, name string) bool {
	return exec.CommandContext(ctx, "nft", "list", "table", "inet", name).Run() == nil
}

func nft(ctx context.Context, command string) error {
	return nftScript(ctx, command+"\n")
}

func nftScript(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("nft: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
