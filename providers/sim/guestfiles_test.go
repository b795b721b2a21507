package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/phoenixhv/phoenix/providers/internal/shellwords"
)

// shIn runs argv on a node with stdin as the session's standard input.
func (l *lab) shIn(node, stdin string, argv ...string) sshResult {
	l.t.Helper()
	sess, err := l.conn(node).NewSession()
	if err != nil {
		l.t.Fatalf("ssh %s: new session: %v", node, err)
	}
	defer sess.Close()
	var out, errOut bytes.Buffer
	sess.Stdin, sess.Stdout, sess.Stderr = strings.NewReader(stdin), &out, &errOut
	code := 0
	var exit *ssh.ExitError
	switch err := sess.Run(shellwords.Join(argv)); {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitStatus()
	default:
		l.t.Fatalf("ssh %s %q: %v", node, argv, err)
	}
	return sshResult{code, out.String(), errOut.String()}
}

const (
	stageBody   = "# stage-file.sh\n"
	fileBody    = "# file.sh\n"
	inspectBody = "# inspect.sh\n"
	serviceBody = "# service.sh\n"
)

func (l *lab) stage(node, path, content string) sshResult {
	l.t.Helper()
	return l.shIn(node, content, scriptArgv("phoenix/stage-file", "apply", stageBody, "PHOENIX_STAGE="+path)...)
}

func (l *lab) nodeFile(node, path string) (string, bool) {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	v, ok := l.s.c.node(node).files[path]
	return v, ok
}

func (l *lab) inspect(vmid int, files, services string) string {
	l.t.Helper()
	r := l.script("pve1", vmid, "phoenix/inspect", "check", inspectBody, "PHOENIX_FILES="+files, "PHOENIX_SERVICES="+services)
	wantExit(l.t, "inspect", r, 0)
	return r.stdout
}

