package nodecmd

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestCaptureKeepsAllUnderTheLimit(t *testing.T) {
	c := NewCapture(16)
	fmt.Fprint(c, "hello ")
	fmt.Fprint(c, "world")
	if got := c.String(); got != "hello world" || c.Truncated() {
		t.Errorf("got %q (truncated %v)", got, c.Truncated())
	}
	c = NewCapture(16)
	fmt.Fprint(c, "0123456789abcdef")
	if got := c.String(); got != "0123456789abcdef" || c.Truncated() {
		t.Errorf("exactly the limit: got %q (truncated %v)", got, c.Truncated())
	}
}

func TestCaptureKeepsHeadAndTail(t *testing.T) {
	for _, chunk := range []int{1, 3, 7, 64, 10000} {
		c := NewCapture(16)
		data := "HEAD-123" + strings.Repeat(".", 1000) + "tail-end"
		for s := data; s != ""; {
			n := min(chunk, len(s))
			if k, err := c.Write([]byte(s[:n])); k != n || err != nil {
				t.Fatalf("Write = %d, %v", k, err)
			}
			s = s[n:]
		}
		want := "HEAD-123\n[phoenix: 1000 bytes of output dropped]\ntail-end"
		if got := c.String(); got != want || !c.Truncated() {
			t.Errorf("chunks of %d: got %q, want %q", chunk, got, want)
		}
	}
}

func TestCaptureDefaultLimit(t *testing.T) {
	c := NewCapture(0)
	n, _ := io.Copy(c, strings.NewReader(strings.Repeat("z", 3<<20)))
	if n != 3<<20 {
		t.Fatalf("copied %d", n)
	}
	if got := len(c.String()); got > DefaultOutputLimit+100 || got < DefaultOutputLimit {
		t.Errorf("kept %d bytes of 3 MiB with the default limit", got)
	}
}
