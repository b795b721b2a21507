package sim

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/phoenixhv/phoenix/providers/internal/shellwords"
)

// Helpers for the tests of the simulator's SSH side: a running simulator
// reached the way phoenix reaches a real cluster, over SSH with host-key
// checking and over the API with go-proxmox.

// labTimeScale runs the world's seconds as centiseconds: fast, yet far slower
// than a command round trip, so "before the delay" is a state a test can see.
const labTimeScale = 0.01

// labDeadline bounds every poll; generous, as -race on a loaded two-core
// machine can be slow, and a passing test never waits for it.
const labDeadline = 10 * time.Second

// worldTime is a duration in the world's time; the lab runs it at labTimeScale.
func worldTime(d time.Duration) Duration { return Duration(d) }

const labUbuntu = "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"

// lab is a running simulator with clients for it.
type lab struct {
	t *testing.T
	s *Sim
	// root holds a root@pam password ticket: the only API caller Proxmox lets
	// set dev[n] and features other than nesting.
	root *proxmox.Client
	// token is the API token phoenix normally uses.
	token   *proxmox.Client
	ips     map[string]string // node -> address, from /cluster/status
	port    string
	sshConf *ssh.ClientConfig
	conns   *connPool
}

// connPool holds one SSH connection per node, shared by a lab and its copies.
type connPool struct {
	mu    sync.Mutex
	conns map[string]*ssh.Client
}

// on returns the lab reporting to t: a subtest must fail itself, never its
// parent from the subtest's goroutine.
func (l *lab) on(t *testing.T) *lab {
	c := *l
	c.t = t
	return &c
}

