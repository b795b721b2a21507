package nodecmd

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/phoenixhv/phoenix/reconciler"
)

// MaxLineLength is the most of one line passed to a script's Output: a
// progress bar or a minified blob can print megabytes without a newline, and
// what a line is for (showing that a step is alive) needs far less.
const MaxLineLength = 4096

// maxPendingLines bounds the lines waiting for a slow Output callback.
const maxPendingLines = 1024

// Output is where a command's stdout and stderr go: each is captured as
// Capture keeps it and, when there is a line callback, split into lines that
// are passed to it as they arrive.
//
// The callback never runs on a writer's goroutine. A transport writes from
// the goroutine that drains the command's pipe or SSH channel; were it to
// wait for a slow callback, the pipe or the channel's window would fill and
// the command itself would stall on its next write. Lines are queued
// instead, and one goroutine of Output's own passes them on, one at a time,
// in the order they arrived. The queue is bounded: when the callback falls
// behind by maxPendingLines, the oldest waiting lines are dropped and a
// marker line says how many, so the callback always catches up with what
// the command prints now. What the capture keeps does not depend on it.
type Output struct {
	stdout, stderr *stream
	q              *lineQueue // nil without a callback
}

// NewOutput captures up to limit bytes of each stream (limit <= 0:
// DefaultOutputLimit) and passes each line to lines, which may be nil.
func NewOutput(limit int, lines func(line string)) *Output {
	o := &Output{stdout: &stream{capture: NewCapture(limit)}, stderr: &stream{capture: NewCapture(limit)}}
	if lines != nil {
		o.q = newLineQueue(lines)
		o.stdout.split = &splitter{max: MaxLineLength, emit: o.q.push}
		o.stderr.split = &splitter{max: MaxLineLength, emit: o.q.push}
	}
	return o
}

// Stdout is the writer for the command's standard output.
func (o *Output) Stdout() io.Writer { return o.stdout }

// Stderr is the writer for the command's standard error.
func (o *Output) Stderr() io.Writer { return o.stderr }

// Close passes on the lines still waiting, a last line without a newline
// included, and returns once the callback has had every one: no call comes
// after Close. Later writes are still captured, but make no lines.
func (o *Output) Close() {
	o.stdout.end()
	o.stderr.end()
	if o.q != nil {
		o.q.close(false)
	}
}

// Abandon drops the lines not yet passed on and returns once a call in
// progress has returned: for a command given up on, whose caller wants no
// more of it and must not wait for a slow callback.
func (o *Output) Abandon() {
	o.stdout.stop()
	o.stderr.stop()
	if o.q != nil {
		o.q.close(true)
	}
}

// Result is what was captured of each stream.
func (o *Output) Result() reconciler.Result {
	return reconciler.Result{Stdout: o.stdout.capture.String(), Stderr: o.stderr.capture.String()}
}

// stream is one of a command's outputs.
type stream struct {
	capture *Capture
	mu      sync.Mutex // a transport may write from more than one goroutine
	split   *splitter  // nil once ended, or without a callback
}

// Write captures p and splits it into lines; it never waits for the
// callback and never fails.
func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, _ := s.capture.Write(p)
	if s.split != nil {
		s.split.write(p)
	}
	return n, nil
}

// end delivers the last line, if it had no newline, and stops splitting.
func (s *stream) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.split != nil {
		s.split.flush()
		s.split = nil
	}
}

func (s *stream) stop() {
	s.mu.Lock()
	s.split = nil
	s.mu.Unlock()
}

// splitter cuts a stream of bytes into lines. \n ends a line; so does \r,
// which apt, curl and wget print to redraw a progress line in place: each
// redraw is a line. A \r\n is one end, and a \r that finds nothing printed
// since the last end (curl starts its redraws with one) makes no line. A
// line longer than max is cut, with a note of how much is missing.
type splitter struct {
	max  int
	emit func(string)

	line    []byte
	cut     int  // bytes of the current line past max, not kept
	crEnded bool // the last byte was a \r that ended a line
}

func (s *splitter) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			s.add(p)
			return
		}
		s.add(p[:i])
		switch {
		case p[i] == '\n' && s.crEnded:
			s.crEnded = false // the \n of a \r\n
		case p[i] == '\n':
			s.end()
		case s.pending():
			s.end()
			s.crEnded = true
		}
		p = p[i+1:]
	}
}

// flush delivers a last line that had no newline.
func (s *splitter) flush() {
	if s.pending() {
		s.end()
	}
}

func (s *splitter) pending() bool { return len(s.line) > 0 || s.cut > 0 }

func (s *splitter) add(b []byte) {
	if len(b) == 0 {
		return
	}
	s.crEnded = false
	k := min(len(b), s.max-len(s.line))
	s.line = append(s.line, b[:k]...)
	s.cut += len(b) - k
}

func (s *splitter) end() {
	line, cut := s.line, s.cut
	if cut > 0 {
		kept := trimPartialRune(line)
		cut += len(line) - len(kept)
		line = fmt.Appendf(kept, " [phoenix: %d more bytes of this line not shown]", cut)
	}
	s.emit(string(line))
	s.line, s.cut = s.line[:0], 0
}

// trimPartialRune drops a last rune that the cut split in two, so a cut
// line is still valid UTF-8 where the command printed valid UTF-8.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return b
			}
			return b[:i]
		}
	}
	return b
}

// lineQueue hands lines from the writers to one goroutine that calls the
// callback; see Output for why.
type lineQueue struct {
	mu        sync.Mutex
	wake      *sync.Cond
	lines     []string
	dropped   int // lines dropped from the head since the last delivered one
	closed    bool
	abandoned bool
	done      chan struct{}
}

func newLineQueue(fn func(string)) *lineQueue {
	q := &lineQueue{done: make(chan struct{})}
	q.wake = sync.NewCond(&q.mu)
	go q.deliver(fn)
	return q
}

// push queues a line without waiting, dropping the oldest one when the
// queue is full.
func (q *lineQueue) push(line string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if len(q.lines) >= maxPendingLines {
		q.lines[0] = ""
		q.lines = q.lines[1:]
		q.dropped++
	}
	q.lines = append(q.lines, line)
	q.wake.Signal()
}

// close stops taking lines and waits for the delivering goroutine to end:
// after the lines still queued, or at once when abandoning them.
func (q *lineQueue) close(abandon bool) {
	q.mu.Lock()
	q.closed = true
	q.abandoned = q.abandoned || abandon
	q.wake.Signal()
	q.mu.Unlock()
	<-q.done
}

func (q *lineQueue) deliver(fn func(string)) {
	defer close(q.done)
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for len(q.lines) == 0 && !q.closed {
			q.wake.Wait()
		}
		if q.abandoned || len(q.lines) == 0 {
			return
		}
		var line string
		if q.dropped > 0 {
			// The dropped lines came just before the queue's head.
			line = fmt.Sprintf("[phoenix: %d lines of output not shown: they came faster than they could be]", q.dropped)
			q.dropped = 0
		} else {
			line = q.lines[0]
			q.lines[0] = ""
			q.lines = q.lines[1:]
		}
		q.mu.Unlock()
		fn(line)
		q.mu.Lock()
	}
}
