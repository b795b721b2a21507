package local

import (
	"bytes"
	"strings"
	"testing"
)

// TestRunPassesStandardInput: what a caller gives as standard input is the
// command's (how WriteFile's content reaches the node), and none is end of
// file at once, never phoenix's own standard input.
func TestRunPassesStandardInput(t *testing.T) {
	n := New("pve1")
	content := "token=s3cr3t\n\x00\xff last line without newline"
	var stdout, stderr bytes.Buffer
	code, err := n.run(ctxT(t), []string{"cat"}, strings.NewReader(content), &stdout, &stderr)
	if err != nil || code != 0 || stdout.String() != content {
		t.Errorf("cat with standard input: exit %d, %v, printed %q; want %q", code, err, stdout.String(), content)
	}
	stdout.Reset()
	code, err = n.run(ctxT(t), []string{"cat"}, nil, &stdout, &stderr)
	if err != nil || code != 0 || stdout.Len() != 0 {
		t.Errorf("cat without standard input: exit %d, %v, printed %q; want nothing", code, err, stdout.String())
	}
}
