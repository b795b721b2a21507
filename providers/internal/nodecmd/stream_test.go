package nodecmd

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestSplitterLines(t *testing.T) {
	long := strings.Repeat("x", 20)
	cases := map[string]struct {
		writes []string
		want   []string
	}{
		"one write, one line":          {writes: []string{"hello\n"}, want: []string{"hello"}},
		"a line split across writes":   {writes: []string{"Unpack", "ing ", "cuda\nSetting up\n"}, want: []string{"Unpacking cuda", "Setting up"}},
		"no final newline":             {writes: []string{"a\nb"}, want: []string{"a", "b"}},
		"empty lines are lines":        {writes: []string{"a\n\n\nb\n"}, want: []string{"a", "", "", "b"}},
		"crlf is one end":              {writes: []string{"a\r\nb\r\n"}, want: []string{"a", "b"}},
		"crlf split across writes":     {writes: []string{"a\r", "\nb\r", "\n"}, want: []string{"a", "b"}},
		"a blank crlf line stays":      {writes: []string{"a\r\n\r\nb\r\n"}, want: []string{"a", "", "b"}},
		"cr redraws are lines":         {writes: []string{"Progress: [ 25%]\rProgress: [ 50%]\rProgress: [100%]\n"}, want: []string{"Progress: [ 25%]", "Progress: [ 50%]", "Progress: [100%]"}},
		"a cr at the start is nothing": {writes: []string{"  % Total\n\r  0 100M\r 10 100M\r\n"}, want: []string{"  % Total", "  0 100M", " 10 100M"}},
		"repeated crs end one line":    {writes: []string{"50%\r\r\r\n"}, want: []string{"50%"}},
		"a final cr line":              {writes: []string{"a\r"}, want: []string{"a"}},
		"nothing":                      {writes: []string{"", ""}, want: nil},
		"just newlines":                {writes: []string{"\n", "\n"}, want: []string{"", ""}},
		"a line at the limit is whole": {writes: []string{long[:16] + "\n"}, want: []string{long[:16]}},
		"a long line is cut": {writes: []string{long + "\nnext\n"},
			want: []string{long[:16] + " [phoenix: 4 more bytes of this line not shown]", "next"}},
		"a long line across writes is cut": {writes: []string{long[:10], long[10:], "yz\n"},
			want: []string{long[:16] + " [phoenix: 6 more bytes of this line not shown]"}},
		"a long last line without newline": {writes: []string{long},
			want: []string{long[:16] + " [phoenix: 4 more bytes of this line not shown]"}},
		"a cut never splits a rune": {writes: []string{strings.Repeat("x", 15) + "ééé\n"},
			want: []string{strings.Repeat("x", 15) + " [phoenix: 6 more bytes of this line not shown]"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var got []string
			s := &splitter{max: 16, emit: func(l string) { got = append(got, l) }}
			for _, w := range tc.writes {
				s.write([]byte(w))
			}
			s.flush()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			for _, l := range got {
				if !utf8.ValidString(l) {
					t.Errorf("invalid UTF-8: %q", l)
				}
			}
		})
	}
}

