package reconciler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/phoenixhv/phoenix/reconciler/features"
	"github.com/phoenixhv/phoenix/spec"
)

// The actions: what each of the plan's changes does through the API and on
// the node. Each is safe to repeat: what it finds already done is success.

// execute carries out one change, with the details of the fresh plan g.
func (e *engine) execute(ctx context.Context, j *job, g GuestPlan, c Change, obs *Observed) error {
	r, _ := e.res.Guest(g.Name)
	og := obs.Guests[g.VMID]
	switch c.Action {
	case Create:
		return e.create(ctx, g, r)
	case Clone:
		return e.clone(ctx, g, r, obs)
	case UpdateConfig:
		return e.update(ctx, g, og, c.Fields)
	case Resize:
		return e.retry(ctx, g, Event{Action: Resize}, func() error {
			return e.cluster.Resize(ctx, g.Node, g.VMID, cmp.Or(c.Disk, "rootfs"), fmt.Sprintf("%dG", c.SizeGiB))
		})
	case Start:
		if err := e.retry(ctx, g, Event{Action: Start}, func() error { return e.cluster.Start(ctx, g.Node, g.VMID) }); err != nil {
			return err
		}
		j.ran = true
		return e.waitInitialized(ctx, g, r)
	case Restart:
		if len(c.Fields) > 0 {
			return e.restartForRaw(ctx, j, g, r, og, c.Fields)
		}
		if err := e.retry(ctx, g, Event{Action: Restart}, func() error { return e.cluster.Reboot(ctx, g.Node, g.VMID) }); err != nil {
			return err
		}
		j.ran = true
		return e.waitInitialized(ctx, g, r)
	case Stop:
		return e.retry(ctx, g, Event{Action: Stop}, func() error { return e.cluster.Shutdown(ctx, g.Node, g.VMID) })
	case RenewIdentity:
		if err := e.readyForScripts(ctx, j, g, r); err != nil {
			return err
		}
		return e.renewIdentity(ctx, g)
	case InstallFeature, ReinstallFeature:
		if err := e.readyForScripts(ctx, j, g, r); err != nil {
			return err
		}
		if err := e.install(ctx, g, r, c); err != nil {
			return err
		}
		j.result.Installed = append(j.result.Installed, c.Feature)
		return nil
	case UninstallFeature:
		if err := e.readyForScripts(ctx, j, g, r); err != nil {
			return err
		}
		if err := e.uninstall(ctx, g, r, c); err != nil {
			return err
		}
		j.result.Uninstalled = append(j.result.Uninstalled, c.Feature)
		return nil
	case ConvertToTemplate:
		if og.Status == "running" {
			if err := e.retry(ctx, g, Event{Action: ConvertToTemplate, Step: "shutdown"}, func() error {
				return e.cluster.Shutdown(ctx, g.Node, g.VMID)
			}); err != nil {
				return err
			}
		}
		return e.retry(ctx, g, Event{Action: ConvertToTemplate}, func() error { return e.cluster.ConvertToTemplate(ctx, g.Node, g.VMID) })
	case Adopt:
		return e.adopt(ctx, g, r, og)
	case Firewall:
		return e.convergeFirewall(ctx, g, r)
	case Directory:
		return e.makeDirectories(ctx, g, c.Fields)
	case Download:
		return e.download(ctx, g, r, obs)
	case TakeSnapshot:
		return e.snapshot(ctx, j, g, og, c)
	case WriteFile:
		if err := e.readyForScripts(ctx, j, g, r); err != nil {
			return err
		}
		return e.writeFile(ctx, g, r, c)
	case Service:
		if err := e.readyForScripts(ctx, j, g, r); err != nil {
			return err
		}
		return e.service(ctx, g, r, c)
	case Replace:
		// Destruction happens only where the approved plan showed it.
		if j.plan.Action != Replace {
			return withKind(ErrorChanged, fmt.Errorf("a replace of %s was not in the approved plan; run plan and apply again", g.Name))
		}
		return e.destroy(ctx, g, og)
	}
	return fmt.Errorf("the engine cannot %s", c.Action)
}

