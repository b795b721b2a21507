package ssh

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/phoenixhv/phoenix/spec"
)

// Config says how to reach the nodes of a cluster over SSH.
type Config struct {
	// User logs in on every node; pct needs root. Default root.
	User string
	// Port is every node's SSH port. Default 22.
	Port int
	// KnownHostsFile holds the nodes' host keys, in OpenSSH's format. There
	// is no trust on first use: an unknown host is refused. Default
	// ~/.ssh/known_hosts.
	KnownHostsFile string
	// PrivateKey is an unencrypted private key in PEM form (what ssh-keygen
	// writes). When empty, the keys of the ssh-agent at Agent are used.
	PrivateKey []byte
	// Agent is the path of an ssh-agent socket (SSH_AUTH_SOCK).
	Agent string
	// DialTimeout bounds connecting and the SSH handshake. Default 10s.
	DialTimeout time.Duration
	// Addresses maps node names to the host (or host:port) to dial: the
	// node's ip as /cluster/status reports it.
	Addresses map[string]string
	// MaxSessions bounds the commands running at once on one connection.
	// OpenSSH's sshd refuses sessions beyond its MaxSessions (10 unless
	// configured otherwise), so more concurrent commands wait here instead of
	// failing there. Default 10.
	MaxSessions int
	// OutputLimit bounds what is kept of each command's stdout and of its
	// stderr; the middle of longer output is dropped, and marked.
	// Default 1 MiB.
	OutputLimit int
	// DialContext opens the TCP connection; default a net.Dialer. Tests
	// count connections with it; a jump host could be plugged in here.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// The variables ConfigFromEnv reads: those of terraform-provider-proxmox, plus
// phoenix's own PROXMOX_VE_SSH_KNOWN_HOSTS and PROXMOX_VE_SSH_PORT.
const (
	EnvUsername   = "PROXMOX_VE_SSH_USERNAME"
	EnvPrivateKey = "PROXMOX_VE_SSH_PRIVATE_KEY"
	EnvKnownHosts = "PROXMOX_VE_SSH_KNOWN_HOSTS"
	EnvPort       = "PROXMOX_VE_SSH_PORT"
	EnvAgent      = "SSH_AUTH_SOCK"
)

// ConfigFromEnv reads the SSH settings from the environment and the Cluster
// spec's ssh block, which sets the user, port and known_hosts file over the
// environment's and pins node addresses: the one path from settings to a
// Config, as proxmox.ConfigFromEnv is for the API.
// PROXMOX_VE_SSH_PRIVATE_KEY holds the PEM key itself, as
// terraform-provider-proxmox reads it, or the path of a key file; without it
// the ssh-agent at SSH_AUTH_SOCK is used. Key material in another format (a
// PuTTY key, base64 of a key, a public key) is recognised as such and
// refused with the formats phoenix takes, never taken for a path. Errors
// name the variable and never show the key. The addresses of nodes the spec does not pin are added from
// the cluster with Discovered.
func ConfigFromEnv(getenv func(string) string, settings spec.SSHSettings) (Config, error) {
	cfg, err := configFromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	if settings.Username != "" {
		cfg.User = settings.Username
	}
	if settings.Port != nil {
		cfg.Port = *settings.Port
	}
	if settings.KnownHostsFile != "" {
		cfg.KnownHostsFile = expandHome(settings.KnownHostsFile, getenv)
	}
	cfg.Addresses = maps.Clone(settings.Nodes)
	return cfg, nil
}

// Discovered adds the addresses the cluster reports for its nodes
// (/cluster/status), keeping those the spec pins.
func (c *Config) Discovered(addresses map[string]string) {
	if c.Addresses == nil {
		c.Addresses = map[string]string{}
	}
	for name, addr := range addresses {
		if _, pinned := c.Addresses[name]; !pinned {
			c.Addresses[name] = addr
		}
	}
}

func configFromEnv(getenv func(string) string) (Config, error) {
	cfg := Config{User: getenv(EnvUsername), Port: 22}
	if cfg.User == "" {
		cfg.User = "root"
	}
	if p := getenv(EnvPort); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return Config{}, fmt.Errorf("%s=%q: want a port number 1..65535", EnvPort, p)
		}
		cfg.Port = port
	}
	cfg.KnownHostsFile = getenv(EnvKnownHosts)
	if cfg.KnownHostsFile == "" {
		home := getenv("HOME")
		if home == "" {
			return Config{}, fmt.Errorf("%s is not set and neither is HOME: set it to the known_hosts file that holds the nodes' host keys", EnvKnownHosts)
		}
		cfg.KnownHostsFile = filepath.Join(home, ".ssh", "known_hosts")
	} else {
		cfg.KnownHostsFile = expandHome(cfg.KnownHostsFile, getenv)
	}

	switch v := getenv(EnvPrivateKey); {
	case strings.Contains(v, "-----BEGIN"):
		// A PEM pasted into a one-line value (.env files, CI secrets) often
		// carries its newlines as literal \n.
		if !strings.Contains(v, "\n") {
			v = strings.ReplaceAll(v, `\n`, "\n")
		}
		cfg.PrivateKey = []byte(v)
		if err := checkKey(cfg.PrivateKey); err != nil {
			return Config{}, fmt.Errorf("%s holds a PEM block that %w", EnvPrivateKey, err)
		}
	case v != "":
		key, err := readKeyFile(v, getenv)
		if err != nil {
			return Config{}, err
		}
		cfg.PrivateKey = key
	default:
		cfg.Agent = getenv(EnvAgent)
		if cfg.Agent == "" {
			return Config{}, fmt.Errorf("no SSH key: set %s to the PEM private key (or the path of a key file), or run an ssh-agent (%s)", EnvPrivateKey, EnvAgent)
		}
	}
	return cfg, nil
}

// checkKey parses a private key; its error, like every error here, says what
// is wrong without quoting the key.
func checkKey(pem []byte) error {
	_, err := gossh.ParsePrivateKey(pem)
	var missing *gossh.PassphraseMissingError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &missing):
		return errors.New("is encrypted with a passphrase: load it into an ssh-agent and leave " + EnvPrivateKey + " unset")
	}
	return fmt.Errorf("is not a private key phoenix can read (%v)", err)
}

func expandHome(p string, getenv func(string) string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home := getenv("HOME"); home != "" {
			return filepath.Join(home, rest)
		}
	}
	return p
}
