package ssh

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/phoenixhv/phoenix/providers/redact"
)

// EnvPassword is terraform-provider-proxmox's SSH password. phoenix does not
// log in with a password, but an environment made for that provider may
// hold one, and phoenix keeps it out of what it writes like any credential.
const EnvPassword = "PROXMOX_VE_SSH_PASSWORD"

// accepted is what every refusal of PROXMOX_VE_SSH_PRIVATE_KEY ends with.
const accepted = "give an OpenSSH or PEM private key, or the path of one"

// readKeyFile reads the key PROXMOX_VE_SSH_PRIVATE_KEY names when it holds
// no PEM block: a file, or else key material in a format phoenix cannot use,
// which is refused as such. Its errors show a path only where the value is
// one, and never what a key file holds.
func readKeyFile(v string, getenv func(string) string) ([]byte, error) {
	path := expandHome(v, getenv)
	key, err := os.ReadFile(path)
	if err != nil {
		if format, ok := keyMaterialFormat(v); ok {
			return nil, fmt.Errorf("%s holds key material in a format phoenix cannot use (%s): %s", EnvPrivateKey, format, accepted)
		}
		if !looksLikePath(v) {
			return nil, fmt.Errorf("%s is neither a private key nor the path of a file phoenix can read: %s", EnvPrivateKey, accepted)
		}
		var pe *fs.PathError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("%s: no key file at %s: %s", EnvPrivateKey, path, accepted)
		case errors.As(err, &pe):
			return nil, fmt.Errorf("%s: the key file %s: %w", EnvPrivateKey, path, pe.Err)
		}
		return nil, fmt.Errorf("%s: the key file %s: %w", EnvPrivateKey, path, err)
	}
	if err := checkKey(key); err != nil {
		if format, ok := fileFormat(key); ok {
			return nil, fmt.Errorf("%s: the key file %s holds %s: %s", EnvPrivateKey, path, format, accepted)
		}
		return nil, fmt.Errorf("%s: the key file %s %w", EnvPrivateKey, path, err)
	}
	return key, nil
}

// fileFormat names the format of a key file phoenix cannot read, when it is
// one of those keyMaterialFormat knows (any file has lines: that says
// nothing).
func fileFormat(key []byte) (string, bool) {
	s := string(key)
	if strings.Contains(s, "-----BEGIN") {
		return "", false
	}
	format, ok := keyMaterialFormat(s)
	return format, ok && format != formatLines
}

const formatLines = "several lines of text"

// publicKeyPrefixes start the public key line of each key type OpenSSH has.
var publicKeyPrefixes = []string{"ssh-rsa ", "ssh-dss ", "ssh-ed25519 ", "ecdsa-sha2-", "sk-ssh-ed25519", "sk-ecdsa-sha2-"}

// keyMaterialFormat says whether v is key material rather than a path, and
// in which format: what users paste into PROXMOX_VE_SSH_PRIVATE_KEY besides
// a PEM block (a PuTTY key, a base64-wrapped key, a public key). A value of
// several lines is never a path.
func keyMaterialFormat(v string) (string, bool) {
	t := strings.TrimSpace(v)
	switch {
	case strings.HasPrefix(t, "PuTTY-User-Key-File"):
		return "a PuTTY private key: convert it with puttygen KEY -O private-openssh", true
	case strings.HasPrefix(t, "---- BEGIN SSH2"):
		return "an SSH2 (RFC 4716) key", true
	}
	for _, p := range publicKeyPrefixes {
		if strings.HasPrefix(t, p) {
			return "an SSH public key, not the private key", true
		}
	}
	compact := strings.Join(strings.Fields(strings.ReplaceAll(t, `\n`, "\n")), "")
	if decoded, ok := decodeBase64(compact); ok {
		switch {
		case bytes.HasPrefix(decoded, []byte("-----BEGIN")):
			return "base64 of a PEM key: decode it first", true
		case bytes.HasPrefix(decoded, []byte("openssh-key-v1\x00")):
			return "an OpenSSH key without its BEGIN and END lines", true
		case len(decoded) > 1 && decoded[0] == 0x30 && decoded[1] >= 0x80:
			return "a DER key without its PEM armour", true
		}
		return "base64 text that is no file name", true
	}
	if strings.ContainsAny(v, "\r\n") || strings.Contains(v, `\n`) {
		return formatLines, true
	}
	return "", false
}

// decodeBase64 decodes s when it is a run of base64 long enough to be a key,
// in any of the alphabets and paddings. A run that does not decode is still
// base64 when it has no / in it: no path of 40 characters has neither a /
// nor a dot.
func decodeBase64(s string) ([]byte, bool) {
	const minKey = 40
	if len(s) < minKey {
		return nil, false
	}
	for _, c := range []byte(s) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("+/=-_", c) >= 0) {
			return nil, false
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, !strings.Contains(s, "/")
}

// looksLikePath reports whether v, not a file phoenix could read, is still
// a path that an error may show: one line, not key material, and a / or ~ in
// it. A bare word may be a password pasted into the wrong variable.
func looksLikePath(v string) bool {
	if _, material := keyMaterialFormat(v); material {
		return false
	}
	return strings.Contains(v, "/") || strings.HasPrefix(v, "~")
}

// maxKeyFile bounds what Secrets reads of a key file: every command reads
// it, and a path such as /dev/zero must not keep one from starting.
const maxKeyFile = 1 << 20

// readKeySized reads a regular file of at most maxKeyFile bytes.
func readKeySized(path string) ([]byte, error) {
	info, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, err
	case !info.Mode().IsRegular() || info.Size() > maxKeyFile:
		return nil, fmt.Errorf("%s is not a key file", path)
	}
	return os.ReadFile(path)
}

// Secrets returns the credential values among the variables ConfigFromEnv
// reads, for phoenix to keep out of everything it writes: the key material
// PROXMOX_VE_SSH_PRIVATE_KEY holds (or, when it names a key file, what the
// file holds, not its path), and terraform-provider-proxmox's SSH password.
func Secrets(getenv func(string) string) []redact.Secret {
	var out []redact.Secret
	material := func(v string) {
		out = append(out, redact.Secret{Var: EnvPrivateKey, Value: v, Lines: true})
	}
	switch v := getenv(EnvPrivateKey); {
	case v == "":
	case strings.Contains(v, "-----BEGIN"):
		material(v)
	default:
		if key, err := readKeySized(expandHome(v, getenv)); err == nil {
			if len(key) > 0 {
				material(string(key))
			}
		} else if !looksLikePath(v) {
			material(v)
		}
	}
	if p := getenv(EnvPassword); p != "" {
		out = append(out, redact.Secret{Var: EnvPassword, Value: p})
	}
	return out
}
