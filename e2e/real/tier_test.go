package real

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/phoenixhv/phoenix/hack/standin"
	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/providers/sim/lxc"
)

// driverVersion is the simulated host driver's, which the runfile stand-in
// reports.
const driverVersion = "580.76.05"

// standinPort is where containers reach the stand-in server on their
// gateway (forwarded to its 127.0.0.1 port).
const standinPort = 8443

// tier is a running real-guest cluster, its stand-in sources and the
// phoenix binary and specs to converge it with.
type tier struct {
	t      *testing.T
	host   *lxc.Host
	src    *standin.Sources
	sim    *sim.Sim
	bin    string
	specs  string
	env    []string
	timing []string
}

func newTier(t *testing.T) *tier {
	t.Helper()
	if err := lxc.Available(); err != nil {
		testtool.Unable(t, "%v: the real-guest tier must run here", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	tr := &tier{t: t}
	start := time.Now()
	tr.bin = filepath.Join(t.TempDir(), "phoenix")
	build := exec.CommandContext(ctx, "go", "build", "-o", tr.bin, "github.com/phoenixhv/phoenix/cmd/phoenix")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build phoenix: %v\n%s", err, out)
	}
	tr.note("build phoenix", start)

	start = time.Now()
	cache := os.Getenv("PHOENIX_SIM_CACHE")
	if cache == "" {
		cache = lxc.DefaultCacheDir
	}
	host, err := lxc.Prepare(ctx, lxc.HostOptions{CacheDir: cache, Log: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := host.Close(); err != nil {
			t.Error(err)
		}
	})
	tr.host = host
	tr.note("prepare the LXC host (root file system cached under "+cache+")", start)

	start = time.Now()
	src, err := standin.Start(ctx, standin.Options{
		DriverVersion: driverVersion,
		PublicHost:    net.JoinHostPort(host.Gateway(), strconv.Itoa(standinPort)),
		Dir:           filepath.Join(cache, "standin"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	if err := host.ForwardAt(standinPort, src.Port()); err != nil {
		t.Fatal(err)
	}
	if err := host.TrustCA(src.CA()); err != nil {
		t.Fatal(err)
	}
	tr.src = src
	tr.note("start the stand-in server", start)

	tr.specs = filepath.Join(t.TempDir(), "specs")
	tr.renderSpecs("testdata/specs")

	w, err := sim.LoadWorld("testdata/world.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.Start(w, sim.Options{LXCHost: host})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	tr.sim = s
	tr.env = os.Environ()
	for k, v := range s.Env() {
		tr.env = append(tr.env, k+"="+v)
	}
	t.Cleanup(func() { t.Logf("tier timing:\n%s", strings.Join(tr.timing, "\n")) })
	return tr
}

func (tr *tier) note(what string, start time.Time) {
	line := fmt.Sprintf("%7.1fs  %s", time.Since(start).Seconds(), what)
	tr.timing = append(tr.timing, line)
	tr.t.Log(line)
}

// renderSpecs writes the specs in from (testdata/specs) with the stand-in server's addresses:
// {{.RunfileURL}}, and {{config "feature" "KEY=VALUE"...}} for its featureConfig:
// the stand-in sources, and the settings given.
func (tr *tier) renderSpecs(from string) {
	t := tr.t
	params := tr.src.Params()
	funcs := template.FuncMap{"config": func(feature string, settings ...string) (string, error) {
		p, ok := params[feature]
		if !ok {
			return "", fmt.Errorf("the stand-in server has no parameters for %s", feature)
		}
		// More parameters and settings of the spec's own, as KEY=VALUE.
		p = maps.Clone(p)
		for _, kv := range settings {
			k, v, _ := strings.Cut(kv, "=")
			p[k] = v
		}
		// JSON is YAML's flow style.
		b, err := json.Marshal(p)
		return string(b), err
	}}
	data := struct{ RunfileURL string }{tr.src.RunfileURL()}
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		out := filepath.Join(tr.specs, strings.TrimSuffix(rel, ".tmpl"))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !strings.HasSuffix(path, ".tmpl") {
			return os.WriteFile(out, text, 0o644)
		}
		tmpl, err := template.New(rel).Funcs(funcs).Option("missingkey=error").Parse(string(text))
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, data); err != nil {
			return err
		}
		return os.WriteFile(out, b.Bytes(), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// phoenix runs the CLI against the simulator and returns its exit status
// and output. onLine, when set, sees each line of stdout as it comes and
// may return true to have the process killed (SIGKILL) there.
func (tr *tier) phoenix(ctx context.Context, onLine func(string) bool, args ...string) (int, string) {
	tr.t.Helper()
	cmd := exec.CommandContext(ctx, tr.bin, args...)
	cmd.Env = tr.env
	var all bytes.Buffer
	cmd.Stderr = &lockedWriter{w: &all}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		tr.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tr.t.Fatal(err)
	}
	killed := false
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(cmd.Stderr, line)
		if !killed && onLine != nil && onLine(line) {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
		if killed {
			code = -int(syscall.SIGKILL)
		}
	} else if err != nil {
		tr.t.Fatalf("phoenix %s: %v", strings.Join(args, " "), err)
	}
	return code, all.String()
}

// apply runs phoenix apply on the tier's specs and fails the test unless it
// converged.
func (tr *tier) apply(what string) {
	tr.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	start := time.Now()
	code, out := tr.phoenix(ctx, nil, tr.applyArgs()...)
	tr.note(what, start)
	if code != 0 {
		tr.t.Fatalf("%s: phoenix apply exited %d:\n%s", what, code, out)
	}
	tr.t.Logf("%s:\n%s", what, out)
}

func (tr *tier) applyArgs() []string {
	return []string{"apply", "-f", tr.specs, "--auto-approve", "--parallelism", "4", "--lock-timeout", "5m"}
}

// in runs a shell command in a CT's container and returns its output; a
// non-zero exit fails the test.
func (tr *tier) in(vmid int, script string) string {
	tr.t.Helper()
	out, code := tr.inCode(vmid, script)
	if code != 0 {
		tr.t.Errorf("CT %d: %q exited %d:\n%s", vmid, script, code, out)
	}
	return out
}

func (tr *tier) inCode(vmid int, script string) (string, int) {
	tr.t.Helper()
	ct := tr.sim.Container(vmid)
	if ct == nil {
		tr.t.Fatalf("CT %d has no container", vmid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out bytes.Buffer
	code, err := ct.Attach(ctx, []string{"/bin/sh", "-c", script}, nil, nil, &out, &out)
	if err != nil {
		tr.t.Fatalf("CT %d: %q: %v", vmid, script, err)
	}
	return out.String(), code
}

// lastSeq is the journal's last event number.
func (tr *tier) lastSeq() int {
	j := tr.sim.Journal()
	if len(j) == 0 {
		return 0
	}
	return j[len(j)-1].Seq
}

// writesSince lists the journal's writes after seq: API calls other than
// GET, tasks, and the apply phase of any step.
func (tr *tier) writesSince(seq int) []string {
	var out []string
	for _, e := range tr.sim.Journal() {
		if e.Seq <= seq {
			continue
		}
		if e.Kind == "api" && !strings.HasPrefix(e.Name, "GET ") || e.Kind == "task" || e.Kind == "exec" && e.Phase == "apply" {
			out = append(out, fmt.Sprintf("%s %d %s %s", e.Kind, e.VMID, e.Name, e.Phase))
		}
	}
	return out
}

// The guests of testdata/specs.
var (
	privileged   = map[string]int{"base": 900, "docker": 901, "gpu": 902, "cuda": 950, "nct": 951, "hello": 952, "ollama": 953, "vllm": 954}
	unprivileged = map[string]int{"base": 910, "docker": 911, "gpu": 912, "cuda": 960, "nct": 961, "hello": 962}
)

// TestRealTier converges the lineage on real containers with the phoenix
// CLI, checks inside them what each feature's verify claims, applies again
// (nothing written), then kills phoenix while it installs and re-runs it.
func TestRealTier(t *testing.T) {
	tr := newTier(t)
	tr.apply("first apply (converge the lineage)")

	t.Run("what the verifies claim holds inside the containers", func(t *testing.T) {
		tr.t = t
		for _, lineage := range []map[string]int{privileged, unprivileged} {
			unpriv := lineage["base"] == unprivileged["base"]
			for _, name := range []string{"cuda", "nct", "hello"} {
				vmid := lineage[name]
				want := "0 0 4294967295"
				if unpriv {
					want = fmt.Sprintf("0 %d %d", lxc.IDMapBase, lxc.IDMapCount)
				}
				if got := strings.Join(strings.Fields(tr.in(vmid, "cat /proc/self/uid_map")), " "); got != want {
					t.Errorf("CT %d: uid_map %q, want %q", vmid, got, want)
				}
				// base: curl and the CA store work (the stand-in's CA):
				// a file the stand-in serves comes over verified TLS.
				tr.in(vmid, "curl -fsS -o /dev/null "+tr.src.URL()+"/ollama/install.sh")
			}
			// nvidia-driver: the stand-in nvidia-smi reports the host's
			// driver through the passed device nodes.
			for _, name := range []string{"cuda", "nct"} {
				if got := strings.TrimSpace(tr.in(lineage[name], "nvidia-smi --query-gpu=driver_version --format=csv,noheader")); got != driverVersion {
					t.Errorf("CT %d: nvidia-smi reports %q, want %s", lineage[name], got, driverVersion)
				}
			}
			// cuda-toolkit: the package is installed and its compiler answers.
			tr.in(lineage["cuda"], `dpkg-query -W -f='${Status}\n' 'cuda-toolkit-12-8' | grep -qx 'install ok installed' && /usr/local/cuda/bin/nvcc --version`)
			// docker: a container really runs, from an image imported from
			// Debian's busybox-static (no registry is reachable).
			nct := lineage["nct"]
			tr.in(nct, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >/dev/null")
			tr.in(nct, `set -e; d=$(mktemp -d); mkdir "$d/bin"; cp /bin/busybox "$d/bin/"; ln -s busybox "$d/bin/sh"; ln -s busybox "$d/bin/echo"
tar -C "$d" -c . | docker import - tier-busybox:latest >/dev/null; rm -rf "$d"`)
			if got := tr.in(nct, "docker run --rm tier-busybox:latest /bin/echo hello from docker"); got != "hello from docker\n" {
				t.Errorf("CT %d: docker run printed %q", nct, got)
			}
			// nvidia-container-toolkit: the real nvidia-ctk configured
			// docker's nvidia runtime.
			tr.in(nct, "nvidia-ctk --version")
			if got := tr.in(nct, "docker info --format '{{json .Runtimes}}'"); !strings.Contains(got, `"nvidia"`) {
				t.Errorf("CT %d: docker's runtimes %s lack nvidia", nct, got)
			}
			// The user feature.
			if got := tr.in(lineage["hello"], "hello"); got != "hello from a user feature\n" {
				t.Errorf("CT %d: hello printed %q", lineage["hello"], got)
			}
		}
		// ollama answers on the address its host setting gives, through
		// the drop-in phoenix wrote and the service it keeps running.
		ollama := privileged["ollama"]
		tr.in(ollama, "curl -fsS http://127.0.0.1:11434/ && ollama --version")
		if got := tr.in(ollama, "systemctl show ollama -p Environment"); !strings.Contains(got, "OLLAMA_HOST=0.0.0.0:11434") {
			t.Errorf("CT %d: ollama's environment %q lacks the host setting", ollama, got)
		}
		// vllm: the package imports, and the model setting serves vLLM's
		// OpenAI-compatible API as a service phoenix keeps.
		vllm := privileged["vllm"]
		tr.in(vllm, "/opt/vllm/bin/python -c 'import vllm'")
		tr.in(vllm, "systemctl is-active --quiet vllm && systemctl is-enabled --quiet vllm")
		if got := tr.in(vllm, "curl -fsS --retry 10 --retry-connrefused --retry-delay 1 http://127.0.0.1:8000/v1/models"); !strings.Contains(got, `"id": "tier-model"`) {
			t.Errorf("CT %d: /v1/models answered %q", vllm, got)
		}
		// status runs the health checks: ollama's API and vLLM's models
		// answer.
		code, out := tr.phoenix(t.Context(), nil, "status", "-f", tr.specs)
		if code != 0 {
			t.Fatalf("phoenix status exited %d:\n%s", code, out)
		}
		for _, name := range []string{"ollama-p", "vllm-p"} {
			if !healthyLine(out, name) {
				t.Errorf("phoenix status does not say %s is Healthy and Ready:\n%s", name, out)
			}
		}
	})

	t.Run("a second apply writes nothing", func(t *testing.T) {
		tr.t = t
		from := tr.lastSeq()
		tr.apply("second apply (nothing to do)")
		if w := tr.writesSince(from); len(w) > 0 {
			t.Errorf("the second apply wrote or installed:\n%s", strings.Join(w, "\n"))
		}
	})

	t.Run("phoenix killed while it installs, then run again, converges", func(t *testing.T) {
		tr.t = t
		nct := privileged["nct"]
		tr.destroy(nct)
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		defer cancel()
		start := time.Now()
		code, out := tr.phoenix(ctx, func(line string) bool {
			return strings.Contains(line, fmt.Sprintf("(%d ", nct)) && strings.Contains(line, "nvidia-container-toolkit/")
		}, tr.applyArgs()...)
		tr.note("apply killed during the installs", start)
		if code != -int(syscall.SIGKILL) {
			t.Fatalf("phoenix was not killed during the installs (exit %d):\n%s", code, out)
		}
		tr.apply("apply after the kill")
		if got := tr.in(nct, "docker info --format '{{json .Runtimes}}'"); !strings.Contains(got, `"nvidia"`) {
			t.Errorf("CT %d after the re-run: docker's runtimes %s lack nvidia", nct, got)
		}
		from := tr.lastSeq()
		tr.apply("apply after the re-run (nothing to do)")
		if w := tr.writesSince(from); len(w) > 0 {
			t.Errorf("the apply after the re-run wrote or installed:\n%s", strings.Join(w, "\n"))
		}
	})
}

// destroy removes a running CT through the API, as a person would.
func (tr *tier) destroy(vmid int) {
	tr.t.Helper()
	env := tr.sim.Env()
	ca, err := os.ReadFile(env["PROXMOX_VE_CA_FILE"])
	if err != nil {
		tr.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	call := func(method, path string) map[string]any {
		req, err := http.NewRequest(method, env["PROXMOX_VE_ENDPOINT"]+"api2/json"+path, nil)
		if err != nil {
			tr.t.Fatal(err)
		}
		req.Header.Set("Authorization", "PVEAPIToken="+env["PROXMOX_VE_API_TOKEN"])
		resp, err := client.Do(req)
		if err != nil {
			tr.t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			tr.t.Fatalf("%s %s: %s %s", method, path, resp.Status, body)
		}
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			tr.t.Fatal(err)
		}
		return v
	}
	upid, _ := call("DELETE", fmt.Sprintf("/nodes/pve1/lxc/%d?force=1&purge=1", vmid))["data"].(string)
	for {
		st := call("GET", "/nodes/pve1/tasks/"+url.PathEscape(upid)+"/status")["data"].(map[string]any)
		if st["status"] == "stopped" {
			if st["exitstatus"] != "OK" {
				tr.t.Fatalf("destroy CT %d: %v", vmid, st["exitstatus"])
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// lockedWriter is a writer the CLI's stderr and the scanned stdout share.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// healthyLine reports whether phoenix status's table says a guest is
// Healthy and Ready (the Healthy and Ready columns).
func healthyLine(out, name string) bool {
	var head []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "NAME" {
			head = f
			continue
		}
		if len(f) == 0 || f[0] != name || head == nil {
			continue
		}
		col := func(c string) string {
			for i, h := range head {
				if h == c && i < len(f) {
					return f[i]
				}
			}
			return ""
		}
		return col("Healthy") == "yes" && col("Ready") == "yes"
	}
	return false
}
