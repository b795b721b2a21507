package standin

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// DefaultOllamaVersion is what the ollama stand-in reports when no version
// is asked for.
const DefaultOllamaVersion = "0.12.6"

var ollamaVersion = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

func (s *Sources) buildOllama(ctx context.Context) error {
	bin := filepath.Join(s.work, "ollama-standin")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "github.com/phoenixhv/phoenix/hack/standin/ollama")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the ollama stand-in: %w: %s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	s.ollamaBinary = b
	s.files["/ollama/install.sh"] = []byte(strings.ReplaceAll(ollamaInstaller, "@DOWNLOAD@", s.base+"/ollama/download"))
	return nil
}

// ollamaArchive is the archive ollama's installer unpacks into /usr/local,
// compressed with zstd: bin/ollama (the stand-in) and the version it reports.
func (s *Sources) ollamaArchive(version string) ([]byte, bool) {
	if version == "" {
		version = DefaultOllamaVersion
	}
	if !ollamaVersion.MatchString(version) {
		return nil, false
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	now := time.Now()
	for _, f := range []struct {
		name string
		data []byte
		mode int64
	}{
		{"bin/ollama", s.ollamaBinary, 0o755},
		{"lib/ollama/phoenix-standin-version", []byte(version + "\n"), 0o644},
	} {
		dir := filepath.Dir(f.name)
		if err := tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now}); err != nil {
			return nil, false
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: now}); err != nil {
			return nil, false
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, false
		}
	}
	if err := tw.Close(); err != nil {
		return nil, false
	}
	return zstdStored(b.Bytes()), true
}

// zstdStored wraps data in a Zstandard frame of raw (stored) blocks
// (RFC 8878): what zstd -d reads, without compressing.
func zstdStored(data []byte) []byte {
	var out bytes.Buffer
	_ = binary.Write(&out, binary.LittleEndian, uint32(0xFD2FB528))
	// Frame header: single segment, 8-byte content size; no checksum.
	out.WriteByte(0b11_1_0_0_0_00)
	_ = binary.Write(&out, binary.LittleEndian, uint64(len(data)))
	const maxBlock = 128 << 10
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), maxBlock)
		last := 0
		if n == len(data) {
			last = 1
		}
		// Block header: last flag, type 0 (raw), size, 3 bytes.
		h := uint32(last) | uint32(n)<<3
		out.Write([]byte{byte(h), byte(h >> 8), byte(h >> 16)})
		out.Write(data[:n])
		data = data[n:]
	}
	return out.Bytes()
}

// ollamaInstaller stands in for ollama's install script where it matters to
// phoenix: it needs zstd; it installs the ollama binary into /usr/local, the
// ollama user and its service; and when it finds an NVIDIA GPU on the PCI bus
// and no nvidia-smi, it goes on to install NVIDIA's driver packages (here it
// records that it would, and fails).
const ollamaInstaller = `#!/bin/sh
# ollama's install script: a stand-in made by phoenix's tests. It is not
# ollama's script, and installs a stand-in ollama.
set -eu
status() { echo ">>> $*" >&2; }
error() {
	echo "ERROR $*"
	exit 1
}
warning() { echo "WARNING: $*"; }
available() { command -v "$1" >/dev/null; }
status "phoenix stand-in for ollama's install script (not ollama's)"
[ "$(uname -s)" = Linux ] || error 'This script is intended to run on Linux only.'
[ "$(id -u)" -eq 0 ] || error "This stand-in runs as root only."
for tool in curl awk grep sed tee xargs tar; do
	available "$tool" || error "The following tools are required but missing: $tool"
done
if ! available zstd; then
	error "This version requires zstd for extraction. Please install zstd and try again:
  - Debian/Ubuntu: sudo apt-get install zstd
  - RHEL/CentOS/Fedora: sudo dnf install zstd
  - Arch: sudo pacman -S zstd"
fi
status "Installing ollama to /usr/local"
install -o0 -g0 -m755 -d /usr/local/bin /usr/local/lib/ollama
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
curl --fail --show-error --location --silent -o "$tmp" "@DOWNLOAD@/ollama-linux-amd64.tar.zst${OLLAMA_VERSION:+?version=$OLLAMA_VERSION}"
zstd -d -c "$tmp" | tar -xf - -C /usr/local
if ! id ollama >/dev/null 2>&1; then
	status "Creating ollama user..."
	useradd -r -s /bin/false -U -m -d /usr/share/ollama ollama
fi
for group in render video; do
	if getent group "$group" >/dev/null 2>&1; then
		usermod -a -G "$group" ollama
	fi
done
status "Creating ollama systemd service..."
cat >/etc/systemd/system/ollama.service <<'UNIT'
[Unit]
Description=Ollama Service (phoenix stand-in)
After=network-online.target

[Service]
ExecStart=/usr/local/bin/ollama serve
User=ollama
Group=ollama
Restart=always
RestartSec=3

[Install]
WantedBy=default.target
UNIT
systemctl daemon-reload
systemctl enable ollama
systemctl restart ollama
status "The Ollama API is now available at 127.0.0.1:11434."
if ! available lspci && ! available lshw; then
	warning "Unable to detect NVIDIA/AMD GPU. Install lspci or lshw to automatically detect and install GPU dependencies."
	exit 0
fi
nvidia_on_pci() {
	{ available lspci && lspci -d '10de:' | grep -q 'NVIDIA'; } ||
		{ available lshw && lshw -c display -numeric -disable network | grep -q 'vendor: .* \[10DE\]'; }
}
if ! nvidia_on_pci; then
	warning "No NVIDIA/AMD GPU detected. Ollama will run in CPU-only mode."
	exit 0
fi
if available nvidia-smi; then
	status "NVIDIA GPU installed."
	exit 0
fi
mkdir -p /var/lib/phoenix-standin
echo "cuda-drivers, kernel headers, DKMS" >/var/lib/phoenix-standin/ollama-installed-cuda-drivers
status "Installing NVIDIA repository..."
error "phoenix stand-in: here ollama's real install script installs NVIDIA's cuda-drivers, kernel headers and a DKMS module build in this container"
`
