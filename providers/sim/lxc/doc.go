// Package lxc runs real LXC containers on the local machine for the
// simulator's real-guest mode: a Debian 12 root file system made once with
// debootstrap and cached, privileged and unprivileged (id-mapped) containers
// copied from it, and a bridge of their own from which they reach only
// Debian's archive (through a proxy in this process) and the local servers a
// test forwards to them.
//
// A Host is one prepared machine: its bridge and nftables table carry a
// recognisable prefix and the owning process id (phx<pid>x<n>,
// phoenix_sim_<pid>_<n>), so that the next Prepare removes what a killed run
// left behind. It needs root, the lxc tools (lxc-start, lxc-attach, ...),
// debootstrap, nft and ip; Available says which are missing.
//
// What the containers look like from inside: systemd as PID 1, eth0 with a
// static address on the Host's subnet and the bridge as gateway, apt sources
// that name the Debian mirror (as a Proxmox VE template's do) with an apt
// proxy on the gateway, no resolver (nothing but the archive and forwarded
// ports is reachable, so there is nothing to resolve), and the CAs given to
// TrustCA in /usr/local/share/ca-certificates.
package lxc
