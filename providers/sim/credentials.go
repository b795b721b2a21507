package sim

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/phoenixhv/phoenix/providers/sim/sshd"
)

// Credentials are the secrets a simulated cluster accepts, chosen by the
// one who starts it: tests that start phoenix against the simulator with
// values they know (canaries) look for them in everything phoenix wrote.
// Empty fields keep the world's values, or generated ones.
type Credentials struct {
	// RootPassword is root@pam's password.
	RootPassword string
	// TokenSecret is the secret of the world's first API token
	// (root@pam!phoenix unless the world lists tokens).
	TokenSecret string
	// ClientKey is a PEM private key every node's SSH server accepts, in
	// place of the one the simulator makes. The file Env names holds it.
	ClientKey []byte
}

func (c Credentials) users(u Users) Users {
	if c.RootPassword != "" {
		u.RootPassword = c.RootPassword
	}
	if c.TokenSecret != "" {
		u.Tokens = slices.Clone(u.Tokens)
		if len(u.Tokens) == 0 {
			u.Tokens = []Token{{ID: "root@pam!phoenix"}}
		}
		u.Tokens[0].Secret = c.TokenSecret
	}
	return u
}

// clientKey is the key the SSH servers accept, and its PEM.
func (c Credentials) clientKey() (ssh.Signer, []byte, error) {
	if len(c.ClientKey) == 0 {
		return sshd.GenerateClientKey()
	}
	signer, err := ssh.ParsePrivateKey(c.ClientKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sim: Credentials.ClientKey: %w", err)
	}
	return signer, c.ClientKey, nil
}

// CanaryCredentials makes credentials no one else has, each recognisable
// where it turns up: a test starts the simulator with them, points phoenix
// at it, and looks for Canaries in everything phoenix wrote.
func CanaryCredentials() (Credentials, error) {
	_, key, err := sshd.GenerateClientKey()
	if err != nil {
		return Credentials{}, err
	}
	b := randomHex(16)
	return Credentials{
		RootPassword: "canary-root-password-" + randomHex(8),
		// A token secret is a UUID.
		TokenSecret: b[0:8] + "-" + b[8:12] + "-" + b[12:16] + "-" + b[16:20] + "-" + b[20:32],
		ClientKey:   key,
	}, nil
}

// Canaries are the strings of c that must never turn up in what phoenix
// writes: the password, the token secret, and each line of the key's body
// (a key written out whole, or in JSON, still shows its lines).
func (c Credentials) Canaries() []string {
	var out []string
	for _, s := range []string{c.RootPassword, c.TokenSecret} {
		if s != "" {
			out = append(out, s)
		}
	}
	for _, l := range strings.Split(string(c.ClientKey), "\n") {
		if len(l) >= 16 && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}

// StoredConfigs returns every guest's configuration as the simulator stores
// it, one text per VMID: the options, raw lxc lines and pending changes.
// Tests search them for what must never be written to Proxmox.
func (s *Sim) StoredConfigs() map[int]string {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	out := map[int]string{}
	for vmid, g := range s.c.guests {
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(g.conf.vals)) {
			fmt.Fprintf(&b, "%s: %s\n", k, g.conf.vals[k])
		}
		for _, l := range g.conf.lxc {
			fmt.Fprintf(&b, "%s: %s\n", l[0], l[1])
		}
		for _, k := range slices.Sorted(maps.Keys(g.conf.pending)) {
			fmt.Fprintf(&b, "[pending] %s: %s\n", k, g.conf.pending[k])
		}
		out[vmid] = b.String()
	}
	return out
}
