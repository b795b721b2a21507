package ssh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/reconciler"
)

// lineLog records the lines a script streams, when they came, and whether
// any came while another was being handled or after the command returned.
type lineLog struct {
	mu       sync.Mutex
	lines    []string
	at       []time.Time
	busy     bool
	overlap  bool
	returned bool
	late     []string
}

func (l *lineLog) output(line string) {
	l.mu.Lock()
	if l.busy {
		l.overlap = true
	}
	l.busy = true
	l.lines = append(l.lines, line)
	l.at = append(l.at, time.Now())
	if l.returned {
		l.late = append(l.late, line)
	}
	l.mu.Unlock()
	// A slow consumer: the output must still be captured whole.
	time.Sleep(5 * time.Millisecond)
	l.mu.Lock()
	l.busy = false
	l.mu.Unlock()
}

func (l *lineLog) done() {
	l.mu.Lock()
	l.returned = true
	l.mu.Unlock()
}

// progress is what the simulator prints at each eighth of a long apply.
func progress() []string {
	var want []string
	for i := 1; i < 8; i++ {
		pct := i * 100 / 8
		done := pct * 40 / 100
		want = append(want, fmt.Sprintf("Progress: [%3d%%] [%s%s]", pct, strings.Repeat("#", done), strings.Repeat(".", 40-done)))
	}
	return want
}

func TestExecStreamsOutput(t *testing.T) {
	c := startCluster(t)
	n := c.node("pve1")
	// test/stream takes 800 ms and prints a line every 100 ms.
	const d = 800 * time.Millisecond
	for _, where := range []string{"in a CT", "on the node"} {
		t.Run(where, func(t *testing.T) {
			log := &lineLog{}
			s := reconciler.Script{Name: "test/stream", Phase: "apply", Body: "apt-get install -y cuda-toolkit", Output: log.output}
			var res reconciler.Result
			var err error
			if where == "in a CT" {
				res, err = n.Exec(ctxT(t), 100, s)
			} else {
				res, err = n.ExecHost(ctxT(t), s)
			}
			end := time.Now()
			log.done()
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("%+v, %v", res, err)
			}
			log.mu.Lock()
			defer log.mu.Unlock()
			if diff := cmp.Diff(progress(), log.lines); diff != "" {
				t.Fatalf("lines (-want +got):\n%s", diff)
			}
			// Line i is printed at i/8 of the duration; it must arrive well
			// before the end (half its lead, for a loaded machine).
			for i, at := range log.at {
				want := d * time.Duration(7-i) / 8 / 2
				if ahead := end.Sub(at); ahead < want {
					t.Errorf("line %d came %v before Exec returned, want at least %v", i+1, ahead, want)
				}
			}
			if log.overlap {
				t.Error("the callback ran concurrently")
			}
			if wantOut := strings.Join(progress(), "\n") + "\n"; res.Stdout != wantOut {
				t.Errorf("the result holds %q, want every line", res.Stdout)
			}
		})
	}
}

func TestCancelStopsTheLines(t *testing.T) {
	c := startCluster(t)
	n := c.node("pve1")
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	log := &lineLog{}
	first := make(chan struct{})
	var once sync.Once
	s := reconciler.Script{Name: "test/stream", Phase: "apply", Body: "apt-get install -y cuda-toolkit", Output: func(line string) {
		log.output(line)
		once.Do(func() { close(first) })
	}}
	go func() {
		<-first
		cancel()
	}()
	start := time.Now()
	_, err := n.Exec(ctx, 100, s)
	log.done()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 600*time.Millisecond {
		t.Errorf("returned %v after the start, not at the first line", d)
	}
	time.Sleep(300 * time.Millisecond)
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.lines) == 0 || len(log.lines) > 2 || len(log.late) > 0 {
		t.Errorf("lines %q, %q after Exec returned; want the first one or two, none late", log.lines, log.late)
	}
}
