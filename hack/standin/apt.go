package standin

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// signer is an OpenPGP key made with gpg for the stand-in repositories, as
// apt checks them.
type signer struct {
	home     string // GNUPGHOME, short: gpg-agent's socket lives there
	armored  []byte // the public key, ASCII-armoured (docker.asc, gpgkey)
	binary   []byte // the public key, binary (a keyring file in /usr/share/keyrings)
	identity string
}

func newSigner(ctx context.Context) (*signer, error) {
	home, err := os.MkdirTemp("", "standin-gpg")
	if err != nil {
		return nil, err
	}
	s := &signer{home: home, identity: "phoenix stand-in archive (not a vendor's key) <standin@phoenix.invalid>"}
	if _, err := s.gpg(ctx, nil, "--quick-generate-key", s.identity, "ed25519", "sign", "never"); err != nil {
		s.close()
		return nil, err
	}
	if s.armored, err = s.gpg(ctx, nil, "--armor", "--export", s.identity); err != nil {
		s.close()
		return nil, err
	}
	if s.binary, err = s.gpg(ctx, nil, "--export", s.identity); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *signer) gpg(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "gpg", append([]string{"--batch", "--yes", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+s.home)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gpg %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// sign returns Release's clearsigned form (InRelease) and its detached
// signature (Release.gpg).
func (s *signer) sign(ctx context.Context, release []byte) (inRelease, detached []byte, err error) {
	if inRelease, err = s.gpg(ctx, release, "--local-user", s.identity, "--clearsign"); err != nil {
		return nil, nil, err
	}
	if detached, err = s.gpg(ctx, release, "--local-user", s.identity, "--armor", "--detach-sign"); err != nil {
		return nil, nil, err
	}
	return inRelease, detached, nil
}

func (s *signer) close() {
	cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
	cmd.Env = append(os.Environ(), "GNUPGHOME="+s.home)
	_ = cmd.Run()
	_ = os.RemoveAll(s.home)
}

// pkg is a Debian package to build with dpkg-deb.
type pkg struct {
	name, version, arch string
	depends             string
	description         string
	files               map[string]file // path in the package -> content
	postinst, postrm    string
}

type file struct {
	data []byte
	mode os.FileMode
}

// deb is a built package: its file and its control stanza.
type deb struct {
	name    string // file name
	data    []byte
	control string
}

// build builds p with dpkg-deb under dir.
func (p pkg) build(ctx context.Context, dir string) (deb, error) {
	root := filepath.Join(dir, p.name+"_"+p.version)
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		return deb{}, err
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: phoenix tests <standin@phoenix.invalid>\n", p.name, p.version, p.arch)
	if p.depends != "" {
		control += "Depends: " + p.depends + "\n"
	}
	control += "Section: misc\nPriority: optional\nDescription: " + p.description + "\n A stand-in made by phoenix's tests: not the vendor's package.\n"
	if err := os.WriteFile(filepath.Join(root, "DEBIAN/control"), []byte(control), 0o644); err != nil {
		return deb{}, err
	}
	for name, script := range map[string]string{"postinst": p.postinst, "postrm": p.postrm} {
		if script == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(root, "DEBIAN", name), []byte("#!/bin/sh\nset -e\n"+script), 0o755); err != nil {
			return deb{}, err
		}
	}
	for path, f := range p.files {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return deb{}, err
		}
		if err := os.WriteFile(full, f.data, f.mode); err != nil {
			return deb{}, err
		}
		// WriteFile keeps the mode of an existing file and applies umask.
		if err := os.Chmod(full, f.mode); err != nil {
			return deb{}, err
		}
	}
	out := filepath.Join(dir, fmt.Sprintf("%s_%s_%s.deb", p.name, p.version, p.arch))
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return deb{}, fmt.Errorf("dpkg-deb --build %s: %w: %s", p.name, err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return deb{}, err
	}
	return deb{name: filepath.Base(out), data: data, control: control}, nil
}

// flatRepo adds an apt repository of the flat form ("deb URL /") at prefix:
// the packages, Packages, Release, InRelease and Release.gpg.
func (s *Sources) flatRepo(ctx context.Context, sig *signer, prefix string, debs []deb) error {
	var packages bytes.Buffer
	sort.Slice(debs, func(i, j int) bool { return debs[i].name < debs[j].name })
	for _, d := range debs {
		s.files[prefix+"/"+d.name] = d.data
		md := md5.Sum(d.data)
		sh := sha256.Sum256(d.data)
		// The stanza: the control file without its description's body,
		// then where the file is and its digests.
		fmt.Fprintf(&packages, "%sFilename: ./%s\nSize: %d\nMD5sum: %s\nSHA256: %s\n\n",
			d.control, d.name, len(d.data), hex.EncodeToString(md[:]), hex.EncodeToString(sh[:]))
	}
	index := packages.Bytes()
	sum := sha256.Sum256(index)
	md := md5.Sum(index)
	release := fmt.Sprintf("Origin: phoenix stand-in\nLabel: phoenix stand-in\nDate: %s\nArchitectures: amd64 all\n"+
		"Description: stand-in packages made by phoenix's tests, not a vendor's repository\n"+
		"MD5Sum:\n %s %d Packages\nSHA256:\n %s %d Packages\n",
		time.Now().UTC().Format(time.RFC1123), hex.EncodeToString(md[:]), len(index), hex.EncodeToString(sum[:]), len(index))
	in, detached, err := sig.sign(ctx, []byte(release))
	if err != nil {
		return err
	}
	s.files[prefix+"/Packages"] = index
	s.files[prefix+"/Release"] = []byte(release)
	s.files[prefix+"/InRelease"] = in
	s.files[prefix+"/Release.gpg"] = detached
	return nil
}
