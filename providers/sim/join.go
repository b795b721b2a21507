package sim

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/phoenixhv/phoenix/providers/sim/sshd"
)

// nodeAt names the node whose address is ip. Nodes join while the simulator
// runs, so the SSH server asks at every session.
func (c *cluster) nodeAt(ip string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.ip == ip {
			return n.Name, true
		}
	}
	return "", false
}

// JoinNode adds a node to the running cluster, as pvecm add run on a new
// node does (pve-cluster src/PVE/CLI/pvecm.pm): from then on
// /cluster/status lists it with its address (PVE::Cluster::get_members,
// pve-cluster src/PVE/Cluster.pm), its guests and storages are the
// cluster's, and it answers SSH on the port every node uses, at the next
// loopback address, with the host key known_hosts then lists for it too.
func (s *Sim) JoinNode(wn WorldNode) error {
	w := World{Spec: WorldSpec{Nodes: []WorldNode{wn}}}
	w.setDefaults()
	wn = w.Spec.Nodes[0]
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	switch {
	case !nodeNameRE.MatchString(wn.Name):
		return fmt.Errorf("node %q: not a valid node name", wn.Name)
	case s.c.node(wn.Name) != nil:
		return fmt.Errorf("node %s is already a member of the cluster", wn.Name)
	case wn.GPUs < 0 || wn.GPUs > 16:
		return fmt.Errorf("node %s: gpus %d is outside 0..16", wn.Name, wn.GPUs)
	case len(s.c.nodes)+2 > 254:
		return errors.New("no loopback address left for another node")
	}
	for _, st := range wn.Storages {
		for _, n := range s.c.nodes {
			for _, other := range n.Storages {
				if other.Name == st.Name && !sameStorageConfig(other, st) {
					return fmt.Errorf("node %s: storage %s differs from the cluster's storage.cfg", wn.Name, st.Name)
				}
			}
		}
	}
	n := &node{WorldNode: wn, ip: fmt.Sprintf("127.0.0.%d", len(s.c.nodes)+2), files: map[string]string{}}
	addr := net.JoinHostPort(n.ip, strconv.Itoa(s.sshPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node %s: listen on %s: %w", wn.Name, addr, err)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, "known_hosts"), os.O_WRONLY|os.O_APPEND, 0o600)
	if err == nil {
		_, err = fmt.Fprintln(f, sshd.KnownHostsLine([]string{addr}, s.ssh.PublicKey()))
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("node %s: known_hosts: %w", wn.Name, err)
	}
	go func() { _ = s.ssh.Serve(ln) }()
	s.c.nodes = append(s.c.nodes, n)
	s.c.world.Spec.Nodes = append(slices.Clone(s.c.world.Spec.Nodes), wn)
	s.c.journal.add(s.c.now(), Event{Node: wn.Name, Kind: "world", Name: "join", OK: true, Detail: n.ip})
	return nil
}
