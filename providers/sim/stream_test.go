package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/phoenixhv/phoenix/providers/internal/shellwords"
)

// stampedLine is a line of a command's stdout and when the client read it.
type stampedLine struct {
	text string
	at   time.Time
}

func texts(lines []stampedLine) []string {
	var out []string
	for _, s := range lines {
		out = append(out, s.text)
	}
	return out
}

// streamed runs a named script and reads its stdout line by line as it
// arrives. cancelAfter > 0 sends SIGTERM once that many lines were read.
func (l *lab) streamed(node string, vmid int, name, phase string, cancelAfter int) (lines []stampedLine, start, end time.Time, code int) {
	l.t.Helper()
	argv := scriptArgv(name, phase, "apt-get install -y something")
	if vmid != 0 {
		argv = append([]string{"pct", "exec", strconv.Itoa(vmid), "--"}, argv...)
	}
	sess, err := l.conn(node).NewSession()
	if err != nil {
		l.t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	start = time.Now()
	if err := sess.Start(shellwords.Join(argv)); err != nil {
		l.t.Fatal(err)
	}
	r := bufio.NewReader(out)
	for {
		s, err := r.ReadString('\n')
		if s != "" {
			lines = append(lines, stampedLine{s, time.Now()})
			if len(lines) == cancelAfter {
				if err := sess.Signal(ssh.SIGTERM); err != nil {
					l.t.Fatal(err)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			l.t.Fatal(err)
		}
	}
	var exit *ssh.ExitError
	switch err := sess.Wait(); {
	case errors.As(err, &exit):
		code = exit.ExitStatus()
	case err != nil:
		l.t.Fatal(err)
	}
	return lines, start, time.Now(), code
}

// progressLines are the lines a long apply or uninstall prints.
var progressLines = []string{
	"Progress: [ 12%] [####....................................]\n",
	"Progress: [ 25%] [##########..............................]\n",
	"Progress: [ 37%] [##############..........................]\n",
	"Progress: [ 50%] [####################....................]\n",
	"Progress: [ 62%] [########################................]\n",
	"Progress: [ 75%] [##############################..........]\n",
	"Progress: [ 87%] [##################################......]\n",
}

func TestStreamProgressLines(t *testing.T) {
	t.Parallel()
	// 80 s of world time is 800 ms at the lab's scale: a line every 100 ms.
	const d = 800 * time.Millisecond
	l := startLab(t, "ssh-cluster.yaml", func(w *World) {
		w.Spec.Durations.Exec = worldTime(30 * time.Second)
		w.Spec.Durations.Scripts = map[string]Duration{
			"test/stream": worldTime(100 * d), "test/quick": worldTime(10 * time.Second),
		}
	})
	for _, tc := range []struct {
		what  string
		node  string
		vmid  int
		phase string
	}{
		{"an apply inside a CT", "pve1", 100, "apply"},
		{"an uninstall inside a CT", "pve1", 100, "uninstall"},
		{"an apply on the node", "pve2", 0, "apply"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			l := l.on(t)
			lines, start, end, code := l.streamed(tc.node, tc.vmid, "test/stream", tc.phase, 0)
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			if got := texts(lines); !slices.Equal(got, progressLines) {
				t.Fatalf("stdout %q, want %q", got, progressLines)
			}
			if took := end.Sub(start); took < d {
				t.Errorf("the script took %v, less than its %v", took, d)
			}
			// Line i is printed at i/8 of the duration: the first half of
			// them must reach the client at least half the duration, less
			// an eighth, before the end, not with it. An eighth of the
			// duration (100 ms) is room for a loaded machine; the last
			// lines, printed close to the end, are not timed.
			for i, s := range lines[:len(lines)/2] {
				want := d/2 - d/progressSteps
				if ahead := end.Sub(s.at); ahead < want {
					t.Errorf("line %d arrived %v before the end, want at least %v", i+1, ahead, want)
				}
			}
			execs := l.execs(tc.node, tc.vmid)
			if want := "test/stream " + tc.phase + " ok"; execs[len(execs)-1] != want {
				t.Errorf("journal ends with %q, want %q", execs[len(execs)-1], want)
			}
		})
	}

	for _, tc := range []struct{ what, name, phase string }{
		{"a check prints nothing", "test/stream", "check"},
		{"a verify prints nothing", "test/stream", "verify"},
		{"a short apply prints nothing", "test/quick", "apply"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			l := l.on(t)
			if lines, _, _, code := l.streamed("pve1", 102, tc.name, tc.phase, 0); len(lines) != 0 || code > 1 {
				t.Errorf("exit %d, stdout %q", code, texts(lines))
			}
		})
	}
}

func TestStreamStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	// 2.4 s at the lab's scale: a line every 300 ms.
	l := startLab(t, "ssh-cluster.yaml", func(w *World) {
		w.Spec.Durations.Scripts = map[string]Duration{"test/stream": worldTime(240 * time.Second)}
	})
	lines, start, end, code := l.streamed("pve1", 100, "test/stream", "apply", 1)
	if code != 143 {
		t.Errorf("exit %d after SIGTERM, want 143", code)
	}
	// The signal went right after the first line; the second was 300 ms away.
	if len(lines) != 1 || lines[0].text != progressLines[0] {
		t.Errorf("stdout %q, want the first progress line only", texts(lines))
	}
	if took := end.Sub(start); took > 1500*time.Millisecond {
		t.Errorf("the cancelled script ran %v", took)
	}
	want := "test/stream apply failed: cancelled: sshd: received signal TERM"
	if execs := l.execs("pve1", 100); !slices.Contains(execs, want) {
		t.Errorf("journal %q, want %q", execs, want)
	}
}

func TestProgressLine(t *testing.T) {
	for pct, want := range map[int]string{
		0:   "Progress: [  0%] [........................................]\n",
		50:  "Progress: [ 50%] [####################....................]\n",
		100: "Progress: [100%] [########################################]\n",
	} {
		if got := progressLine(pct); got != want {
			t.Errorf("%d%%: %q, want %q", pct, got, want)
		}
		if n := len(strings.TrimSuffix(progressLine(pct), "\n")); n != len(fmt.Sprintf("Progress: [%3d%%] []", pct))+progressWidth {
			t.Errorf("%d%%: %d columns", pct, n)
		}
	}
}
