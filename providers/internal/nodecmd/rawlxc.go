package nodecmd

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"

	"github.com/phoenixhv/phoenix/reconciler"
)

// RemoveRawLXCName is the name of the script that removes raw lxc.* lines
// from a container's config file; the simulator models it by this name.
const RemoveRawLXCName = "phoenix/remove-raw-lxc"

//go:embed remove-raw-lxc.sh
var removeRawLXCBody string

// RemoveRawLXCScript is the removal of lines from container vmid's config.
func RemoveRawLXCScript(vmid int, lines [][2]string) (reconciler.Script, error) {
	var text []string
	for _, l := range lines {
		line := l[0] + ": " + l[1]
		if !strings.HasPrefix(l[0], "lxc.") || strings.ContainsAny(line, "\n\r") {
			return reconciler.Script{}, fmt.Errorf("%q is not a raw lxc line phoenix removes", line)
		}
		text = append(text, line)
	}
	return reconciler.Script{Name: RemoveRawLXCName, Body: removeRawLXCBody,
		Env: map[string]string{"PHOENIX_VMID": strconv.Itoa(vmid), "PHOENIX_LINES": strings.Join(text, "\n")}}, nil
}

// RemoveRawLXC removes raw lxc.* lines from a container's config file on the
// node, under Proxmox VE's config lock.
func (o Ops) RemoveRawLXC(ctx context.Context, vmid int, lines [][2]string) error {
	s, err := RemoveRawLXCScript(vmid, lines)
	if err != nil {
		return o.invalid(err)
	}
	argv, err := HostArgv(s)
	if err != nil {
		return o.invalid(err)
	}
	// A set, as pct set is: any failure is one, its text classified.
	_, err = o.do(ctx, OpSet, argv, nil)
	return err
}
