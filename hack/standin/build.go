package standin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// The versions the stand-ins are served at.
const (
	// CTKVersion is the nvidia-container-toolkit release whose real
	// nvidia-ctk is built from its Go module.
	CTKVersion = "1.17.8"
	ctkModule  = "github.com/NVIDIA/nvidia-container-toolkit"
)

// CUDAVersions are the cuda-toolkit-X-Y stand-in packages served.
var CUDAVersions = []string{"12.8", "12.9", "13.0"}

// CUDADistros are the distributions the CUDA repository stand-in serves.
var CUDADistros = []string{"debian12", "ubuntu2204", "ubuntu2404"}

// build makes every file the server serves.
func (s *Sources) build(ctx context.Context) error {
	sig, err := newSigner(ctx)
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	defer sig.close()
	if err := s.buildCUDA(ctx, sig); err != nil {
		return fmt.Errorf("CUDA repository: %w", err)
	}
	if err := s.buildContainerToolkit(ctx, sig); err != nil {
		return fmt.Errorf("container toolkit repository: %w", err)
	}
	if err := s.buildOllama(ctx); err != nil {
		return fmt.Errorf("ollama: %w", err)
	}
	if err := s.buildPyPI(); err != nil {
		return fmt.Errorf("package index: %w", err)
	}
	return nil
}

func exe(text string) file { return file{data: []byte(text), mode: 0o755} }

func (s *Sources) buildCUDA(ctx context.Context, sig *signer) error {
	dir := filepath.Join(s.work, "cuda")
	var toolkits []deb
	for _, v := range CUDAVersions {
		dashed := strings.ReplaceAll(v, ".", "-")
		d, err := pkg{
			name: "cuda-toolkit-" + dashed, version: v + ".0-1", arch: "amd64",
			description: "CUDA Toolkit " + v + " (phoenix stand-in: nvcc that reports its release)",
			files:       map[string]file{"usr/local/cuda-" + v + "/bin/nvcc": exe(nvcc(v))},
			// NVIDIA's packages point /usr/local/cuda at the toolkit
			// installed last (update-alternatives); a link does here.
			postinst: "ln -sfn /usr/local/cuda-" + v + " /usr/local/cuda\n",
			postrm:   "if [ \"$(readlink /usr/local/cuda 2>/dev/null)\" = /usr/local/cuda-" + v + " ]; then rm -f /usr/local/cuda; fi\n",
		}.build(ctx, dir)
		if err != nil {
			return err
		}
		toolkits = append(toolkits, d)
	}
	for _, distro := range CUDADistros {
		base := s.base + "/cuda/repos/" + distro + "/x86_64/"
		keyring, err := pkg{
			name: "cuda-keyring", version: "1.1-1", arch: "all",
			description: "NVIDIA's CUDA repository keyring (phoenix stand-in: the stand-in archive's key)",
			files: map[string]file{
				"usr/share/keyrings/cuda-archive-keyring.gpg":            {data: sig.binary, mode: 0o644},
				"etc/apt/sources.list.d/cuda-" + distro + "-x86_64.list": {data: []byte("deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] " + base + " /\n"), mode: 0o644},
			},
		}.build(ctx, filepath.Join(dir, distro))
		if err != nil {
			return err
		}
		prefix := "/cuda/repos/" + distro + "/x86_64"
		if err := s.flatRepo(ctx, sig, prefix, append([]deb{keyring}, toolkits...)); err != nil {
			return err
		}
		s.files[prefix+"/cuda-keyring_1.1-1_all.deb"] = keyring.data
	}
	return nil
}

// nvcc is the stand-in nvcc of CUDA version v: it prints what NVIDIA's does
// about the release, and that it is a stand-in.
func nvcc(v string) string {
	return `#!/bin/sh
echo "nvcc: NVIDIA (R) Cuda compiler driver (phoenix stand-in: not NVIDIA's nvcc)"
echo "Cuda compilation tools, release ` + v + `, V` + v + `.0"
echo "Build cuda_` + v + `.r` + v + `/compiler.0_0"
`
}

