package standin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

// TestSourcesServeWhatTheScriptsFetch starts the sources and checks what
// real tools make of what they serve: apt's gpgv verifies the repositories'
// signatures with the key the scripts install, the indexes name the packages
// with their digests, zstd unpacks ollama's archive, and every URL Params
// gives answers over TLS with the sources' CA.
func TestSourcesServeWhatTheScriptsFetch(t *testing.T) {
	for _, tool := range []string{"gpg", "gpgv", "dpkg-deb", "zstd", "go"} {
		testtool.Require(t, tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{DriverVersion: "580.76.05", PublicHost: "127.0.0.1", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CA()) {
		t.Fatal("CA() is not PEM")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	// PublicHost is 127.0.0.1 here: the URLs are the server's own.
	get := func(url string) []byte {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", url, resp.Status)
		}
		return b
	}
	dir := t.TempDir()
	p := s.Params()
	// The container toolkit's repository: the key from gpgkey verifies
	// InRelease, whose Packages lists the real nvidia-ctk.
	nct := p["nvidia-container-toolkit"]["repository"]
	key := filepath.Join(dir, "nct.gpg")
	cmd := exec.Command("gpg", "--batch", "--yes", "--dearmor", "-o", key)
	cmd.Stdin = bytes.NewReader(get(nct + "/gpgkey"))
	cmd.Env = append(os.Environ(), "GNUPGHOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gpg --dearmor: %v %s", err, out)
	}
	for _, repo := range []string{nct + "/stable/deb/amd64", p["cuda-toolkit"]["repository"] + "/debian12/x86_64", p["cuda-toolkit"]["repository"] + "/ubuntu2404/x86_64"} {
		in := filepath.Join(dir, "InRelease")
		if err := os.WriteFile(in, get(repo+"/InRelease"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("gpgv", "--keyring", key, in).CombinedOutput(); err != nil {
			t.Errorf("gpgv %s/InRelease: %v %s", repo, err, out)
		}
		packages := get(repo + "/Packages")
		sum := sha256.Sum256(packages)
		if !strings.Contains(string(get(repo+"/Release")), hex.EncodeToString(sum[:])) {
			t.Errorf("%s/Release does not hold Packages' digest", repo)
		}
		for _, stanza := range strings.Split(strings.TrimSpace(string(packages)), "\n\n") {
			var file, digest string
			for _, l := range strings.Split(stanza, "\n") {
				if v, ok := strings.CutPrefix(l, "Filename: ./"); ok {
					file = v
				}
				if v, ok := strings.CutPrefix(l, "SHA256: "); ok {
					digest = v
				}
			}
			d := sha256.Sum256(get(repo + "/" + file))
			if hex.EncodeToString(d[:]) != digest {
				t.Errorf("%s/%s: digest differs from Packages", repo, file)
			}
		}
	}
	// The real nvidia-ctk, in its package.
	deb := filepath.Join(dir, "base.deb")
	if err := os.WriteFile(deb, get(nct+"/stable/deb/amd64/nvidia-container-toolkit-base_"+CTKVersion+"-1_amd64.deb"), 0o644); err != nil {
		t.Fatal(err)
	}
	x := filepath.Join(dir, "x")
	if out, err := exec.Command("dpkg-deb", "-x", deb, x).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v %s", err, out)
	}
	if out, err := exec.Command(filepath.Join(x, "usr/bin/nvidia-ctk"), "--version").CombinedOutput(); err != nil || !strings.Contains(string(out), CTKVersion) {
		t.Errorf("nvidia-ctk --version: %v %s", err, out)
	}
	// ollama's archive unpacks with the real zstd.
	if !strings.Contains(string(get(p["ollama"]["installer"])), "zstd") {
		t.Error("the installer stand-in does not need zstd")
	}
	arch := get(strings.TrimSuffix(p["ollama"]["installer"], "install.sh") + "download/ollama-linux-amd64.tar.zst?version=0.12.3")
	zstd := exec.Command("zstd", "-d", "-c")
	zstd.Stdin = bytes.NewReader(arch)
	var tarball bytes.Buffer
	zstd.Stdout = &tarball
	if err := zstd.Run(); err != nil {
		t.Fatalf("zstd -d: %v", err)
	}
	untar := exec.Command("tar", "-xf", "-", "-C", dir)
	untar.Stdin = &tarball
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "lib/ollama/phoenix-standin-version")); strings.TrimSpace(string(b)) != "0.12.3" {
		t.Errorf("version file %q", b)
	}
	if out, _ := exec.Command(filepath.Join(dir, "bin/ollama"), "--version").CombinedOutput(); !strings.Contains(string(out), "version is 0.12.3") {
		t.Errorf("ollama --version: %s", out)
	}
	// The runfile of any version; the index lists vllm's wheels.
	run := get(strings.ReplaceAll(s.RunfileURL(), "{version}", "580.76.05"))
	if !strings.Contains(string(run), "stand-in") || !strings.Contains(string(run), "--no-kernel-module") {
		t.Error("the runfile stand-in does not say what it is")
	}
	if !strings.Contains(string(get(p["vllm"]["index"]+"/vllm/")), "vllm-0.11.0-py3-none-any.whl#sha256=") {
		t.Error("the index does not list vllm 0.11.0")
	}
}
