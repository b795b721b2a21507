package reconciler

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestStateRoundTrip(t *testing.T) {
	s := &State{V: StateVersion, Name: "gpu-base", Kind: "Template", Parent: "base", Generation: 1, Features: map[string]FeatureRecord{
		"nvidia-driver": {VMID: 901, Version: "580.76.05", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		"cuda-toolkit": {VMID: 901, Params: map[string]string{"version": "12.8"}, At: time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC),
			Requires: map[string]time.Time{"nvidia-driver": time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}},
	}, Error: &StateError{At: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC), Step: "install vllm", Message: "boom", Kind: ErrorStep}}
	for _, user := range []string{"", "GPU template.\nDo not start by hand.", "trailing newlines\n\n"} {
		desc := RenderDescription(user, s)
		// Proxmox reads descriptions back with a trailing newline.
		gotUser, got, err := ParseDescription(desc + "\n")
		if err != nil {
			t.Fatalf("parse %q: %v", desc, err)
		}
		if diff := cmp.Diff(s, got); diff != "" {
			t.Errorf("state (-want +got):\n%s", diff)
		}
		if strings.TrimRight(gotUser, "\n") != strings.TrimRight(user, "\n") {
			t.Errorf("user text %q, want %q", gotUser, user)
		}
	}
}

func TestDamagedStateIsReportedNotTrusted(t *testing.T) {
	cases := map[string]string{
		"no end line":     "notes\n<!-- phoenix:state\n{\"v\":1}\n",
		"bad json":        "<!-- phoenix:state\n{\"v\":1,\n-->\n",
		"unknown field":   "<!-- phoenix:state\n{\"v\":1,\"feature\":{}}\n-->\n",
		"unknown version": "<!-- phoenix:state\n{\"v\":7}\n-->\n",
	}
	for name, desc := range cases {
		t.Run(name, func(t *testing.T) {
			user, s, err := ParseDescription(desc)
			if err == nil || s != nil {
				t.Fatalf("got state %+v, err %v: want an error and no state", s, err)
			}
			if user != desc {
				t.Errorf("user text %q: a damaged block must be kept whole", user)
			}
		})
	}
	// A block written by the phoenix before version 2 is read.
	if _, s, err := ParseDescription("<!-- phoenix:state\n{\"v\":1,\"name\":\"a\",\"features\":{\"base\":{\"vmid\":900,\"at\":\"2026-01-02T03:04:05Z\"}}}\n-->"); err != nil || s.Features["base"].VMID != 900 {
		t.Errorf("a version 1 block: %+v %v", s, err)
	}
	if user, s, err := ParseDescription("just notes\n"); err != nil || s != nil || user != "just notes\n" {
		t.Errorf("plain description: %q %v %v", user, s, err)
	}
}

func FuzzParseDescription(f *testing.F) {
	f.Add(RenderDescription("notes", &State{V: 1, Name: "a"}))
	f.Add("<!-- phoenix:state\n-->")
	f.Add("x<!-- phoenix:state{\"v\":1,\"features\":{\"a\":{\"vmid\":1}}}-->y")
	f.Fuzz(func(t *testing.T, desc string) {
		user, s, err := ParseDescription(desc)
		if err != nil || s == nil {
			if user != desc {
				t.Fatalf("without a trusted state the whole text is the user's")
			}
			return
		}
		// What parses renders and parses back to the same state, at the
		// version phoenix writes; an error message too long to fit beside
		// the notes comes back cut.
		_, again, err := ParseDescription(RenderDescription(user, s))
		s.V = StateVersion
		opts := []cmp.Option{cmpopts.EquateEmpty()}
		if err == nil && s.Error != nil && again.Error != nil && strings.Contains(again.Error.Message, errorCut) {
			opts = append(opts, cmpopts.IgnoreFields(StateError{}, "Message"))
		}
		if err != nil || !cmp.Equal(s, again, opts...) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, s, again)
		}
	})
}
