package sim

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/providers/internal/shellwords"
)

// Work that never ends by itself (hang.go): a worker blocked for good, a
// script that never exits, and timeout(1), which bounds a script where it
// runs.

// taskStatus reads a task's status as root@pam.
func (l *lab) taskStatus(node, upid string) map[string]any {
	l.t.Helper()
	var st map[string]any
	l.get("/nodes/"+node+"/tasks/"+url.PathEscape(upid)+"/status", &st)
	return st
}

// TestHungTaskStaysRunning: a worker that hangs stays "running" in its
// status and in the node's active list while other tasks start and end; only
// a reboot of its node ends it, as systemd's signal ends every worker.
func TestHungTaskStaysRunning(t *testing.T) {
	l := startLab(t, "ssh-cluster.yaml", func(w *World) { w.Spec.Faults.Hang.Tasks = []string{"vzstart:101"} })
	data, err := l.post(ctPath("pve1", 101, "/status/start"), nil)
	if err != nil {
		t.Fatal(err)
	}
	upid := data.(string)
	// Other work starts and ends meanwhile, on the same node.
	l.create("pve1", 300, nil)
	l.start("pve1", 300)
	if st := l.taskStatus("pve1", upid); st["status"] != "running" {
		t.Fatalf("hung vzstart: %v, want running", st)
	}
	var active []map[string]any
	l.get("/nodes/pve1/tasks?vmid=101&typefilter=vzstart&source=active", &active)
	if len(active) != 1 || active[0]["upid"] != upid {
		t.Errorf("active list %v, want the hung task", active)
	}
	// Healing the fault does not end the worker that hangs.
	l.s.SetTaskHang("vzstart:101", false)
	if st := l.taskStatus("pve1", upid); st["status"] != "running" {
		t.Fatalf("hung vzstart after the fault healed: %v, want running", st)
	}
	l.changeWorld(`{"nodes":{"pve1":{"reboot":true}}}`)
	st := l.taskStatus("pve1", upid)
	if st["status"] != "stopped" || st["exitstatus"] != "received interrupt" {
		t.Errorf("hung vzstart after a reboot: %v, want stopped with received interrupt", st)
	}
	// A new start of the same CT ends as it should.
	l.start("pve1", 101)
}

// TestTimeoutWrapperStopsAHungScript: timeout(1) signals a script that
// hangs once its time is up; it exits 124 and the process is gone from the
// container. Without timeout(1) the process outlives the session that
// started it, until the container stops.
func TestTimeoutWrapperStopsAHungScript(t *testing.T) {
	l := startLab(t, "ssh-cluster.yaml", func(w *World) { w.Spec.Faults.Hang.Scripts = []string{"test/hang"} })
	argv := append([]string{"timeout", "-k", "30", "1"}, scriptArgv("test/hang", "apply", "sleep infinity")...)
	r := l.exec("pve1", 102, argv...)
	wantExit(t, "hung script under timeout 1", r, 124)
	if ps := l.s.Processes("pve1", 102); len(ps) != 0 {
		t.Errorf("processes after timeout(1) stopped the script: %v", ps)
	}
	if got := l.execs("pve1", 102); !slices.Contains(got, "test/hang apply failed: timed out after 1s: timeout -k 30 1 sent SIGTERM") {
		t.Errorf("journal %v, want the timeout", got)
	}
	// Its check is not what hangs.
	wantExit(t, "check of a hung script", l.script("pve1", 102, "test/hang", "check", "true"), 1)

	t.Run("without timeout(1) it outlives its session", func(t *testing.T) {
		l := l.on(t)
		sess, err := l.conn("pve1").NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.Start(shellwords.Join(append([]string{"pct", "exec", "102", "--"}, scriptArgv("test/hang", "apply", "sleep infinity")...))); err != nil {
			t.Fatal(err)
		}
		l.poll("the hung script runs", func() bool { return len(l.s.Processes("pve1", 102)) == 1 })
		_ = sess.Close()
		l.poll("the session's end is seen", func() bool {
			return slices.ContainsFunc(l.execs("pve1", 102), func(s string) bool { return strings.HasSuffix(s, "the script runs on") })
		})
		if ps := l.s.Processes("pve1", 102); !cmp.Equal(ps, []string{"test/hang apply"}) {
			t.Errorf("processes after the session closed: %v, want the hung script", ps)
		}
		// Stopping the container ends every process in it.
		l.stop("pve1", 102)
		if ps := l.s.Processes("pve1", 102); len(ps) != 0 {
			t.Errorf("processes after the CT stopped: %v", ps)
		}
	})
}

