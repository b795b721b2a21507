package reconciler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/phoenixhv/phoenix/spec"
)

// Chores: the everyday things a person does to one running container of the
// deployment (restart it, run a command in it), done the way apply does
// them, and refused where apply would not touch the guest.

// ExecScriptName names the script a command run with ExecIn is, in a node's
// logs and in the simulator's journal.
const ExecScriptName = "phoenix/exec"

// ChoreGuest finds the running container of this deployment that a chore
// acts on: name is a Container of the specs (ignoring case, as names do).
// It refuses a guest that does not exist, is not phoenix's or not this
// deployment's, a template and a stopped container, each saying why; what
// is the chore, for the messages ("restart", "run commands in").
func ChoreGuest(res *spec.Resolution, obs *Observed, name, what string) (*ObservedGuest, *spec.Resolved, error) {
	r := guestNamed(res, name)
	if r == nil {
		return nil, nil, unknownGuest(res, obs, name, what)
	}
	if r.IsTemplate() {
		return nil, nil, fmt.Errorf("%s is a Template: phoenix does not %s a template (templates do not run)", r.Name, what)
	}
	og := obs.Guests[r.VMID]
	if og == nil {
		return nil, nil, fmt.Errorf("%s (Container %d) does not exist yet: phoenix apply makes it", r.Name, r.VMID)
	}
	if f := ownership(og, deploymentOf(res), r); f.foreign() {
		return nil, nil, fmt.Errorf("%s (VMID %d on %s) is not this deployment's: %s; phoenix does not %s it", r.Name, og.VMID, og.Node, f.reason, what)
	}
	switch {
	case og.Template:
		return nil, nil, fmt.Errorf("%s (VMID %d on %s) is a template: phoenix does not %s a template", r.Name, og.VMID, og.Node, what)
	case og.Status != "running" && r.Stopped:
		return nil, nil, fmt.Errorf("%s (Container %d on %s) is %s, as its spec says (state: stopped): phoenix does not %s a stopped container", r.Name, og.VMID, og.Node, og.Status, what)
	case og.Status != "running":
		return nil, nil, fmt.Errorf("%s (Container %d on %s) is %s: phoenix does not %s a stopped container; phoenix apply starts it", r.Name, og.VMID, og.Node, og.Status, what)
	}
	return og, r, nil
}

// guestNamed finds a spec's guest by name, ignoring case.
func guestNamed(res *spec.Resolution, name string) *spec.Resolved {
	for _, r := range res.Guests {
		if strings.EqualFold(r.Name, name) {
			return r
		}
	}
	return nil
}

// unknownGuest explains a name no spec defines: a guest of the cluster that
// is not the deployment's, or a name that is nowhere.
func unknownGuest(res *spec.Resolution, obs *Observed, name, what string) error {
	for _, vmid := range slices.Sorted(maps.Keys(obs.Guests)) {
		og := obs.Guests[vmid]
		if !strings.EqualFold(og.Name, name) {
			continue
		}
		if f := ownership(og, deploymentOf(res), nil); f.foreign() {
			return fmt.Errorf("%s (VMID %d on %s) is not this deployment's: %s; phoenix does not %s it", og.Name, vmid, og.Node, f.reason, what)
		}
		return fmt.Errorf("%s (VMID %d on %s) is in no spec of this deployment: phoenix does not %s it", og.Name, vmid, og.Node, what)
	}
	known := make([]string, 0, len(res.Guests))
	for _, r := range res.Guests {
		known = append(known, r.Name)
	}
	msg := fmt.Sprintf("no Container named %q in the specs", name)
	if best := spec.Closest(name, known); best != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", best)
	}
	return fmt.Errorf("%s", msg)
}

// RestartGuest reboots a running container of this deployment through the API
// and waits, as apply does after a start, until its network is up and its
// devices are there. opts are apply's: retries, the wait's bound, events.
func RestartGuest(ctx context.Context, cluster Cluster, nodes NodeOf, res *spec.Resolution, obs *Observed, name string, opts ApplyOptions) error {
	og, r, err := ChoreGuest(res, obs, name, "restart")
	if err != nil {
		return err
	}
	e := newEngine(cluster, nodes, res, obs, opts)
	g := GuestPlan{Name: r.Name, Kind: r.Kind, VMID: og.VMID, Node: og.Node, Action: Restart}
	if err := e.retry(ctx, g, Event{Action: Restart}, func() error { return cluster.Reboot(ctx, og.Node, og.VMID) }); err != nil {
		return fmt.Errorf("restart %s: %w", r.Name, err)
	}
	if err := e.waitInitialized(ctx, g, r); err != nil {
		return fmt.Errorf("restart %s: %w", r.Name, err)
	}
	return nil
}

// ExecIn runs argv inside a running container of this deployment, through
// the transport the feature steps use: pct exec on its node, /bin/sh
// running the words quoted, so that none is read by a shell. Each line the
// command prints (stdout and stderr) goes to output as it is printed. The
// Result holds its exit status.
func ExecIn(ctx context.Context, nodes NodeOf, res *spec.Resolution, obs *Observed, name string, argv []string, output func(string)) (Result, error) {
	og, _, err := ChoreGuest(res, obs, name, "run commands in")
	if err != nil {
		return Result{}, err
	}
	node, err := nodes(og.Node)
	if err != nil {
		return Result{}, err
	}
	return node.Exec(ctx, og.VMID, ExecScript(argv, output))
}

// ExecScript is the script that runs argv as it is: exec, then each word in
// single quotes, which a POSIX shell takes literally.
func ExecScript(argv []string, output func(string)) Script {
	words := make([]string, 0, len(argv)+1)
	words = append(words, "exec")
	for _, w := range argv {
		words = append(words, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
	}
	return Script{Name: ExecScriptName, Body: strings.Join(words, " "), Output: output}
}
