package reconciler

import (
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/phoenixhv/phoenix/spec"
)

// Ownership. The phoenix-managed tag says that some phoenix made a guest; the
// record in its description says which deployment, and at which VMID. A copy
// of a managed guest carries both, because Proxmox copies tags and
// description: a clone made by hand in the web UI, a backup restored under a
// new VMID. So a deployment changes and deletes a guest only when its record
// names that deployment and the guest's own VMID. Every other guest with the
// tag is foreign: shown in the plan with the reason, never touched, and taken
// over only where a spec says adopt: true.
//
// Records written before ownership was recorded (state version 1 and 2)
// name no deployment. Such a guest is still the guest it was made as when a
// spec of this deployment names that guest (the same name and kind) at its
// VMID, and its record is stamped with the owner the next time phoenix
// writes it. Anywhere else phoenix cannot tell whose it is, and never
// deletes it.

// deploymentOf is the deployment a resolution's guests belong to.
func deploymentOf(res *spec.Resolution) string {
	if res.Deployment == "" {
		return spec.DefaultDeployment
	}
	return res.Deployment
}

// foreignGuest says why a guest carrying the tag is not this deployment's:
// reason for the plan and hint for what a person can do about it. The zero
// value is a guest the deployment owns.
type foreignGuest struct {
	reason, hint string
}

// isVM reports a guest that is not a container: phoenix manages containers,
// and a tag does not make a VM one.
func isVM(og *ObservedGuest) bool { return og.Type != "" && og.Type != "lxc" }

// ownership decides whether dep owns og. named is the spec's guest that
// names og's VMID (as its VMID or a renewal VMID), nil when none does.
func ownership(og *ObservedGuest, dep string, named *spec.Resolved) foreignGuest {
	adopt := func(what string) string {
		return fmt.Sprintf("if %s is to be this deployment's, name it in a Template or Container spec at VMID %d with adopt: true", what, og.VMID)
	}
	st := og.State
	switch {
	case isVM(og):
		return foreignGuest{reason: fmt.Sprintf("it is a VM (%s), and phoenix manages containers only, whatever a VM's tags say", og.Type),
			hint: "delete it in Proxmox if it is not wanted"}
	case !og.Managed:
		return foreignGuest{reason: fmt.Sprintf("it has no %s tag", ManagedTag), hint: adopt("it")}
	case errors.As(og.StateErr, new(*NewerStateError)):
		return foreignGuest{reason: og.StateErr.Error(), hint: "run a phoenix as new as the one that wrote it"}
	case og.StateErr != nil:
		if named != nil && og.Name == named.Hostname {
			return foreignGuest{}
		}
		return foreignGuest{reason: fmt.Sprintf("its phoenix record is damaged (%v), so no deployment can be told from it", og.StateErr),
			hint: fmt.Sprintf("delete it by hand (pct destroy %d) if it is not wanted, or %s", og.VMID, adopt("it"))}
	case st == nil:
		if named != nil && og.Name == named.Hostname {
			// Tagged by hand, the way an older phoenix let a guest be
			// adopted, and named by the spec.
			return foreignGuest{}
		}
		return foreignGuest{reason: fmt.Sprintf("it carries the %s tag but no phoenix record: phoenix did not make it", ManagedTag),
			hint: fmt.Sprintf("remove the tag, or %s", adopt("it"))}
	case st.Dep == "":
		if named != nil && st.Kind == string(named.Kind) && (st.Name == named.Name || og.Name == named.Hostname) {
			return foreignGuest{}
		}
		return foreignGuest{reason: fmt.Sprintf("its record (of %s %s) was written by a phoenix older than ownership records, and no spec of this deployment names that guest at VMID %d, so phoenix cannot tell whose it is",
			st.Kind, st.Name, og.VMID),
			hint: fmt.Sprintf("delete it by hand (pct destroy %d) if it is no longer wanted, or %s", og.VMID, adopt("it"))}
	case st.Dep != dep:
		return foreignGuest{reason: fmt.Sprintf("its record says phoenix deployment %q made it, and this is deployment %q", st.Dep, dep),
			hint: fmt.Sprintf("it is that deployment's to change or delete; if this deployment was renamed, set the Cluster's spec.deployment: %s", st.Dep)}
	case st.VMID != og.VMID && st.Kind == string(spec.KindTemplate) && !og.Template:
		return foreignGuest{reason: fmt.Sprintf("it is a hand-made clone of template %s (its record was made at VMID %d and came with the clone)", st.Name, st.VMID),
			hint: adopt("the clone")}
	case st.VMID != og.VMID:
		return foreignGuest{reason: fmt.Sprintf("it is a copy of %s %s made outside phoenix, a hand-made clone or a restored backup (its record was made at VMID %d)", st.Kind, st.Name, st.VMID),
			hint: adopt("the copy")}
	}
	return foreignGuest{}
}

