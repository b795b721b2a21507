package git

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"
)

// Verifier holds the keys a head commit must be signed with: ssh keys
// (signatures as git makes them with gpg.format=ssh) and an armored OpenPGP
// key ring. A commit signed with neither kind's keys is refused.
type Verifier struct {
	ssh []ssh.PublicKey
	gpg string
}

// NewVerifier reads the ssh public keys (one a line, authorized_keys or
// allowed_signers style) and the armored OpenPGP key ring; either path may
// be empty, not both.
func NewVerifier(sshKeysFile, gpgKeyRingFile string) (*Verifier, error) {
	if sshKeysFile == "" && gpgKeyRingFile == "" {
		return nil, errors.New("git: no keys to verify signatures with")
	}
	v := &Verifier{}
	if sshKeysFile != "" {
		b, err := os.ReadFile(sshKeysFile)
		if err != nil {
			return nil, fmt.Errorf("git: --git-verify-ssh: %w", err)
		}
		if v.ssh, err = parseSSHKeys(b, sshKeysFile); err != nil {
			return nil, err
		}
	}
	if gpgKeyRingFile != "" {
		b, err := os.ReadFile(gpgKeyRingFile)
		if err != nil {
			return nil, fmt.Errorf("git: --git-verify-gpg: %w", err)
		}
		if !bytes.Contains(b, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
			return nil, fmt.Errorf("git: --git-verify-gpg %s: no armored public key block (export it with gpg --armor --export)", gpgKeyRingFile)
		}
		v.gpg = string(b)
	}
	return v, nil
}

// parseSSHKeys reads keys one a line: "[options] type base64 [comment]"
// (authorized_keys) or "principals [options] type base64 [comment]"
// (allowed_signers); # starts a comment line.
func parseSSHKeys(b []byte, name string) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			// allowed_signers: the principals come first.
			if _, rest, ok := strings.Cut(line, " "); ok {
				key, _, _, _, err = ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest)))
			}
		}
		if err != nil {
			return nil, fmt.Errorf("git: --git-verify-ssh %s:%d: not a public key line: %w", name, i+1, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("git: --git-verify-ssh %s: no public keys", name)
	}
	return keys, nil
}

// Verify checks the commit's signature against the keys.
func (v *Verifier) Verify(c *object.Commit) error {
	sig := strings.TrimSpace(c.PGPSignature)
	if sig == "" {
		return errors.New("the commit is not signed")
	}
	switch {
	case strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----"):
		if len(v.ssh) == 0 {
			return errors.New("signed with ssh, and no --git-verify-ssh keys were given")
		}
		payload, err := unsignedPayload(c)
		if err != nil {
			return err
		}
		return verifySSHSig(sig, payload, "git", v.ssh)
	case strings.HasPrefix(sig, "-----BEGIN PGP SIGNATURE-----"):
		if v.gpg == "" {
			return errors.New("signed with gpg, and no --git-verify-gpg key ring was given")
		}
		if _, err := c.Verify(v.gpg); err != nil {
			return fmt.Errorf("bad gpg signature: %w", err)
		}
		return nil
	}
	return errors.New("signed in a format that is neither ssh nor gpg")
}

// unsignedPayload is the commit as it was signed: encoded without its
// gpgsig header.
func unsignedPayload(c *object.Commit) ([]byte, error) {
	obj := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(obj); err != nil {
		return nil, err
	}
	r, err := obj.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// sshsigMagic opens an SSH signature blob and its signed data (OpenSSH's
// PROTOCOL.sshsig).
const sshsigMagic = "SSHSIG"

// sshsigBlob is the signature blob after the magic.
type sshsigBlob struct {
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  string
	HashAlg   string
	Signature []byte
}

// verifySSHSig checks an armored SSH signature of message in namespace,
// made by one of keys.
func verifySSHSig(armored string, message []byte, namespace string, keys []ssh.PublicKey) error {
	raw, err := dearmorSSHSig(armored)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(raw, []byte(sshsigMagic)) {
		return errors.New("bad ssh signature: no SSHSIG magic")
	}
	var blob sshsigBlob
	if err := ssh.Unmarshal(raw[len(sshsigMagic):], &blob); err != nil {
		return fmt.Errorf("bad ssh signature: %w", err)
	}
	if blob.Version != 1 {
		return fmt.Errorf("bad ssh signature: version %d, want 1", blob.Version)
	}
	if blob.Namespace != namespace {
		return fmt.Errorf("bad ssh signature: namespace %q, want %q", blob.Namespace, namespace)
	}
	var h hash.Hash
	switch blob.HashAlg {
	case "sha512":
		h = sha512.New()
	case "sha256":
		h = sha256.New()
	default:
		return fmt.Errorf("bad ssh signature: hash algorithm %q", blob.HashAlg)
	}
	pub, err := ssh.ParsePublicKey(blob.PublicKey)
	if err != nil {
		return fmt.Errorf("bad ssh signature: its public key: %w", err)
	}
	known := false
	for _, k := range keys {
		if bytes.Equal(k.Marshal(), pub.Marshal()) {
			known = true
			break
		}
	}
	if !known {
		return fmt.Errorf("signed with an ssh key that is not among the trusted ones (%s)", ssh.FingerprintSHA256(pub))
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(blob.Signature, &sig); err != nil {
		return fmt.Errorf("bad ssh signature: %w", err)
	}
	if sig.Format == ssh.KeyAlgoRSA {
		return errors.New("bad ssh signature: RSA with SHA-1 (ssh-rsa) is not accepted")
	}
	h.Write(message)
	signed := append([]byte(sshsigMagic), ssh.Marshal(struct {
		Namespace string
		Reserved  string
		HashAlg   string
		Hash      []byte
	}{blob.Namespace, blob.Reserved, blob.HashAlg, h.Sum(nil)})...)
	if err := pub.Verify(signed, &sig); err != nil {
		return fmt.Errorf("bad ssh signature (%s): %w", ssh.FingerprintSHA256(pub), err)
	}
	return nil
}

// dearmorSSHSig decodes the base64 between the armor lines.
func dearmorSSHSig(armored string) ([]byte, error) {
	const begin, end = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----"
	s := strings.TrimSpace(armored)
	if !strings.HasPrefix(s, begin) || !strings.HasSuffix(s, end) {
		return nil, errors.New("bad ssh signature: armor lines missing")
	}
	body := strings.Join(strings.Fields(s[len(begin):len(s)-len(end)]), "")
	raw, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("bad ssh signature: %w", err)
	}
	return raw, nil
}