// TestTimeoutWrapperCutsALongScriptShort: timeout(1) counts the wall clock;
// a script that would run longer is stopped at its bound, before its effect.
// One that ends in time exits with its own status.
func TestTimeoutWrapperCutsALongScriptShort(t *testing.T) {
	l := startLab(t, "ssh-cluster.yaml", func(w *World) {
		w.Spec.Durations.Scripts = map[string]Duration{"test/long": worldTime(1000 * time.Second)}
	})
	r := l.exec("pve1", 102, append([]string{"timeout", "-k", "5", "1"}, scriptArgv("test/long", "apply", "sleep 1000")...)...)
	wantExit(t, "long script under timeout 1", r, 124)
	wantExit(t, "its check", l.script("pve1", 102, "test/long", "check", "true"), 1)
	r = l.exec("pve1", 102, append([]string{"timeout", "-k", "5", "60"}, scriptArgv("test/quick", "apply", "true")...)...)
	wantExit(t, "quick script under timeout 60", r, 0)
	wantExit(t, "its check", l.script("pve1", 102, "test/quick", "check", "true"), 0)
	// On the node, too.
	r = l.run("pve1", append([]string{"timeout", "-k", "5", "1"}, scriptArgv("test/long", "apply", "sleep 1000")...)...)
	wantExit(t, "long host script under timeout 1", r, 124)
}

func TestSplitTimeout(t *testing.T) {
	cases := map[string]struct {
		argv  []string
		limit time.Duration
		kill  time.Duration
		rest  []string
		usage string
	}{
		"phoenix's form":   {argv: []string{"timeout", "-k", "30", "1800", "env", "/bin/sh"}, limit: 1800 * time.Second, kill: 30 * time.Second, rest: []string{"env", "/bin/sh"}},
		"long options":     {argv: []string{"timeout", "--kill-after=5s", "--signal=KILL", "2m", "true"}, limit: 2 * time.Minute, kill: 5 * time.Second, rest: []string{"true"}},
		"fractions, days":  {argv: []string{"timeout", "0.5d", "true"}, limit: 12 * time.Hour, rest: []string{"true"}},
		"no timeout":       {argv: []string{"env", "true"}, rest: []string{"env", "true"}},
		"bad interval":     {argv: []string{"timeout", "soon", "true"}, usage: "timeout: invalid time interval 'soon'"},
		"negative":         {argv: []string{"timeout", "-k", "-1", "5", "true"}, usage: "timeout: invalid time interval '-1'"},
		"missing command":  {argv: []string{"timeout", "5"}, usage: "timeout: missing operand"},
		"unknown option":   {argv: []string{"timeout", "--later", "5", "true"}, usage: "timeout: unrecognized option '--later'"},
		"option argument":  {argv: []string{"timeout", "-k"}, usage: "timeout: option requires an argument -- 'k'"},
		"end of options":   {argv: []string{"timeout", "--", "3", "true"}, limit: 3 * time.Second, rest: []string{"true"}},
		"command's option": {argv: []string{"timeout", "3", "ls", "-l"}, limit: 3 * time.Second, rest: []string{"ls", "-l"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			wrap, rest, usage := splitTimeout(tc.argv)
			if tc.usage != "" {
				if !strings.HasPrefix(usage, tc.usage) || !strings.HasSuffix(usage, timeoutUsage) {
					t.Errorf("usage %q, want %q", usage, tc.usage)
				}
				return
			}
			if usage != "" {
				t.Fatalf("usage %q", usage)
			}
			if diff := cmp.Diff(tc.rest, rest); diff != "" {
				t.Errorf("rest (-want +got):\n%s", diff)
			}
			if tc.limit == 0 {
				if wrap != nil {
					t.Errorf("wrap %+v, want none", wrap)
				}
				return
			}
			if wrap == nil || wrap.limit != tc.limit || wrap.kill != tc.kill {
				t.Errorf("wrap %+v, want limit %v kill %v", wrap, tc.limit, tc.kill)
			}
		})
	}
}

// TestBadTimeoutIsRefused: timeout(1)'s own failures exit 125 before the
// script runs.
func TestBadTimeoutIsRefused(t *testing.T) {
	l := startLab(t, "ssh-cluster.yaml", nil)
	r := l.exec("pve1", 102, append([]string{"timeout", "later"}, scriptArgv("test/x", "apply", "true")...)...)
	wantExit(t, "timeout later", r, 125, "invalid time interval 'later'")
	if got := l.execs("pve1", 102); slices.Contains(got, "test/x apply ok") {
		t.Errorf("journal %v: the script ran", got)
	}
}
