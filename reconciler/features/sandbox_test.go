package features

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/spec"
)

// sandbox runs a step's script in a real shell with fake programs first on
// PATH and PHOENIX_TEST_ROOT at a directory of its own, so that what the
// script writes under / lands there. Every program that would change the
// machine is a fake that fails loudly unless a test gives it a body: a test
// never installs anything on the machine running it.
type sandbox struct {
	t    *testing.T
	root string // PHOENIX_TEST_ROOT
	bin  string // the fakes
	tmp  string // TMPDIR
	log  string // one line per fake's call: NAME ARGS...
}

// guarded are the programs the scripts run that change or probe the
// machine: always fakes.
var guarded = []string{"apt-get", "apt-cache", "dpkg", "dpkg-query", "dpkg-deb", "systemctl", "docker", "nvidia-smi",
	"nvidia-ctk", "nvidia-container-cli", "curl", "gpg", "runuser", "locale-gen", "locale", "ollama", "python3",
	"lspci", "lshw", "zstd", "useradd", "sleep", "nvidia-uninstall", "nvidia-installer", "id", "tar"}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	d := t.TempDir()
	s := &sandbox{t: t, root: filepath.Join(d, "root"), bin: filepath.Join(d, "bin"), tmp: filepath.Join(d, "tmp"), log: filepath.Join(d, "calls.log")}
	for _, p := range []string{s.root, s.bin, s.tmp, filepath.Join(s.root, "etc/apt/sources.list.d"), filepath.Join(s.root, "etc/apt/keyrings"),
		filepath.Join(s.root, "usr/share/keyrings"), filepath.Join(s.root, "etc/ssl/certs")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range guarded {
		s.fake(name, `echo "fake `+name+` has no behaviour in this test" >&2; exit 99`)
	}
	s.osRelease("debian", "12", "bookworm")
	return s
}

// fake makes a program that logs its call, then runs body (sh).
func (s *sandbox) fake(name, body string) {
	s.t.Helper()
	text := "#!/bin/sh\nprintf '%s\\n' \"" + name + " $*\" >>'" + s.log + "'\n" + body + "\n"
	if err := os.WriteFile(filepath.Join(s.bin, name), []byte(text), 0o755); err != nil {
		s.t.Fatal(err)
	}
}

// file writes a file under the sandbox's root.
func (s *sandbox) file(path, content string) {
	s.t.Helper()
	p := filepath.Join(s.root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sandbox) read(path string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(s.root, path))
	return string(b), err == nil
}

func (s *sandbox) osRelease(id, version, codename string) {
	s.file("etc/os-release", "ID="+id+"\nVERSION_ID=\""+version+"\"\nVERSION_CODENAME="+codename+"\n")
}