// foreign reports whether the decision is that the guest is not owned.
func (f foreignGuest) foreign() bool { return f.reason != "" }

// specAt is the spec's guest that names a VMID, as its VMID or as one of its
// renewal VMIDs, or nil.
func specAt(res *spec.Resolution, vmid int) *spec.Resolved {
	r, _ := res.At(vmid)
	return r
}

// adopts reports whether a guest's spec takes over what holds its VMID.
func adopts(r *spec.Resolved) bool { return r.Guest != nil && r.Guest.Spec.Adopt }

// ownedState is the record of a guest phoenix makes now: this deployment's,
// at the VMID it is made at.
func ownedState(res *spec.Resolution, r *spec.Resolved, vmid, generation int) *State {
	return &State{V: StateVersion, Name: r.Name, Kind: string(r.Kind), Parent: r.Parent, Generation: generation,
		Dep: deploymentOf(res), VMID: vmid}
}

// adoptedState is the record an adopted guest gets: this deployment's, for
// the spec's guest. The feature records it had are kept: which of them are
// trusted is decided as for any guest (made on it, or inherited by the
// lineage); the others are checked again.
func adoptedState(res *spec.Resolution, r *spec.Resolved, og *ObservedGuest) *State {
	st := ownedState(res, r, og.VMID, 0)
	if og.State != nil {
		st.Features = maps.Clone(og.State.Features)
	}
	return st
}

// adoptedTags are a guest's tags with phoenix's added, as Proxmox stores them.
func adoptedTags(og *ObservedGuest) string {
	return strings.Join(spec.NormalizeTags([]string{og.Config.Values["tags"], ManagedTag}), ";")
}

// adopted is a guest as it will be once adopted: tagged, with its new record.
func adopted(res *spec.Resolution, r *spec.Resolved, og *ObservedGuest) *ObservedGuest {
	c := *og
	c.Config = Config{Values: maps.Clone(og.Config.Values), LXC: og.Config.LXC, Digest: og.Config.Digest}
	if c.Config.Values == nil {
		c.Config.Values = map[string]string{}
	}
	c.Config.Values["tags"] = adoptedTags(og)
	c.Tags = strings.Split(c.Config.Values["tags"], ";")
	c.Managed = true
	c.State, c.StateErr = adoptedState(res, r, og), nil
	return &c
}

// stampOwner gives a record written by an older phoenix its owner, the
// next time phoenix writes it; such a record reaches a write only where
// the plan found the guest this deployment's.
func stampOwner(s *State, dep string, vmid int) {
	if s.Dep == "" {
		s.Dep, s.VMID = dep, vmid
	}
}

// DefaultPruneMax caps the default number of guests one prune deletes.
const DefaultPruneMax = 10

// pruneLimit is the most guests one prune may delete, of a deployment that
// has owned guests, and how the plan names that limit.
func pruneLimit(opts PlanOptions, owned int) (int, string) {
	if opts.PruneMax > 0 {
		return opts.PruneMax, fmt.Sprintf("--prune-max %d", opts.PruneMax)
	}
	limit := min(max(owned/4, 1), DefaultPruneMax)
	return limit, fmt.Sprintf("the default limit of %d (a quarter of its guests, at least 1, at most %d)", limit, DefaultPruneMax)
}