func (s *Sources) buildContainerToolkit(ctx context.Context, sig *signer) error {
	ctk, err := s.nvidiaCTK(ctx)
	if err != nil {
		return err
	}
	dir := filepath.Join(s.work, "nct")
	version := CTKVersion + "-1"
	pkgs := []pkg{
		{name: "nvidia-container-toolkit", version: version, arch: "amd64",
			depends:     "nvidia-container-toolkit-base (= " + version + "), libnvidia-container-tools (= " + version + ")",
			description: "NVIDIA Container Toolkit (phoenix stand-in package around the real nvidia-ctk)"},
		{name: "nvidia-container-toolkit-base", version: version, arch: "amd64",
			description: "NVIDIA Container Toolkit base: the real nvidia-ctk, built from its Go module",
			files:       map[string]file{"usr/bin/nvidia-ctk": {data: ctk, mode: 0o755}},
			// As NVIDIA's package does: the default config, written by
			// nvidia-ctk itself (keys at their defaults as comments).
			postinst: "if [ ! -e /etc/nvidia-container-runtime/config.toml ]; then\n" +
				"\tmkdir -p /etc/nvidia-container-runtime\n" +
				"\tnvidia-ctk --quiet config --config-file=/etc/nvidia-container-runtime/config.toml --in-place\nfi\n"},
		{name: "libnvidia-container-tools", version: version, arch: "amd64", depends: "libnvidia-container1 (= " + version + ")",
			description: "NVIDIA container runtime library, CLI (phoenix stand-in: nvidia-container-cli info only)",
			files:       map[string]file{"usr/bin/nvidia-container-cli": exe(containerCLI)}},
		{name: "libnvidia-container1", version: version, arch: "amd64",
			description: "NVIDIA container runtime library (phoenix stand-in: empty)"},
	}
	var debs []deb
	for _, p := range pkgs {
		d, err := p.build(ctx, dir)
		if err != nil {
			return err
		}
		debs = append(debs, d)
	}
	s.files["/libnvidia-container/gpgkey"] = sig.armored
	return s.flatRepo(ctx, sig, "/libnvidia-container/stable/deb/amd64", debs)
}

// containerCLI stands in for libnvidia-container's C program: its info
// command, which reads the GPU through NVML as nvidia-smi does.
const containerCLI = `#!/bin/sh
# nvidia-container-cli: a phoenix stand-in (libnvidia-container is C); info only.
case "${1:-}" in
info)
	if ! command -v nvidia-smi >/dev/null 2>&1; then
		echo "nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: cannot open shared object file: no such file or directory" >&2
		exit 1
	fi
	if ! v=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>&1); then
		echo "nvidia-container-cli: initialization error: nvml error: $(printf '%s\n' "$v" | head -n 1)" >&2
		exit 1
	fi
	printf 'NVRM version:   %s\nCUDA version:   (phoenix stand-in)\n\nDevice Index:   0\nDevice Minor:   0\nModel:          phoenix stand-in GPU\n' "$v"
	;;
--version) echo "cli-version: ` + CTKVersion + ` (phoenix stand-in)" ;;
*)
	echo "nvidia-container-cli (phoenix stand-in): only info is modelled" >&2
	exit 1
	;;
esac
`

// nvidiaCTK is the real nvidia-ctk, built from its Go module through the
// module proxy once and kept in Dir.
func (s *Sources) nvidiaCTK(ctx context.Context) ([]byte, error) {
	cached := filepath.Join(s.opts.Dir, "nvidia-ctk-v"+CTKVersion)
	if b, err := os.ReadFile(cached); err == nil && len(b) > 0 {
		return b, nil
	}
	bin := filepath.Join(s.work, "gobin")
	cmd := exec.CommandContext(ctx, "go", "install",
		"-ldflags", "-X "+ctkModule+"/internal/info.version="+CTKVersion,
		ctkModule+"/cmd/nvidia-ctk@v"+CTKVersion)
	// Outside phoenix's module, so that the toolkit's own go.mod decides.
	cmd.Dir = s.work
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building nvidia-ctk %s from its Go module: %w: %s", CTKVersion, err, out)
	}
	b, err := os.ReadFile(filepath.Join(bin, "nvidia-ctk"))
	if err != nil {
		return nil, err
	}
	tmp := cached + ".part"
	if err := os.WriteFile(tmp, b, 0o755); err == nil {
		_ = os.Rename(tmp, cached)
	}
	return b, nil
}

var runfilePath = regexp.MustCompile(`^/nvidia/XFree86/Linux-x86_64/([0-9]+\.[0-9]+(?:\.[0-9]+)?)/NVIDIA-Linux-x86_64-([0-9]+\.[0-9]+(?:\.[0-9]+)?)\.run$`)

// generated serves what is made on request: the runfile of a driver
// version, and ollama's archive at a version.
func (s *Sources) generated(path, query string) ([]byte, bool) {
	if m := runfilePath.FindStringSubmatch(path); m != nil && m[1] == m[2] {
		return []byte(runfile(m[1], s.opts.DriverVersion)), true
	}
	if path == "/ollama/download/ollama-linux-amd64.tar.zst" {
		return s.ollamaArchive(query)
	}
	return nil, false
}
