// Command phoenix keeps Proxmox VE LXC containers, the templates they are cloned
// from and the features installed in them (NVIDIA driver, GPU passthrough, CUDA,
// docker, ...) the way YAML specs describe them.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries an exit status other than 1 out of a command, or a status 1
// whose explanation has already been printed.
type exitError struct {
	code int
	err  error // nil when the command printed its own explanation
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// run executes the CLI and returns the process exit status: 0 on success, 1 on
// error (or invalid specs), other values where a command documents them.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := newRootCmd(stdout, stderr)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "phoenix:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "phoenix:", err)
	return 1
}