func TestSplitterByteByByte(t *testing.T) {
	in := "a\r\nbb\rccc\n\r\n\rdd"
	var got []string
	s := &splitter{max: 16, emit: func(l string) { got = append(got, l) }}
	for i := range len(in) {
		s.write([]byte{in[i]})
	}
	s.flush()
	if diff := cmp.Diff([]string{"a", "bb", "ccc", "", "dd"}, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

func TestOutputInterleavesStreamsByArrival(t *testing.T) {
	var got []string
	o := NewOutput(0, func(l string) { got = append(got, l) })
	writes := []struct {
		stderr bool
		s      string
	}{
		{false, "out 1\nout "}, {true, "err 1\n"}, {false, "2\n"}, {true, "err "}, {false, "out 3\n"}, {true, "2"}, {false, "out 4"},
	}
	for _, w := range writes {
		if w.stderr {
			fmt.Fprint(o.Stderr(), w.s)
		} else {
			fmt.Fprint(o.Stdout(), w.s)
		}
	}
	o.Close()
	want := []string{"out 1", "err 1", "out 2", "out 3", "out 4", "err 2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	res := o.Result()
	if res.Stdout != "out 1\nout 2\nout 3\nout 4" || res.Stderr != "err 1\nerr 2" {
		t.Errorf("captured %+v", res)
	}
	fmt.Fprint(o.Stdout(), "late\n")
	if len(got) != len(want) || !strings.HasSuffix(o.Result().Stdout, "late\n") {
		t.Errorf("a write after Close: lines %q, captured %q; want it captured only", got, o.Result().Stdout)
	}
}

func TestOutputSlowCallbackNeverBlocksCapture(t *testing.T) {
	release := make(chan struct{})
	var inCall, overlap atomic.Int32
	var mu sync.Mutex
	var got []string
	o := NewOutput(0, func(l string) {
		if inCall.Add(1) > 1 {
			overlap.Add(1)
		}
		<-release
		mu.Lock()
		got = append(got, l)
		mu.Unlock()
		inCall.Add(-1)
	})
	// Two writers at once, as a transport's stdout and stderr copiers are,
	// many more lines than the queue holds, the callback stuck on the first.
	const n = 3 * maxPendingLines
	start := time.Now()
	var wg sync.WaitGroup
	for _, w := range []struct {
		name string
		to   func() *stream
	}{{"out", func() *stream { return o.stdout }}, {"err", func() *stream { return o.stderr }}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				fmt.Fprintf(w.to(), "%s %d\n", w.name, i)
			}
		}()
	}
	wg.Wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("writing took %v with the callback stuck", d)
	}
	close(release)
	o.Close()
	if overlap.Load() > 0 {
		t.Errorf("the callback ran concurrently %d times", overlap.Load())
	}
	res := o.Result()
	if strings.Count(res.Stdout, "\n") != n || strings.Count(res.Stderr, "\n") != n {
		t.Errorf("captured %d and %d lines, want %d each", strings.Count(res.Stdout, "\n"), strings.Count(res.Stderr, "\n"), n)
	}
	// The newest lines are always shown; what was skipped is said.
	skipped := 0
	for _, l := range got {
		var k int
		if _, err := fmt.Sscanf(l, "[phoenix: %d lines of output not shown", &k); err == nil {
			skipped += k
		}
	}
	if len(got) > maxPendingLines+3 || skipped == 0 || len(got)-1+skipped < 2*n {
		t.Errorf("%d lines shown, %d said skipped, of %d", len(got), skipped, 2*n)
	}
	if l := got[len(got)-1]; l != fmt.Sprintf("out %d", n-1) && l != fmt.Sprintf("err %d", n-1) {
		t.Errorf("the last line shown is %q, not the last one printed", l)
	}
}

func TestOutputAbandonDropsWaitingLines(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var calls atomic.Int32
	o := NewOutput(0, func(string) {
		calls.Add(1)
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	})
	fmt.Fprint(o.Stdout(), "one\ntwo\nthree\nfour")
	<-entered
	done := make(chan struct{})
	go func() {
		o.Abandon()
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("Abandon returned while a call was in progress")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	<-done
	if c := calls.Load(); c != 1 {
		t.Errorf("%d calls; want only the one in progress", c)
	}
}

func TestOutputWithoutCallback(t *testing.T) {
	o := NewOutput(8, nil)
	fmt.Fprint(o.Stdout(), "0123456789")
	fmt.Fprint(o.Stderr(), "e\n")
	o.Close()
	res := o.Result()
	if !strings.HasPrefix(res.Stdout, "0123") || !strings.Contains(res.Stdout, "dropped") || res.Stderr != "e\n" {
		t.Errorf("captured %+v", res)
	}
}
