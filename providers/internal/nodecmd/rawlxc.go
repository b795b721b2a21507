package nodecmd

import (
	"context"
	_ "embed"
	"fmt"
	"maps"
	"regexp"
	"slices"
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
	_, err = o.do(ctx, OpSet, argv, nil, nil)
	return err
}

// SetRawLXCName is the name of the script that sets the raw lxc.* keys
// phoenix owns in a container's config file; the simulator models it by
// this name.
const SetRawLXCName = "phoenix/set-raw-lxc"

//go:embed set-raw-lxc.sh
var setRawLXCBody string

// SetRawLXCScript makes container vmid's config hold exactly keys' values
// for each key (none for an empty list), in order.
func SetRawLXCScript(vmid int, keys map[string][]string) (reconciler.Script, error) {
	if len(keys) == 0 {
		return reconciler.Script{}, fmt.Errorf("no raw keys to set")
	}
	var names, text []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if !rawKey.MatchString(k) {
			return reconciler.Script{}, fmt.Errorf("%q is not a raw lxc key phoenix sets", k)
		}
		names = append(names, k)
		for _, v := range keys[k] {
			if v == "" || strings.TrimSpace(v) != v || strings.ContainsAny(v, "\n\r") {
				return reconciler.Script{}, fmt.Errorf("%q is not a raw lxc value phoenix writes for %s", v, k)
			}
			text = append(text, k+": "+v)
		}
	}
	return reconciler.Script{Name: SetRawLXCName, Body: setRawLXCBody,
		Env: map[string]string{"PHOENIX_VMID": strconv.Itoa(vmid), "PHOENIX_KEYS": strings.Join(names, "\n"), "PHOENIX_LINES": strings.Join(text, "\n")}}, nil
}

// rawKey is the key of a raw line as pve-container's parse_pct_config reads it.
var rawKey = regexp.MustCompile(`^lxc\.[a-z0-9_\-.]+$`)

// SetRawLXC sets the raw lxc.* keys phoenix owns in a container's config
// file on the node, under Proxmox VE's config lock, and reads them back.
func (o Ops) SetRawLXC(ctx context.Context, vmid int, keys map[string][]string) error {
	s, err := SetRawLXCScript(vmid, keys)
	if err != nil {
		return o.invalid(err)
	}
	argv, err := HostArgv(s)
	if err != nil {
		return o.invalid(err)
	}
	_, err = o.do(ctx, OpSet, argv, nil, nil)
	return err
}
