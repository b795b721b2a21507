package reconciler

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// recordWithError is a record with two features and a failure whose message
// is a step's long output: a first line saying what failed, then lines of
// output, the newest last.
func recordWithError(lines int) *State {
	var out strings.Builder
	out.WriteString("install vllm: vllm/install apply exited 1:")
	for i := range lines {
		out.WriteString("\n  Collecting torch==2.6 (from vllm) <\"quoted\"> 2>&1 é line ")
		out.WriteString(strings.Repeat("x", i%7))
	}
	out.WriteString("\n  ERROR: No matching distribution found for torch==2.6")
	at := time.Date(2026, 11, 1, 12, 0, 0, 123456789, time.UTC)
	return &State{V: StateVersion, Name: "vllm-1", Kind: "Container", Parent: "gpu-base", Features: map[string]FeatureRecord{
		"nvidia-driver": {VMID: 901, Version: "580.76.05", At: at},
		"vllm":          {VMID: 960, Version: "0.8.0", Params: map[string]string{"model": "Qwen/Qwen2.5-7B"}, At: at, Requires: map[string]time.Time{"nvidia-driver": at}},
	}, Error: &StateError{At: at, Step: "install vllm", Message: out.String(), Kind: ErrorStep}}
}

// The record and the user's notes share Proxmox VE's 8192 characters: when
// they do not fit, the error's message is cut, its oldest output first, and
// nothing else is; what is written reads back as the same user text and the
// same records.
func TestDescriptionCutsTheErrorFirst(t *testing.T) {
	for _, notes := range []int{0, 2000, 7000} {
		// Multi-byte notes: Proxmox counts characters, not bytes.
		user := strings.Repeat("Ünïcödé notes ", notes/14)
		s := recordWithError(400)
		desc, err := BoundedDescription(user, s)
		if err != nil {
			t.Fatalf("%d characters of notes: %v", notes, err)
		}
		if n := utf8.RuneCountInString(desc); n > DescriptionLimit || n < DescriptionLimit-20 {
			t.Errorf("%d characters of notes: the description has %d characters; want at most %d, and the room used", notes, n, DescriptionLimit)
		}
		gotUser, got, err := ParseDescription(desc + "\n")
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		if strings.TrimRight(gotUser, "\n") != strings.TrimRight(user, "\n") {
			t.Errorf("the notes changed")
		}
		if diff := cmp.Diff(s, got, cmpopts.IgnoreFields(StateError{}, "Message")); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
		msg := got.Error.Message
		if !strings.HasPrefix(msg, "install vllm: vllm/install apply") || !strings.Contains(msg, errorCut) ||
			!strings.HasSuffix(msg, "ERROR: No matching distribution found for torch==2.6") {
			t.Errorf("the message keeps its start, the marker and its newest output; got %.80q...%q", msg, msg[max(0, len(msg)-80):])
		}
	}
}

// What fits is written whole, error and all.
func TestDescriptionThatFitsIsWhole(t *testing.T) {
	s := recordWithError(3)
	desc, err := BoundedDescription("notes", s)
	if err != nil {
		t.Fatal(err)
	}
	if _, got, _ := ParseDescription(desc); got == nil || got.Error.Message != s.Error.Message {
		t.Errorf("message %q, want it whole", got.Error.Message)
	}
}

// Where even the record with the message cut away does not fit beside the
// notes, nothing is written and the error says by how much.
func TestDescriptionThatCannotFitIsRefused(t *testing.T) {
	user := strings.Repeat("n", DescriptionLimit-100)
	for name, s := range map[string]*State{"with an error": recordWithError(10), "without": {V: 1, Name: "vllm-1", Kind: "Container",
		Features: recordWithError(0).Features}} {
		t.Run(name, func(t *testing.T) {
			desc, err := BoundedDescription(user, s)
			var long *RecordTooLongError
			if !errors.As(err, &long) || desc != "" {
				t.Fatalf("got %d characters, err %v: want a RecordTooLongError", utf8.RuneCountInString(desc), err)
			}
			if long.User != DescriptionLimit-100+1 || long.User+long.Record <= DescriptionLimit {
				t.Errorf("sizes %+v", long)
			}
			if !strings.Contains(err.Error(), "shorten the notes") || ErrorKindOf(err) != ErrorKind(ProblemSpec) {
				t.Errorf("error %q kind %s", err, ErrorKindOf(err))
			}
		})
	}
}