// readyForScripts makes sure a container that this apply did not start is
// initialised before scripts run in it: it may have been started a moment ago
// by someone else, and checking once is the race the waits avoid.
func (e *engine) readyForScripts(ctx context.Context, j *job, g GuestPlan, r *spec.Resolved) error {
	if j.ran {
		return nil
	}
	if err := e.waitInitialized(ctx, g, r); err != nil {
		return err
	}
	j.ran = true
	return nil
}

// rootOnly are the options Proxmox lets only a root@pam ticket set through the
// API; with any other session phoenix sets them with pct set on the node.
func rootOnly(key, value, before string) bool {
	switch {
	case strings.HasPrefix(key, "dev"), key == "hookscript":
		return true
	case strings.HasPrefix(key, "mp"):
		return bindMountValue(value)
	case key == "features":
		return featuresBeyondNesting(before, value)
	}
	return false
}

func featuresBeyondNesting(before, after string) bool {
	b, a := propString(before), propString(after)
	for _, k := range slices.Concat(slices.Collect(maps.Keys(b)), slices.Collect(maps.Keys(a))) {
		if k != "nesting" && b[k] != a[k] {
			return true
		}
	}
	return false
}

func (e *engine) create(ctx context.Context, g GuestPlan, r *spec.Resolved) error {
	d, _ := desiredConfig(r, e.hosts[r.Settings.Node])
	opts := createOptionsOf(d)
	// Born with its owner: this deployment's, at this VMID.
	desc, err := BoundedDescription("", ownedState(e.res, r, g.VMID, g.Generation))
	if err != nil {
		return err
	}
	opts["description"] = desc
	req := CreateRequest{Node: g.Node, VMID: g.VMID, OSTemplate: r.Settings.OSTemplate, Storage: r.Settings.Storage,
		DiskGiB: r.Settings.DiskGiB, Options: opts}
	err = e.retry(ctx, g, Event{Action: Create}, func() error { return e.cluster.Create(ctx, req) })
	// After a dropped connection the create may have happened: the next
	// observation tells whose guest holds the VMID.
	if errors.Is(err, ErrAlreadyExists) {
		return nil
	}
	return err
}

func (e *engine) clone(ctx context.Context, g GuestPlan, r *spec.Resolved, obs *Observed) error {
	parent, _ := e.res.Guest(r.Parent)
	src := obs.Guests[g.Source]
	// A clone of a Container is a full clone of its snapshot
	// (from.container, snapshots.go); any other is of a Template.
	fromSnapshot := r.Guest.Spec.From.Snapshot
	if src == nil || !src.Template && fromSnapshot == "" {
		return fmt.Errorf("template %s is not ready", r.Parent)
	}
	// The clone is born with its own identity, its owner (this deployment,
	// at its VMID: not the template's record that Proxmox copies) and the
	// template's records: the records are what it inherits.
	state := ownedState(e.res, r, g.VMID, g.Generation)
	state.Features, state.IdentityDue = maps.Clone(src.records()), !r.IsTemplate()
	if src.State != nil && src.StateErr == nil {
		state.Files = maps.Clone(src.State.Files)
	}
	// Proxmox's clone takes a description of any length, but every later
	// write of the record is held to the limit: so is this one.
	desc, err := BoundedDescription(src.User, state)
	if err != nil {
		return err
	}
	req := CloneRequest{Node: parent.Settings.Node, SourceVMID: g.Source, NewID: g.VMID, Hostname: r.Name,
		Description: desc, Full: r.Settings.CloneMode == spec.CloneFull, Snapshot: fromSnapshot}
	if r.Settings.Node != parent.Settings.Node {
		req.Target = r.Settings.Node
	}
	if req.Full && r.Guest.Spec.Storage != "" {
		req.Storage = r.Settings.Storage
	}
	// Proxmox locks the source for the whole clone: one at a time, and the
	// wait holds no slot (engine.hold).
	unlock, err := e.hold(ctx, fmt.Sprintf("clone %d", g.Source))
	if err != nil {
		return err
	}
	defer unlock()
	err = e.retry(ctx, g, Event{Action: Clone}, func() error { return e.cluster.Clone(ctx, req) })
	if errors.Is(err, ErrAlreadyExists) {
		return nil
	}
	return err
}

