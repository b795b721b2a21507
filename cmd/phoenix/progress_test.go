package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
)

// events is a long install as the engine reports it: started, two lines of
// output, a heartbeat, done; and a failing step of another guest.
func progressEvents(now time.Time) []reconciler.Event {
	base := reconciler.Event{Time: now, Guest: "vllm-qwen", VMID: 950, Node: "pve1", Action: reconciler.InstallFeature, Feature: "vllm"}
	step := base
	step.Step, step.Phase = "vllm/install", "apply"
	at := func(ev reconciler.Event, o reconciler.Outcome, d time.Duration, out string) reconciler.Event {
		ev.Outcome, ev.Duration, ev.Output = o, d, out
		return ev
	}
	failed := reconciler.Event{Guest: "nginx", VMID: 960, Node: "pve1", Action: reconciler.InstallFeature, Feature: "nginx",
		Step: "nginx/install", Phase: "apply", Outcome: reconciler.Failed, Duration: time.Second,
		Err: errors.New("nginx/install apply exited 100: E: Unable to locate package nginx"), ErrKind: reconciler.ErrorStep}
	return []reconciler.Event{
		at(base, reconciler.Started, 0, ""),
		at(step, reconciler.Started, 0, ""),
		at(step, reconciler.Output, time.Second, "Progress: [ 12%] [#.......]"),
		at(step, reconciler.Output, 2*time.Second, "Progress: [ 25%] [##......]"),
		at(step, reconciler.Running, 10*time.Second, "Progress: [ 25%] [##......]"),
		at(step, reconciler.Done, 12*time.Second, ""),
		at(base, reconciler.Done, 12*time.Second, ""),
		failed,
	}
}

func TestProgressModes(t *testing.T) {
	cases := map[string]struct {
		mode       progressMode
		want, not  []string
		liveCursor bool
	}{
		"plain: ends of actions and steps, heartbeats with the last line, failures": {
			mode: progressPlain,
			want: []string{
				"vllm-qwen (950 on pve1): install vllm: vllm/install apply: running for 10s: Progress: [ 25%] [##......]",
				"vllm-qwen (950 on pve1): install vllm: vllm/install apply: done (12s)",
				"vllm-qwen (950 on pve1): install vllm: done (12s)",
				"nginx (960 on pve1): install nginx: nginx/install apply: failed (1s): nginx/install apply exited 100: E: Unable to locate package nginx",
			},
			not: []string{"output", "\x1b["},
		},
		"live: no heartbeat lines, a live line per guest drawn and cleared": {
			mode:       progressLive,
			want:       []string{"vllm-qwen (950): install vllm: vllm/install apply", "Progress: [ 25%]", "install vllm: done (12s)"},
			not:        []string{"running for"},
			liveCursor: true,
		},
		"quiet: failures only": {
			mode: progressQuiet,
			want: []string{"nginx (960 on pve1): install nginx: nginx/install apply: failed"},
			not:  []string{"vllm-qwen", "running for"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			p := newProgress(&b, tc.mode)
			for _, ev := range progressEvents(time.Now()) {
				p.event(ev)
			}
			p.close()
			out := b.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("%q in:\n%s", n, out)
				}
			}
			if tc.liveCursor != strings.Contains(out, "\x1b[1A\x1b[J") {
				t.Errorf("live lines drawn and cleared: %v, want %v:\n%q", !tc.liveCursor, tc.liveCursor, out)
			}
		})
	}
}
