package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
)

// progressMode is how apply and demo show what the engine does.
type progressMode int

const (
	// progressPlain prints one line per event that matters, and a
	// heartbeat line for a step that runs long: for logs and pipes.
	progressPlain progressMode = iota
	// progressLive is the same on a terminal, plus a live line per guest at
	// the bottom with the step it runs, for how long, and the last line the
	// step printed.
	progressLive
	// progressQuiet prints failures only (the summary follows anyway).
	progressQuiet
)

// progress prints engine events as they come. It is called from several
// goroutines.
type progress struct {
	w     io.Writer
	mode  progressMode
	start time.Time

	mu sync.Mutex
	// running is what each guest runs now (live mode).
	running map[string]*liveLine
	// drawn is how many live lines are on the screen below the log.
	drawn int
	stop  chan struct{}
	once  sync.Once
}

type liveLine struct {
	label string
	what  string
	since time.Time
	last  string
}

func newProgress(w io.Writer, mode progressMode) *progress {
	p := &progress{w: w, mode: mode, start: time.Now(), running: map[string]*liveLine{}, stop: make(chan struct{})}
	if mode == progressLive {
		go p.tick()
	}
	return p
}

// close stops the live display and clears it.
func (p *progress) close() {
	p.once.Do(func() {
		close(p.stop)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.clear()
	})
}

// tick redraws the live lines every second, so that elapsed times move.
func (p *progress) tick() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.redraw()
			p.mu.Unlock()
		}
	}
}

// event takes one engine event.
func (p *progress) event(ev reconciler.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == progressLive {
		p.track(ev)
	}
	if line, ok := p.line(ev); ok {
		p.clear()
		fmt.Fprintln(p.w, line)
	}
	if p.mode == progressLive {
		p.redraw()
	}
}

// note prints a line of phoenix's own between the events (a stop signal).
func (p *progress) note(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), text)
	if p.mode == progressLive {
		p.redraw()
	}
}

// line is the log line of an event, if it gets one in this mode: the end of
// each action and of each script that changed something, failed and retried
// steps, and heartbeats outside live mode (where the live lines show them).
func (p *progress) line(ev reconciler.Event) (string, bool) {
	var show bool
	switch p.mode {
	case progressQuiet:
		show = ev.Outcome == reconciler.Failed
	case progressLive:
		// The live lines show the heartbeats.
		show = ev.Noteworthy() && ev.Outcome != reconciler.Running
	default:
		show = ev.Noteworthy()
	}
	if !show {
		return "", false
	}
	return progressLine(ev, time.Since(p.start)), true
}

// progressLine is one line per event: when, which guest, what, how it went.
func progressLine(ev reconciler.Event, since time.Duration) string {
	line := fmt.Sprintf("[%6.1fs] %s (%d on %s): %s: %s", since.Seconds(), ev.Guest, ev.VMID, ev.Node, ev.Name(), ev.Outcome)
	switch {
	case ev.Outcome == reconciler.Retrying:
		line += fmt.Sprintf(" in %v", ev.Duration.Round(time.Millisecond))
	case ev.Outcome == reconciler.Running:
		line += fmt.Sprintf(" for %v", ev.Duration.Round(time.Second))
	case ev.Duration > 0:
		line += fmt.Sprintf(" (%v)", ev.Duration.Round(time.Millisecond))
	}
	if ev.Outcome == reconciler.Started && ev.Reason != "" {
		line += ": " + ev.Reason
	}
	if ev.Output != "" {
		line += ": " + ev.Output
	}
	if ev.Err != nil {
		line += ": " + strings.ReplaceAll(ev.Err.Error(), "\n", " | ")
	}
	return line
}

// track keeps each guest's live line up to date.
func (p *progress) track(ev reconciler.Event) {
	key := ev.Guest
	switch {
	case ev.ActionLevel() && ev.Outcome == reconciler.Started:
		p.running[key] = &liveLine{label: fmt.Sprintf("%s (%d)", ev.Guest, ev.VMID), what: ev.Name(), since: ev.Time}
	case ev.ActionLevel() && (ev.Outcome == reconciler.Done || ev.Outcome == reconciler.Failed):
		delete(p.running, key)
	case p.running[key] != nil && ev.Outcome == reconciler.Started:
		p.running[key].what = ev.Name()
	case p.running[key] != nil && (ev.Outcome == reconciler.Output || ev.Outcome == reconciler.Running) && ev.Output != "":
		p.running[key].last = ev.Output
	}
}

// clear removes the live lines from the screen.
func (p *progress) clear() {
	if p.drawn == 0 {
		return
	}
	fmt.Fprintf(p.w, "\x1b[%dA\x1b[J", p.drawn)
	p.drawn = 0
}

// redraw writes one line per running guest below the log.
func (p *progress) redraw() {
	p.clear()
	for _, k := range slices.Sorted(maps.Keys(p.running)) {
		l := p.running[k]
		line := fmt.Sprintf("  %s: %s, %v", l.label, l.what, time.Since(l.since).Round(time.Second))
		if l.last != "" {
			line += ": " + l.last
		}
		if len(line) > 160 {
			line = line[:157] + "..."
		}
		fmt.Fprintln(p.w, line)
		p.drawn++
	}
}