// update applies config fields: root-only ones through pct set on the node
// unless the session is root@pam's ticket, the rest through the API with the
// digest of what was observed.
func (e *engine) update(ctx context.Context, g GuestPlan, og *ObservedGuest, fields []FieldChange) error {
	set, del := map[string]string{}, []string{}
	rootSet, rootDel := map[string]string{}, []string{}
	var raw [][2]string
	fields, owned := ownedRawFields(fields, e.ownedRaw(g))
	for _, f := range fields {
		root := !e.cluster.RootSession() && (rootOnly(f.Key, f.After, f.Before) ||
			f.Key == "features" && rootOnlyFeatures(f.Before, f.After, og.Config.Values["unprivileged"] == "1"))
		switch {
		case isRawKey(f.Key):
			raw = append(raw, [2]string{f.Key, f.Before})
		case f.After == "" && root:
			rootDel = append(rootDel, f.Key)
		case f.After == "":
			del = append(del, f.Key)
		case root:
			rootSet[f.Key] = f.After
		default:
			set[f.Key] = f.After
		}
	}
	if len(set) > 0 || len(del) > 0 {
		// A digest that no longer matches fails at once (ErrConflict is not
		// retried here): the change is recomputed from a fresh observation.
		if err := e.retry(ctx, g, Event{Action: UpdateConfig}, func() error {
			err := e.cluster.SetConfig(ctx, g.Node, g.VMID, set, del, og.Config.Digest)
			if errors.Is(err, ErrConflict) {
				return backoff.Permanent(err)
			}
			return err
		}); err != nil {
			return err
		}
	}
	if err := e.setRaw(ctx, g, UpdateConfig, owned); err != nil {
		return err
	}
	if len(rootSet) == 0 && len(rootDel) == 0 && len(raw) == 0 {
		return nil
	}
	node, err := e.nodes(g.Node)
	if err != nil {
		return err
	}
	if len(rootSet) > 0 || len(rootDel) > 0 {
		if err := e.retry(ctx, g, Event{Action: UpdateConfig, Step: "pct set"}, func() error { return node.SetConfig(ctx, g.VMID, rootSet, rootDel) }); err != nil {
			return err
		}
	}
	if len(raw) > 0 {
		// No API removes raw lines: the file is edited on the node.
		return e.retry(ctx, g, Event{Action: UpdateConfig, Step: "remove raw lxc lines"}, func() error { return node.RemoveRawLXC(ctx, g.VMID, raw) })
	}
	return nil
}

// waitInitialized polls the started container until its network and devices
// are there: checking once right after the start is the race this avoids.
func (e *engine) waitInitialized(ctx context.Context, g GuestPlan, r *spec.Resolved) error {
	d, _ := desiredConfig(r, e.hosts[r.Settings.Node])
	node, err := e.nodes(g.Node)
	if err != nil {
		return err
	}
	return e.wait(ctx, g, Event{Action: Start}, node, features.Initialized(d.devices))
}

// destroy stops and deletes a guest that is replaced.
func (e *engine) destroy(ctx context.Context, g GuestPlan, og *ObservedGuest) error {
	if og == nil {
		return nil
	}
	if og.Config.Values["protection"] == "1" {
		return withKind(ErrorRefused, fmt.Errorf("%s has protection: 1; phoenix never deletes it", g.Name))
	}
	if og.Status == "running" {
		if err := e.retry(ctx, g, Event{Action: g.Action, Step: "shutdown"}, func() error { return e.cluster.Shutdown(ctx, g.Node, g.VMID) }); err != nil {
			return err
		}
	}
	return e.retry(ctx, g, Event{Action: g.Action, Step: "destroy"}, func() error { return e.cluster.Delete(ctx, g.Node, g.VMID) })
}

