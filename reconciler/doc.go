// Package reconciler observes a Proxmox VE cluster, compares it with the
// resolved specs, plans idempotent actions and applies them. The outside world
// reaches it only through the small interfaces declared here (Cluster, Node),
// implemented in providers/proxmox, providers/ssh, providers/local and
// exercised end to end against providers/sim.
package reconciler