// calls are the fakes' calls so far, one per line.
func (s *sandbox) calls() []string {
	b, _ := os.ReadFile(s.log)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// result of one run of a script.
type result struct {
	code           int
	stdout, stderr string
}

// lastLine is the last line the script printed on stderr: what phoenix
// shows when the step fails.
func (r result) lastLine() string {
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	return lines[len(lines)-1]
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// run runs a step's phase as phoenix does: shell -c BODY NAME PHASE, with
// the step's environment.
func (s *sandbox) run(shell string, st Step, phase string, env ...string) result {
	s.t.Helper()
	cmd := exec.Command(shell, "-c", st.BodyFor(phase), st.Name, phase)
	cmd.Env = []string{"PATH=" + s.bin + ":/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + s.root, "TMPDIR=" + s.tmp,
		"PHOENIX_TEST_ROOT=" + s.root, "LC_ALL=C"}
	for k, v := range st.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if e, ok := err.(*exec.ExitError); ok {
		r.code = e.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// leftovers are the files left in TMPDIR.
func (s *sandbox) leftovers() []string {
	var out []string
	_ = filepath.WalkDir(s.tmp, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != s.tmp {
			out = append(out, strings.TrimPrefix(p, s.tmp+"/"))
		}
		return nil
	})
	return out
}

// builtinStep is a built-in step as phoenix computes it for a guest of the
// examples, with the given featureConfig.
func builtinStep(t *testing.T, name string, params spec.Params) Step {
	t.Helper()
	res := examples(t)
	guest := "vllm-qwen"
	if strings.HasPrefix(name, "nvidia-container-toolkit/") || strings.HasPrefix(name, "docker/") {
		guest = "docker-gpu"
	}
	g, _ := res.Guest(guest)
	feature, _, _ := strings.Cut(name, "/")
	p := spec.Params{}
	for k, v := range g.Params[feature] {
		p[k] = v
	}
	for k, v := range params {
		p[k] = v
	}
	steps, err := Steps(res.Catalog, feature, Context{Guest: g, Params: p, DriverVersion: "580.76.05", Devices: []string{"/dev/nvidia0"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %s", name)
	return Step{}
}

// shells are the real shells the scripts run in: dash (Debian's and Proxmox
// VE's /bin/sh) and bash.
func shells(t *testing.T) []string {
	t.Helper()
	return []string{testtool.Require(t, "dash"), testtool.Require(t, "bash")}
}

// eachShell runs f in a subtest per shell.
func eachShell(t *testing.T, f func(t *testing.T, shell string)) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) { f(t, sh) })
	}
}

// featureSteps are the built-in steps that run in the guest, by name.
func featureSteps(t *testing.T) []Step {
	t.Helper()
	var out []Step
	for _, name := range Scripts() {
		if strings.HasPrefix(name, "phoenix/") || name == "nvidia-driver/download" {
			continue
		}
		out = append(out, builtinStep(t, name, nil))
	}
	return out
}

func containsLine(lines []string, f func(string) bool) int {
	return slices.IndexFunc(lines, f)
}

// model gives the fakes a small model of a Debian container: dpkg's
// database, apt installing into it, sources lists apt reads, systemd units,
// and curl serving the files a test puts under serve/<host>/<path>.
func (s *sandbox) model() {
	state := `st="$PHOENIX_TEST_ROOT/var/lib/fake"; mkdir -p "$st"; touch "$st/installed" "$st/enabled"`
	s.fake("dpkg-query", state+`
for p in "$@"; do last=$p; done
grep -qx "$last" "$st/installed" && printf 'install ok installed' && exit 0
echo "dpkg-query: no packages found matching $last" >&2; exit 1`)
	s.fake("apt-get", state+`
cmd=; pkgs=
while [ $# -gt 0 ]; do
	case "$1" in
	-o) shift ;;
	-*) ;;
	update|install|purge|autoremove) cmd=$1 ;;
	*) pkgs="$pkgs $1" ;;
	esac
	shift
done
case "$cmd" in
update) echo "Reading package lists..." ;;
install) for p in $pkgs; do grep -qx "$p" "$st/installed" || echo "$p" >>"$st/installed"; done ;;
purge) for p in $pkgs; do grep -vx "$p" "$st/installed" >"$st/x" || true; mv "$st/x" "$st/installed"; done ;;
esac`)
	s.fake("apt-cache", `
cat "$PHOENIX_TEST_ROOT"/etc/apt/sources.list.d/*.list 2>/dev/null | sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) \(.*\)/ 500 \2 \3/p'`)
	s.fake("dpkg", state+`
case "$1" in
--print-architecture) echo amd64 ;;
esac
for a in "$@"; do case "$a" in *cuda-keyring*.deb) echo cuda-keyring >>"$st/installed"; echo x >"$PHOENIX_TEST_ROOT/usr/share/keyrings/cuda-archive-keyring.gpg" ;; esac; done
exit 0`)
	s.fake("dpkg-deb", `exit 0`)
	s.fake("systemctl", state+`
case "$1" in
is-enabled) for u in "$@"; do :; done; grep -qx "$u" "$st/enabled" ;;
enable) for u in "$@"; do case "$u" in -*|enable) ;; *) echo "$u" >>"$st/enabled" ;; esac; done ;;
esac`)
	s.fake("curl", `
out=; url=
while [ $# -gt 0 ]; do
	case "$1" in
	-o) out=$2; shift ;;
	--retry|--connect-timeout|--max-time|--proto|--proto-redir) shift ;;
	-*) ;;
	*) url=$1 ;;
	esac
	shift
done
f="$PHOENIX_TEST_ROOT/../serve/${url#*://}"
if [ ! -f "$f" ]; then echo "curl: (22) The requested URL returned error: 404" >&2; exit 22; fi
if [ -n "$out" ]; then cp "$f" "$out"; else cat "$f"; fi`)
	s.fake("gpg", `
out=; in=
while [ $# -gt 0 ]; do
	case "$1" in
	-o) out=$2; shift ;;
	-*) ;;
	*) in=$1 ;;
	esac
	shift
done
# gpg --dearmor of nothing writes nothing and succeeds.
if [ -n "$in" ]; then grep -v -- '-----' "$in" >"$out" || true; else grep -v -- '-----' >"$out" || true; fi`)
	s.fake("docker", `exit 0`)
	s.fake("tar", `exit 0`)
	s.fake("sleep", `exit 0`)
	s.fake("locale-gen", `exit 0`)
	s.fake("locale", `echo en_US.utf8`)
	s.fake("nvidia-smi", `
case "$*" in
*driver_version*) echo 580.76.05 ;;
-L) echo "GPU 0: NVIDIA H200 (UUID: GPU-0)" ;;
*) echo "NVIDIA-SMI 580.76.05" ;;
esac`)
	s.fake("runuser", `shift 3; exec "$@"`)
	s.fake("nvidia-ctk", ctkConfig)
}

// serve makes a file curl's fake serves at url.
func (s *sandbox) serve(url, content string) {
	s.t.Helper()
	_, rest, _ := strings.Cut(url, "://")
	p := filepath.Join(s.root, "..", "serve", rest)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

const pgpKey = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBFit2ioBEADhWpZ8/wvZ6hUTiXOwQHXMAlaFHcPH9hAtr4F1y2+OYdbtMuth\n-----END PGP PUBLIC KEY BLOCK-----\n"