// delete removes a managed guest no spec wants (--prune), after checking
// once more that it is phoenix's.
func (e *engine) delete(ctx context.Context, j *job) error {
	g := j.plan
	start := time.Now()
	e.event(g, Event{Action: Delete, Outcome: Started, Reason: g.Changes[0].Reason})
	err := e.deleteManaged(ctx, g)
	if err != nil {
		e.event(g, Event{Action: Delete, Outcome: Failed, Duration: time.Since(start), Err: err})
		return err
	}
	j.result.Done++
	e.event(g, Event{Action: Delete, Outcome: Done, Duration: time.Since(start)})
	return nil
}

// deleteManaged deletes a guest once the cluster's listing shows it a
// container on its node, and its config still this deployment's own. A VM's
// VMID misses every container path, which would read as "already deleted":
// the listing tells, and a VM is refused.
func (e *engine) deleteManaged(ctx context.Context, g GuestPlan) error {
	var guests []GuestSummary
	if err := e.retry(ctx, g, Event{Action: Delete, Step: "observe"}, func() (err error) { guests, err = e.cluster.Guests(ctx); return err }); err != nil {
		return err
	}
	i := slices.IndexFunc(guests, func(s GuestSummary) bool { return s.VMID == g.VMID })
	if i < 0 {
		return nil // gone already: a delete is safe to repeat
	}
	st := guests[i]
	switch {
	case isVM(&ObservedGuest{GuestSummary: st}):
		return withKind(ErrorRefused, fmt.Errorf("VMID %d is a VM (%s), not a container: phoenix never deletes a VM", g.VMID, st.Type))
	case st.Node != g.Node:
		return withKind(ErrorChanged, fmt.Errorf("%s moved from %s to %s: not deleting it; plan again", g.Name, g.Node, st.Node))
	}
	cfg, err := e.cluster.GuestConfig(ctx, g.Node, g.VMID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !managedTags(cfg.Values["tags"]) {
		return withKind(ErrorChanged, fmt.Errorf("%s lost its %s tag: not deleting it", g.Name, ManagedTag))
	}
	og := &ObservedGuest{GuestSummary: st, Config: cfg, Managed: true}
	og.Template = cfg.Values["template"] == "1"
	og.User, og.State, og.StateErr = ParseDescription(cfg.Values["description"])
	if f := ownership(og, deploymentOf(e.res), specAt(e.res, g.VMID)); f.foreign() {
		return withKind(ErrorChanged, fmt.Errorf("%s is not this deployment's (%s): not deleting it", g.Name, f.reason))
	}
	return e.destroy(ctx, g, og)
}

// adopt takes a guest over: phoenix's tag and this deployment's record, in
// one write with the digest it was observed with, so that a guest that
// changed meanwhile is observed again rather than overwritten.
func (e *engine) adopt(ctx context.Context, g GuestPlan, r *spec.Resolved, og *ObservedGuest) error {
	if og == nil {
		return withKind(ErrorChanged, fmt.Errorf("VMID %d is empty now: there is nothing to adopt; plan again", g.VMID))
	}
	if isVM(og) {
		return withKind(ErrorRefused, fmt.Errorf("VMID %d is a VM: phoenix never adopts a VM", g.VMID))
	}
	desc, err := BoundedDescription(og.User, adoptedState(e.res, r, og))
	if err != nil {
		return err
	}
	set := map[string]string{"tags": adoptedTags(og), "description": desc}
	return e.retry(ctx, g, Event{Action: Adopt}, func() error {
		err := e.cluster.SetConfig(ctx, g.Node, g.VMID, set, nil, og.Config.Digest)
		if errors.Is(err, ErrConflict) {
			return backoff.Permanent(err)
		}
		return err
	})
}