// startLab starts the world in testdata/file, after change (if not nil) has
// adjusted it for one test.
func startLab(t *testing.T, file string, change func(w *World)) *lab {
	t.Helper()
	w, err := LoadWorld(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(w)
	}
	s, err := Start(w, Options{TimeScale: labTimeScale})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	env := s.Env()
	l := &lab{t: t, s: s, ips: map[string]string{}, port: env["PROXMOX_VE_SSH_PORT"], conns: &connPool{conns: map[string]*ssh.Client{}}}
	// Cleanups run last-in first-out: connections close before the simulator.
	t.Cleanup(l.closeConns)

	caPEM, err := os.ReadFile(env["PROXMOX_VE_CA_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("the CA file holds no certificate")
	}
	hc := &http.Client{Timeout: labDeadline, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := env["PROXMOX_VE_ENDPOINT"] + "api2/json"
	l.root = proxmox.NewClient(base, proxmox.WithHTTPClient(hc),
		proxmox.WithCredentials(&proxmox.Credentials{Username: env["PROXMOX_VE_USERNAME"], Password: env["PROXMOX_VE_PASSWORD"]}))
	if err := l.root.CreateSession(context.Background()); err != nil {
		t.Fatalf("root@pam login: %v", err)
	}
	id, secret, _ := strings.Cut(env["PROXMOX_VE_API_TOKEN"], "=")
	l.token = proxmox.NewClient(base, proxmox.WithHTTPClient(hc), proxmox.WithAPIToken(id, secret))

	var members []map[string]any
	if err := l.token.Get(context.Background(), "/cluster/status", &members); err != nil {
		t.Fatalf("cluster status: %v", err)
	}
	for _, m := range members {
		if m["type"] == "node" {
			l.ips[m["name"].(string)] = m["ip"].(string)
		}
	}

	keyPEM, err := os.ReadFile(env["PROXMOX_VE_SSH_PRIVATE_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		t.Fatalf("SSH key: %v", err)
	}
	hostKeys, err := knownhosts.New(env["PROXMOX_VE_SSH_KNOWN_HOSTS"])
	if err != nil {
		t.Fatalf("known_hosts: %v", err)
	}
	l.sshConf = &ssh.ClientConfig{
		User: env["PROXMOX_VE_SSH_USERNAME"], Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys, Timeout: labDeadline,
	}
	return l
}

func (l *lab) closeConns() {
	l.conns.mu.Lock()
	defer l.conns.mu.Unlock()
	for _, c := range l.conns.conns {
		_ = c.Close()
	}
}

// conn returns the SSH connection to a node, dialled once and reused as
// phoenix's provider reuses it.
func (l *lab) conn(node string) *ssh.Client {
	l.t.Helper()
	l.conns.mu.Lock()
	defer l.conns.mu.Unlock()
	if c := l.conns.conns[node]; c != nil {
		return c
	}
	ip, ok := l.ips[node]
	if !ok {
		l.t.Fatalf("no node %s in /cluster/status", node)
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort(ip, l.port), l.sshConf)
	if err != nil {
		l.t.Fatalf("ssh %s: %v", node, err)
	}
	l.conns.conns[node] = c
	return c
}

// sshResult is what a remote command gave back.
type sshResult struct {
	code           int
	stdout, stderr string
}

func (r sshResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// sh runs one remote command string on a node, as sent: the caller quotes.
func (l *lab) sh(node, command string) sshResult {
	l.t.Helper()
	sess, err := l.conn(node).NewSession()
	if err != nil {
		l.t.Fatalf("ssh %s: new session: %v", node, err)
	}
	defer sess.Close()
	var out, errOut bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errOut
	code := 0
	var exit *ssh.ExitError
	switch err := sess.Run(command); {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitStatus()
	default:
		l.t.Fatalf("ssh %s %q: %v", node, command, err)
	}
	return sshResult{code, out.String(), errOut.String()}
}

// run sends argv quoted for the node's shell, as phoenix's provider does.
func (l *lab) run(node string, argv ...string) sshResult {
	l.t.Helper()
	return l.sh(node, shellwords.Join(argv))
}

// exec is pct exec VMID -- argv.
func (l *lab) exec(node string, vmid int, argv ...string) sshResult {
	l.t.Helper()
	return l.run(node, append([]string{"pct", "exec", strconv.Itoa(vmid), "--"}, argv...)...)
}

// scriptArgv is a named script the way phoenix runs one: parameters as env
// words, then /bin/sh -c BODY NAME PHASE so the name shows in ps and logs.
func scriptArgv(name, phase, body string, env ...string) []string {
	argv := []string{}
	if len(env) > 0 {
		argv = append(append(argv, "env"), env...)
	}
	argv = append(argv, "/bin/sh", "-c", body, name)
	if phase != "" {
		argv = append(argv, phase)
	}
	return argv
}

// script runs a named script inside a CT, or on the node itself when vmid is 0.
func (l *lab) script(node string, vmid int, name, phase, body string, env ...string) sshResult {
	l.t.Helper()
	argv := scriptArgv(name, phase, body, env...)
	if vmid == 0 {
		return l.run(node, argv...)
	}
	return l.exec(node, vmid, argv...)
}

// want fails the test unless the command exited with code and its stderr
// contains every fragment.
func wantExit(t *testing.T, what string, r sshResult, code int, stderr ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: %v, want exit %d", what, r, code)
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Fatalf("%s: %v, want stderr containing %q", what, r, s)
		}
	}
}

// poll calls ok until it reports true, failing the test after labDeadline.
func (l *lab) poll(what string, ok func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(labDeadline)
	for !ok() {
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: not after %v", what, labDeadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// post and get call the API as root@pam.
func (l *lab) post(path string, params map[string]any) (any, error) {
	var data any
	err := l.root.Post(context.Background(), path, params, &data)
	return data, err
}

func (l *lab) get(path string, v any) {
	l.t.Helper()
	if err := l.root.Get(context.Background(), path, v); err != nil {
		l.t.Fatalf("GET %s: %v", path, err)
	}
}

// task posts an action that answers a UPID and waits for its task to end OK.
func (l *lab) task(node, path string, params map[string]any) {
	l.t.Helper()
	data, err := l.post(path, params)
	if err != nil {
		l.t.Fatalf("POST %s: %v", path, err)
	}
	upid, ok := data.(string)
	if !ok || !strings.HasPrefix(upid, "UPID:"+node+":") {
		l.t.Fatalf("POST %s: %#v is not a UPID of %s", path, data, node)
	}
	var st map[string]any
	l.poll("task "+upid, func() bool {
		l.get("/nodes/"+node+"/tasks/"+url.PathEscape(upid)+"/status", &st)
		return st["status"] == "stopped"
	})
	// go-proxmox's Wait would call a failed task done; only exitstatus tells.
	if st["exitstatus"] != "OK" {
		l.t.Fatalf("POST %s: task ended %v", path, st["exitstatus"])
	}
}

func ctPath(node string, vmid int, rest string) string {
	return fmt.Sprintf("/nodes/%s/lxc/%d%s", node, vmid, rest)
}

// create makes a stopped, unprivileged Ubuntu CT; extra adds or replaces
// create parameters (dev entries need the root ticket l.root has).
func (l *lab) create(node string, vmid int, extra map[string]any) {
	l.t.Helper()
	p := map[string]any{
		"vmid": vmid, "ostemplate": labUbuntu, "rootfs": "local-lvm:8", "hostname": fmt.Sprintf("ct%d", vmid),
		"unprivileged": 1, "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
	}
	maps.Copy(p, extra)
	l.task(node, "/nodes/"+node+"/lxc", p)
}

func (l *lab) start(node string, vmid int) {
	l.t.Helper()
	l.task(node, ctPath(node, vmid, "/status/start"), nil)
}

func (l *lab) stop(node string, vmid int) {
	l.t.Helper()
	l.task(node, ctPath(node, vmid, "/status/stop"), nil)
}

func (l *lab) reboot(node string, vmid int) {
	l.t.Helper()
	l.task(node, ctPath(node, vmid, "/status/reboot"), nil)
}

func (l *lab) config(node string, vmid int) map[string]any {
	l.t.Helper()
	var cfg map[string]any
	l.get(ctPath(node, vmid, "/config"), &cfg)
	return cfg
}

// convert turns a stopped CT into a template. Proxmox answers null and
// converts in a worker whose UPID it does not return: poll the config.
func (l *lab) convert(node string, vmid int) {
	l.t.Helper()
	if data, err := l.post(ctPath(node, vmid, "/template"), nil); err != nil || data != nil {
		l.t.Fatalf("template %d: %#v %v, want null", vmid, data, err)
	}
	l.poll(fmt.Sprintf("CT %d shows template: 1", vmid), func() bool {
		return l.config(node, vmid)["template"] == 1.0
	})
}

// waitInitialized polls phoenix/initialized until it passes: running,
// network up, devices visible.
func (l *lab) waitInitialized(node string, vmid int, devices ...string) {
	l.t.Helper()
	l.poll(fmt.Sprintf("CT %d initialized", vmid), func() bool {
		return l.script(node, vmid, "phoenix/initialized", "check", initializedBody,
			"PHOENIX_DEVICES="+strings.Join(devices, " ")).code == 0
	})
}

// changeWorld posts a world change to the control API, as a test harness
// outside the process would.
func (l *lab) changeWorld(body string) {
	l.t.Helper()
	res, err := http.Post(l.s.Env()["PHOENIX_SIM_URL"]+"/world", "application/json", strings.NewReader(body))
	if err != nil {
		l.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		l.t.Fatalf("POST /world %s: %s", body, res.Status)
	}
}

// execs lists the exec events the journal holds for a CT (vmid 0: commands on
// node itself) as "name phase ok|failed: detail".
func (l *lab) execs(node string, vmid int) []string {
	var out []string
	for _, e := range l.s.Journal() {
		if e.Kind != "exec" || e.Node != node || e.VMID != vmid {
			continue
		}
		s := strings.TrimSpace(e.Name + " " + e.Phase)
		if e.OK {
			s += " ok"
		} else {
			s += " failed: " + e.Detail
		}
		out = append(out, s)
	}
	return out
}

// countExecs counts a CT's exec events whose rendering starts with prefix.
func (l *lab) countExecs(node string, vmid int, prefix string) int {
	return len(slices.DeleteFunc(l.execs(node, vmid), func(s string) bool { return !strings.HasPrefix(s, prefix) }))
}

// Script bodies as phoenix's features might write them. The model keys on the
// name, never the body, except where a body's content is the fact (the
// userspace installer must carry --no-kernel-module).
const (
	initializedBody = `for d in $PHOENIX_DEVICES; do test -c "$d" || exit 1; done; ip route | grep -q default`
	downloadBody    = `curl -fsSL -o "$NVIDIA_RUNFILE" "$NVIDIA_URL" && { test -z "$NVIDIA_SHA256" || echo "$NVIDIA_SHA256  $NVIDIA_RUNFILE" | sha256sum -c -; }`
	userspaceBody   = `sh "$NVIDIA_RUNFILE" --silent --no-kernel-module --no-questions --ui=none --no-nouveau-check --no-x-check --no-nvidia-modprobe --no-dkms`
	verifyBody      = `nvidia-smi --query-gpu=driver_version --format=csv,noheader | grep -qx "$NVIDIA_VERSION"`
	repoBody        = `. /etc/os-release; curl -fsSLO "https://developer.download.nvidia.com/compute/cuda/repos/$ID${VERSION_ID%%.*}/x86_64/cuda-keyring_1.1-1_all.deb" && dpkg -i cuda-keyring_1.1-1_all.deb && apt-get update`
	toolkitBody     = `apt-get install -y "$CUDA_PACKAGE"`
	nvccBody        = `/usr/local/cuda/bin/nvcc --version | grep "release $CUDA_VERSION"`
	aptBody         = `apt-get update && apt-get install -y curl ca-certificates`
)

const (
	labDriver    = "580.76.05"
	labNewDriver = "580.95.05"
)

// runfile names, on the node and inside the CT.
func nodeRunfile(v string) string  { return "/var/lib/phoenix/NVIDIA-Linux-x86_64-" + v + ".run" }
func guestRunfile(v string) string { return "/root/NVIDIA-Linux-x86_64-" + v + ".run" }

func nvidiaURL(v string) string {
	return "https://download.nvidia.com/XFree86/Linux-x86_64/" + v + "/NVIDIA-Linux-x86_64-" + v + ".run"
}

// downloadEnv is the download script's parameters for a version.
func downloadEnv(v string) []string {
	return []string{"NVIDIA_VERSION=" + v, "NVIDIA_URL=" + nvidiaURL(v), "NVIDIA_RUNFILE=" + nodeRunfile(v), "NVIDIA_SHA256=" + RunfileSHA256(v)}
}

// userspaceEnv is the userspace script's parameters for a version.
func userspaceEnv(v string) []string {
	return []string{"NVIDIA_VERSION=" + v, "NVIDIA_RUNFILE=" + guestRunfile(v)}
}

// fetchRunfile downloads a runfile on the node and pushes it into a CT: the
// runfile comes from the node so CTs without internet access install too.
func (l *lab) fetchRunfile(node string, vmid int, v string) {
	l.t.Helper()
	wantExit(l.t, "download", l.script(node, 0, "nvidia-driver/download", "apply", downloadBody, downloadEnv(v)...), 0)
	wantExit(l.t, "push", l.run(node, "pct", "push", strconv.Itoa(vmid), nodeRunfile(v), guestRunfile(v), "--perms", "0755"), 0)
}

// installDriver runs the nvidia-driver chain in a CT whose devices are visible.
func (l *lab) installDriver(node string, vmid int, v string) {
	l.t.Helper()
	l.fetchRunfile(node, vmid, v)
	wantExit(l.t, "userspace apply", l.script(node, vmid, "nvidia-driver/userspace", "apply", userspaceBody, userspaceEnv(v)...), 0)
	wantExit(l.t, "userspace verify", l.script(node, vmid, "nvidia-driver/userspace", "verify", verifyBody, userspaceEnv(v)...), 0)
}