func (l *lab) service(vmid int, name string, enable, run bool, restart string) sshResult {
	l.t.Helper()
	b := func(v bool) string {
		if v {
			return "true"
		}
		return "false"
	}
	return l.script("pve1", vmid, "phoenix/service", "apply", serviceBody, "SERVICE="+name, "ENABLE="+b(enable), "RUN="+b(run), "RESTART="+restart)
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestStageFile: standard input becomes the node's file, only in the stage
// directory; clean removes it; the journal never shows the content.
func TestStageFile(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	const stage = "/var/lib/phoenix/stage/102-00aa"
	wantExit(t, "stage", l.stage("pve1", stage, "secret=1\x00\xff\n"), 0)
	if got, ok := l.nodeFile("pve1", stage); !ok || got != "secret=1\x00\xff\n" {
		t.Errorf("staged %q, %v", got, ok)
	}
	for _, bad := range []string{"/etc/shadow", "/var/lib/phoenix/stage/../../../etc/shadow", "/var/lib/phoenix/stage/a/b", "/var/lib/phoenix/stage/"} {
		wantExit(t, "stage at "+bad, l.stage("pve1", bad, "x"), 2, "is not a file in /var/lib/phoenix/stage")
		if _, ok := l.nodeFile("pve1", bad); ok {
			t.Errorf("%s was written", bad)
		}
	}
	wantExit(t, "no PHOENIX_STAGE", l.shIn("pve1", "x", scriptArgv("phoenix/stage-file", "apply", stageBody)...), 2, "PHOENIX_STAGE: parameter not set")
	wantExit(t, "clean", l.run("pve1", scriptArgv("phoenix/stage-file", "clean", stageBody, "PHOENIX_STAGE="+stage)...), 0)
	if _, ok := l.nodeFile("pve1", stage); ok {
		t.Error("clean left the staged file")
	}
	for _, e := range l.s.Journal() {
		if strings.Contains(e.Detail, "secret") {
			t.Errorf("the journal shows the content: %+v", e)
		}
	}
	// Container scripts are refused on the node.
	wantExit(t, "phoenix/file on the node", l.run("pve1", scriptArgv("phoenix/file", "prepare", fileBody, "PHOENIX_FILE=/etc/x")...), 2, "runs inside a container")
}

// TestPushModeAndOwner: pct push gives the copy --perms, --user and --group
// as pct.pm's create_file does, and dies in its worker (exit 0, a message)
// where create_file dies.
func TestPushModeAndOwner(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	const src = "/var/lib/phoenix/stage/102-01"
	wantExit(t, "stage", l.stage("pve1", src, "data\n"), 0)
	push := func(dst string, opts ...string) sshResult {
		return l.run("pve1", append([]string{"pct", "push", "102", src, dst}, opts...)...)
	}
	line := func(path, meta string) string { return "file " + path + " " + sha("data\n") + " " + meta + "\n" }
	cases := []struct {
		name, dst string
		opts      []string
		want      string // inspect's line, or pct's message
	}{
		{"defaults: 0666 less the umask, root's", "/etc/a.conf", nil, line("/etc/a.conf", "644 0:0 root:root")},
		{"names", "/etc/b.conf", []string{"--perms", "0640", "--user", "www-data", "--group", "video"}, line("/etc/b.conf", "640 33:44 www-data:video")},
		{"octal without its 0, ids without names", "/root/c", []string{"--perms", "600", "--user", "1234", "--group", "1234"}, line("/root/c", "600 1234:1234 UNKNOWN:UNKNOWN")},
		{"hexadecimal, setuid", "/usr/local/bin/d", []string{"--perms", "0x9ed"}, line("/usr/local/bin/d", "4755 0:0 root:root")},
		{"an unknown user", "/etc/e", []string{"--user", "nosuch"}, "failed to get uid for: nosuch"},
		{"an unknown group", "/etc/e", []string{"--group", "nosuch"}, "failed to get gid for: nosuch"},
		{"a mode that is no number", "/etc/e", []string{"--perms", "9"}, "invalid mode: '09'"},
		{"no such directory", "/etc/app/e", nil, "failed to create file: /etc/app/e: No such file or directory"},
		{"a directory", "/etc", nil, "failed to create file: /etc: Is a directory"},
	}
	for _, tc := range cases {
		r := push(tc.dst, tc.opts...)
		if !strings.HasPrefix(tc.want, "file ") {
			wantExit(t, tc.name, r, 0, tc.want)
			continue
		}
		wantExit(t, tc.name, r, 0)
		if r.stderr != "" {
			t.Errorf("%s: %v", tc.name, r)
		}
		if got := l.inspect(102, tc.dst, ""); got != tc.want {
			t.Errorf("%s: inspect printed %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := l.inspect(102, "/etc/e /etc/app/e", ""); got != "file /etc/e -\nfile /etc/app/e -\n" {
		t.Errorf("failed pushes made files: %q", got)
	}
	// An existing file keeps its mode and owner unless told otherwise.
	wantExit(t, "push over b.conf", push("/etc/b.conf", "--user", "root"), 0)
	if got, want := l.inspect(102, "/etc/b.conf", ""), line("/etc/b.conf", "640 0:44 root:video"); got != want {
		t.Errorf("push over an existing file: %q, want %q", got, want)
	}
}

// TestFileScript: prepare makes the directory pct push needs, apply renames
// the copy over the file with its mode and owner, clean removes a copy.
func TestFileScript(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	file := func(phase, path string) sshResult {
		return l.script("pve1", 102, "phoenix/file", phase, fileBody, "PHOENIX_FILE="+path)
	}
	const src, path = "/var/lib/phoenix/stage/102-02", "/opt/app/conf/app.yaml"
	wantExit(t, "stage", l.stage("pve1", src, "v: 1\n"), 0)
	wantExit(t, "push before prepare", l.run("pve1", "pct", "push", "102", src, path+".phoenix-new"), 0, "No such file or directory")
	wantExit(t, "apply before the push", file("apply", path), 1, "phoenix: "+path+".phoenix-new is missing: pct push did not copy it")
	wantExit(t, "prepare", file("prepare", path), 0)
	wantExit(t, "push", l.run("pve1", "pct", "push", "102", src, path+".phoenix-new", "--perms", "0600", "--user", "nobody", "--group", "nogroup"), 0)
	if got, want := l.inspect(102, path, ""), "file "+path+" -\n"; got != want {
		t.Errorf("before apply: %q, want %q", got, want)
	}
	wantExit(t, "apply", file("apply", path), 0)
	want := "file " + path + " " + sha("v: 1\n") + " 600 65534:65534 nobody:nogroup\nfile " + path + ".phoenix-new -\n"
	if got := l.inspect(102, path+" "+path+".phoenix-new", ""); got != want {
		t.Errorf("after apply: %q, want %q", got, want)
	}
	wantExit(t, "push again", l.run("pve1", "pct", "push", "102", src, path+".phoenix-new"), 0)
	wantExit(t, "clean", file("clean", path), 0)
	if got := l.inspect(102, path+".phoenix-new", ""); got != "file "+path+".phoenix-new -\n" {
		t.Errorf("after clean: %q", got)
	}
	wantExit(t, "prepare under a file", file("prepare", path+"/x"), 1, "mkdir: cannot create directory '"+path+"': File exists")
	wantExit(t, "apply over a directory", l.run("pve1", "pct", "push", "102", src, "/opt/app/conf.phoenix-new"), 0)
	wantExit(t, "apply over a directory", file("apply", "/opt/app/conf"), 1, "mv: cannot overwrite directory '/opt/app/conf' with non-directory")
	wantExit(t, "an unknown phase", file("install", path), 2, "phoenix/file: unknown phase install")
}

// TestServicesAcrossStartStopClone: a unit is known from its unit file or
// its installer; enablement lives on the disk (a clone has it), activity in
// the run (a stop ends it, a start starts the enabled ones).
func TestServicesAcrossStartStopClone(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	notFound := "service web not-found inactive\n"
	if got := l.inspect(102, "", "web"); got != notFound {
		t.Errorf("before its unit file: %q, want %q", got, notFound)
	}
	wantExit(t, "start an unknown unit", l.service(102, "web", true, true, ""), 1,
		"phoenix: web.service: systemd has no such unit: the feature that provides it is not installed, or its unit file is missing")

	const src = "/var/lib/phoenix/stage/102-03"
	wantExit(t, "stage", l.stage("pve1", src, "[Service]\nExecStart=/usr/bin/web\n"), 0)
	wantExit(t, "push the unit", l.run("pve1", "pct", "push", "102", src, "/etc/systemd/system/web.service"), 0)
	if got, want := l.inspect(102, "", "web"), "service web disabled inactive\n"; got != want {
		t.Errorf("with its unit file: %q, want %q", got, want)
	}
	wantExit(t, "enable and start", l.service(102, "web", true, true, ""), 0)
	wantExit(t, "docker's install", l.script("pve1", 102, "docker/engine", "apply", "apt-get install -y docker.io"), 0)
	if got, want := l.inspect(102, "", "web docker"), "service web enabled active\nservice docker enabled active\n"; got != want {
		t.Errorf("started: %q, want %q", got, want)
	}
	wantExit(t, "stop web", l.service(102, "web", true, false, ""), 0)
	if got, want := l.inspect(102, "", "web"), "service web enabled inactive\n"; got != want {
		t.Errorf("stopped: %q, want %q", got, want)
	}
	l.reboot("pve1", 102)
	if got, want := l.inspect(102, "", "web docker"), "service web enabled active\nservice docker enabled active\n"; got != want {
		t.Errorf("after a reboot: %q, want %q", got, want)
	}
	wantExit(t, "disable docker, keep it running", l.service(102, "docker", false, true, "restart"), 0)
	if got, want := l.inspect(102, "", "docker"), "service docker disabled active\n"; got != want {
		t.Errorf("disabled: %q, want %q", got, want)
	}
	l.stop("pve1", 102)
	// A clone has the disk's enablement; its start starts what is enabled.
	l.task("pve1", ctPath("pve1", 102, "/clone"), map[string]any{"newid": 150, "hostname": "clone"})
	l.start("pve1", 150)
	if got, want := l.inspect(150, "", "web docker"), "service web enabled active\nservice docker disabled inactive\n"; got != want {
		t.Errorf("on the clone: %q, want %q", got, want)
	}
	// Removing docker takes its unit with it.
	wantExit(t, "docker's removal", l.script("pve1", 150, "docker/engine", "uninstall", "apt-get purge -y docker.io"), 0)
	if got, want := l.inspect(150, "", "docker"), "service docker not-found inactive\n"; got != want {
		t.Errorf("after docker's removal: %q, want %q", got, want)
	}
}

// TestServicesNeedSystemd: an Alpine container boots OpenRC.
func TestServicesNeedSystemd(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	l.create("pve1", 160, map[string]any{"ostemplate": "local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz"})
	l.start("pve1", 160)
	if got, want := l.inspect(160, "", "sshd"), "service sshd not-found no-systemd\n"; got != want {
		t.Errorf("inspect: %q, want %q", got, want)
	}
	wantExit(t, "service", l.service(160, "sshd", true, true, ""), 1, "phoenix: sshd.service: the container runs no systemd: phoenix keeps services with systemd")
}

// TestServiceFaults: faults.services makes a number of starts fail (the
// installer's, a boot's, phoenix/service's), or every one.
func TestServiceFaults(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", func(w *World) {
		w.Spec.Faults.Services = map[string]int{"102/ollama": 2, "100/ollama": -1}
	})
	wantExit(t, "ollama's install", l.script("pve1", 102, "ollama/install", "apply", "curl -fsSL https://ollama.com/install.sh | sh"), 0)
	if got, want := l.inspect(102, "", "ollama"), "service ollama enabled failed\n"; got != want {
		t.Errorf("after a failing first start: %q, want %q", got, want)
	}
	wantExit(t, "second start", l.service(102, "ollama", true, true, ""), 1,
		"systemd[1]: ollama.service: Failed with result 'exit-code'.",
		"phoenix: ollama.service: is failed after it was started: see journalctl -u ollama.service in the container")
	wantExit(t, "third start", l.service(102, "ollama", true, true, "restart"), 0)
	if got, want := l.inspect(102, "", "ollama"), "service ollama enabled active\n"; got != want {
		t.Errorf("after the faults ran out: %q, want %q", got, want)
	}
	wantExit(t, "ollama's install on 100", l.script("pve1", 100, "ollama/install", "apply", "sh install.sh"), 0)
	for range 3 {
		wantExit(t, "start on 100", l.service(100, "ollama", true, true, ""), 1, "is failed after it was started")
	}
	l.reboot("pve1", 100)
	if got, want := l.inspect(100, "", "ollama"), "service ollama enabled failed\n"; got != want {
		t.Errorf("a boot of an always failing service: %q, want %q", got, want)
	}
	var failed int
	for _, e := range l.execs("pve1", 100) {
		if strings.HasPrefix(e, "phoenix/service apply failed") {
			failed++
		}
	}
	if failed != 3 {
		t.Errorf("the journal has %d failed phoenix/service applies on 100, want 3: %q", failed, l.execs("pve1", 100))
	}
}

func TestServiceFaultsChecked(t *testing.T) {
	cases := map[string]struct {
		faults map[string]int
		real   bool
		want   string
	}{
		"no VMID":         {map[string]int{"ollama": 1}, false, `faults.services: "ollama": want VMID/NAME`},
		"a VMID too low":  {map[string]int{"99/ollama": 1}, false, `faults.services: "99/ollama": want VMID/NAME`},
		"a .service":      {map[string]int{"101/a b": 1}, false, `faults.services: "101/a b": want VMID/NAME`},
		"a count below":   {map[string]int{"101/ollama": -2}, false, "faults.services: 101/ollama: -2: want a number of failing starts, or -1"},
		"with real gusts": {map[string]int{"101/ollama": 1}, true, "real guests run their services for real"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w := &World{APIVersion: WorldAPIVersion, Kind: "World"}
			w.Spec.Nodes = []WorldNode{{Name: "pve1"}}
			w.Spec.RealGuests = tc.real
			w.Spec.Faults.Services = tc.faults
			if err := CheckWorld(w); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckWorld: %v, want %q", err, tc.want)
			}
		})
	}
	w, err := ParseWorld([]byte("apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: a}], faults: {services: {101/ollama: -1, 102/web: 3}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"101/ollama": -1, "102/web": 3}, w.Spec.Faults.Services); diff != "" {
		t.Errorf("faults.services (-want +got):\n%s", diff)
	}
}
