// Package e2e holds the end-to-end tests: phoenix's real providers (the API
// adapter on go-proxmox, SSH to the nodes) wired to the embedded simulator,
// over real HTTPS and SSH. It is the one place where providers, simulator and
// reconciler meet, so that none of them has to import another against the
// dependency rules of the design.
package e2e