// The block is compact JSON, yet text inside it that would close the
// comment or open another block is escaped, so the block reads back.
func TestDescriptionBlockIsCompactAndClosed(t *testing.T) {
	s := &State{V: 1, Name: "a", Kind: "Container", Error: &StateError{Step: "x", Message: "a 2>&1 b --> c <!-- phoenix:state d <!---->"}}
	desc := RenderDescription("notes", s)
	block := desc[strings.Index(desc, stateBegin)+len(stateBegin) : strings.LastIndex(desc, stateEnd)]
	if strings.Contains(block, "-->") || strings.Contains(block, "<!--") || !strings.Contains(block, "2>&1") {
		t.Errorf("block %q", block)
	}
	user, got, err := ParseDescription(desc)
	if err != nil || user != "notes" || got.Error.Message != s.Error.Message {
		t.Errorf("read back %q %+v %v", user, got, err)
	}
}

func TestCutMessage(t *testing.T) {
	cases := map[string]struct {
		msg  string
		max  int
		want string
	}{
		"fits":                  {"short", 10, "short"},
		"keeps the first line":  {"first line\n" + strings.Repeat("o", 30) + "new", 25, "first" + errorCut + strings.Repeat("o", 12) + "new"},
		"one line":              {strings.Repeat("a", 20) + strings.Repeat("b", 20), 13, "aa" + errorCut + "bbbbbb"},
		"nothing left":          {strings.Repeat("a", 20), 3, errorCut},
		"characters, not bytes": {strings.Repeat("é", 40), 9, "é" + errorCut + "ééé"},
	}
	for name, tc := range cases {
		if got := cutMessage(tc.msg, tc.max); got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
}

// FuzzBoundedDescription: whatever the notes and the error, a description
// phoenix writes fits Proxmox's limit and reads back as the same notes and
// records, or is refused with the sizes.
func FuzzBoundedDescription(f *testing.F) {
	f.Add("notes", "boom", 0)
	f.Add(strings.Repeat("é", 8000), strings.Repeat("--> <!-- \"\\\n", 300), 2)
	f.Add("", strings.Repeat("\x00\xff", 5000), 7)
	f.Fuzz(func(t *testing.T, user, msg string, pad int) {
		user += strings.Repeat("u", (pad%9+9)%9*1000)
		s := &State{V: 1, Name: "g", Kind: "Container", Error: &StateError{Step: "s", Message: msg}}
		desc, err := BoundedDescription(user, s)
		var long *RecordTooLongError
		if errors.As(err, &long) {
			if long.User+long.Record <= DescriptionLimit {
				t.Fatalf("refused %+v, which fits", long)
			}
			return
		}
		if err != nil || utf8.RuneCountInString(desc) > DescriptionLimit {
			t.Fatalf("%d characters, %v", utf8.RuneCountInString(desc), err)
		}
		gotUser, got, err := ParseDescription(desc)
		if err != nil || got == nil {
			t.Fatalf("parse: %v", err)
		}
		// The last block counts: notes that hold a block's start cannot be
		// told from phoenix's text, as before; only plain notes compare.
		if !strings.Contains(user, stateBegin) && strings.TrimRight(gotUser, "\n") != strings.TrimRight(user, "\n") {
			t.Fatalf("notes changed: %q -> %q", user, gotUser)
		}
		if m := got.Error.Message; m != string([]rune(msg)) && !strings.Contains(m, errorCut) {
			t.Fatalf("message changed without the marker: %q -> %q", msg, m)
		}
	})
}
