package reconciler

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/spec"
)

// lineageDeployment is the deployment of the lineage specs: their Cluster's name.
const lineageDeployment = "c"

// ownRecord is the record phoenix writes into a Container it makes for the
// lineage's deployment at vmid.
func ownRecord(name string, vmid int) *State {
	return &State{V: StateVersion, Name: name, Kind: "Container", Dep: lineageDeployment, VMID: vmid}
}

// tagged is a container carrying phoenix's tag, with a record (or none).
func tagged(vmid int, name string, st *State) *ObservedGuest {
	return &ObservedGuest{GuestSummary: GuestSummary{VMID: vmid, Type: "lxc", Node: "pve1", Name: name, Status: "running", Tags: []string{ManagedTag}},
		Managed: true, Config: Config{Values: map[string]string{"tags": ManagedTag}}, State: st}
}

// TestOwnership: with --prune, only this deployment's own guests are
// deleted; every other guest carrying the tag is listed as foreign with the
// reason, and a spec's VMID held by one is a conflict until the spec adopts it.
func TestOwnership(t *testing.T) {
	res := resolve(t, lineage)
	adopting := resolve(t, strings.Replace(lineage, "  features: [vllm]\n", "  features: [vllm]\n  adopt: true\n", 1))
	unchanged := map[string][]string{"base": {"no-op"}, "gpu": {"no-op"}, "app": {"no-op"}}
	with := func(extra map[string][]string) map[string][]string {
		out := map[string][]string{}
		for k, v := range unchanged {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	cases := map[string]struct {
		mutate func(o *Observed)
		res    *spec.Resolution
		want   map[string][]string
	}{
		"its own orphan is deleted": {
			mutate: func(o *Observed) { o.Guests[960] = tagged(960, "old", ownRecord("old", 960)) },
			want:   with(map[string][]string{"old": {"delete", "delete"}}),
		},
		"a hand-made clone of a template is foreign": {
			mutate: func(o *Observed) {
				st := *o.Guests[901].State
				o.Guests[5001] = tagged(5001, "my-copy", &st)
			},
			want: with(map[string][]string{"my-copy": {"no-op", "note: not this deployment's: it is a hand-made clone of template gpu (its record was made at VMID 901 and came with the clone). " +
				"phoenix never changes or deletes it; if the clone is to be this deployment's, name it in a Template or Container spec at VMID 5001 with adopt: true"}}),
		},
		"a restored backup under a new VMID is foreign": {
			mutate: func(o *Observed) {
				st := *o.Guests[950].State
				o.Guests[5950] = tagged(5950, "app-restored", &st)
			},
			want: with(map[string][]string{"app-restored": {"no-op", "note: not this deployment's: it is a copy of Container app made outside phoenix, a hand-made clone or a restored backup (its record was made at VMID 950). " +
				"phoenix never changes or deletes it; if the copy is to be this deployment's, name it in a Template or Container spec at VMID 5950 with adopt: true"}}),
		},
		"another deployment's guest is foreign": {
			mutate: func(o *Observed) {
				st := ownRecord("theirs", 700)
				st.Dep = "team-b"
				o.Guests[700] = tagged(700, "theirs", st)
			},
			want: with(map[string][]string{"theirs": {"no-op", `note: not this deployment's: its record says phoenix deployment "team-b" made it, and this is deployment "c". ` +
				"phoenix never changes or deletes it; it is that deployment's to change or delete; if this deployment was renamed, set the Cluster's spec.deployment: team-b"}}),
		},
		"a VM with the tag is never a delete candidate": {
			mutate: func(o *Observed) {
				vm := tagged(300, "windows", nil)
				vm.Type, vm.Config = "qemu", Config{}
				o.Guests[300] = vm
			},
			want: with(map[string][]string{"windows": {"no-op", "note: not this deployment's: it is a VM (qemu), and phoenix manages containers only, whatever a VM's tags say. " +
				"phoenix never changes or deletes it; delete it in Proxmox if it is not wanted"}}),
		},
		"a record from an older phoenix no spec names is never deleted": {
			mutate: func(o *Observed) {
				st := ownRecord("retired", 970)
				st.Dep, st.VMID, st.V = "", 0, 2
				o.Guests[970] = tagged(970, "retired", st)
			},
			want: with(map[string][]string{"retired": {"no-op", "note: not this deployment's: its record (of Container retired) was written by a phoenix older than ownership records, " +
				"and no spec of this deployment names that guest at VMID 970, so phoenix cannot tell whose it is. phoenix never changes or deletes it; " +
				"delete it by hand (pct destroy 970) if it is no longer wanted, or if it is to be this deployment's, name it in a Template or Container spec at VMID 970 with adopt: true"}}),
		},
		"a tag without a record is not phoenix's making": {
			mutate: func(o *Observed) { o.Guests[971] = tagged(971, "tagged-by-hand", nil) },
			want: with(map[string][]string{"tagged-by-hand": {"no-op", "note: not this deployment's: it carries the phoenix-managed tag but no phoenix record: phoenix did not make it. " +
				"phoenix never changes or deletes it; remove the tag, or if it is to be this deployment's, name it in a Template or Container spec at VMID 971 with adopt: true"}}),
		},
		"a spec's VMID held by another deployment's guest is a conflict": {
			mutate: func(o *Observed) { o.Guests[950].State.Dep = "team-b" },
			want: with(map[string][]string{"app": {"no-op", `error [conflict]: VMID 950 is held by container "app" on pve1, which is not this deployment's: ` +
				`its record says phoenix deployment "team-b" made it, and this is deployment "c"; phoenix never touches it: pick another vmid, or set adopt: true in its spec to have phoenix take it over`}}),
		},
		"a spec's VMID held by a copy, adopted": {
			mutate: func(o *Observed) { o.Guests[950].State.VMID, o.Guests[950].State.Dep = 9950, lineageDeployment },
			res:    adopting,
			want:   with(map[string][]string{"app": {"adopt", "adopt"}}),
		},
		"an untagged guest at a spec's VMID, adopted: tagged, then converged": {
			mutate: func(o *Observed) {
				g := o.Guests[950]
				g.Managed, g.State = false, nil
				g.Config.Values["tags"] = strings.ReplaceAll(g.Config.Values["tags"], ManagedTag, "")
				g.Config.Values["cores"] = "3"
			},
			res: adopting,
			// Its features were never recorded: each is checked again.
			want: with(map[string][]string{"app": {"adopt", "adopt", "update cores", "install base", "install nvidia-driver", "install cuda-toolkit", "install vllm"}}),
		},
		"a VM at a spec's VMID is never adopted": {
			mutate: func(o *Observed) { o.Guests[950].Type = "qemu" },
			res:    adopting,
			want:   with(map[string][]string{"app": {"no-op", `error [conflict]: VMID 950 is held by the VM "app"; phoenix never touches it: pick another vmid`}}),
		},
		"a record from an older phoenix at the spec's VMID is still that guest": {
			mutate: func(o *Observed) {
				for _, g := range o.Guests {
					g.State.Dep, g.State.VMID, g.State.V = "", 0, 2
				}
			},
			want: unchanged,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := res
			if tc.res != nil {
				r = tc.res
			}
			obs := converged(res, "580.76.05")
			for _, g := range obs.Guests {
				g.State.Dep, g.State.VMID = lineageDeployment, g.VMID
			}
			tc.mutate(obs)
			p := MakePlan(r, obs, PlanOptions{Prune: true})
			if diff := cmp.Diff(tc.want, brief(p)); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			for _, g := range p.Guests {
				foreignNote := len(g.Notes) > 0 && strings.HasPrefix(g.Notes[0], "not this deployment's")
				if foreignNote != (g.Foreign != "" && g.VMID != 950) {
					t.Errorf("%s (%d): foreign %q, notes %q", g.Name, g.VMID, g.Foreign, g.Notes)
				}
			}
		})
	}
}

// TestPruneLimit: a prune that would delete more of the deployment's guests
// at once than the limit deletes none, each saying the count and the flag;
// within the limit each deletion says the count.
func TestPruneLimit(t *testing.T) {
	res := resolve(t, lineage)
	orphans := func(n int) *Observed {
		obs := converged(res, "580.76.05")
		for i := range n {
			vmid := 960 + i
			obs.Guests[vmid] = tagged(vmid, fmt.Sprintf("old-%d", i), ownRecord(fmt.Sprintf("old-%d", i), vmid))
		}
		return obs
	}
	deletes := func(p *Plan) (n int, reasons, problems []string) {
		for _, g := range p.Guests {
			if g.Action == Delete {
				n++
				reasons = append(reasons, g.Changes[0].Reason)
			}
			for _, e := range g.Errors {
				problems = append(problems, string(e.Kind)+": "+e.Message)
			}
		}
		return n, reasons, problems
	}
	// 3 spec guests and 1 orphan: the default limit is 1 (a quarter of 4).
	n, reasons, problems := deletes(MakePlan(res, orphans(1), PlanOptions{Prune: true}))
	if n != 1 || len(problems) != 0 || reasons[0] != "managed by phoenix and in no spec; it is stopped first (this prune deletes 1 of the deployment's 4 guests; the limit is 1)" {
		t.Errorf("one orphan of four: %d deletes %q, problems %q", n, reasons, problems)
	}
	// 3 spec guests and 5 orphans: 5 of 8 would go, more than 2.
	n, _, problems = deletes(MakePlan(res, orphans(5), PlanOptions{Prune: true}))
	want := "flag: prune refused: it would delete 5 of the deployment's 8 guests at once, more than the default limit of 2 (a quarter of its guests, at least 1, at most 10); nothing is deleted. If that is meant, run with --prune-max 5"
	if n != 0 || len(problems) != 5 || problems[0] != want {
		t.Errorf("five orphans of eight: %d deletes, problems %q", n, problems)
	}
	// The flag raises the limit.
	if n, _, problems = deletes(MakePlan(res, orphans(5), PlanOptions{Prune: true, PruneMax: 5})); n != 5 || len(problems) != 0 {
		t.Errorf("--prune-max 5: %d deletes, problems %q", n, problems)
	}
	if n, _, problems = deletes(MakePlan(res, orphans(5), PlanOptions{Prune: true, PruneMax: 4})); n != 0 || len(problems) != 5 || !strings.Contains(problems[0], "more than --prune-max 4") {
		t.Errorf("--prune-max 4: %d deletes, problems %q", n, problems)
	}
	// Foreign guests neither count nor go.
	obs := orphans(1)
	for i := range 20 {
		st := ownRecord("theirs", 700+i)
		st.Dep = "team-b"
		obs.Guests[700+i] = tagged(700+i, fmt.Sprintf("theirs-%d", i), st)
	}
	if n, reasons, problems = deletes(MakePlan(res, obs, PlanOptions{Prune: true})); n != 1 || len(problems) != 0 || !strings.Contains(reasons[0], "1 of the deployment's 4 guests") {
		t.Errorf("with another deployment's 20 guests: %d deletes %q, problems %q", n, reasons, problems)
	}
	// A held prune deletes nothing and says why.
	p := MakePlan(res, orphans(1), PlanOptions{Prune: true, PruneHold: "the spec files changed 3s ago"})
	if n, _, _ = deletes(p); n != 0 {
		t.Errorf("a held prune deletes %d", n)
	}
	if g, _ := p.Guest("old-0"); len(g.Notes) != 1 || g.Notes[0] != "managed by phoenix and in no spec, but this pass deletes nothing: the spec files changed 3s ago" {
		t.Errorf("held: %+v", g)
	}
}

// TestStateVersions: version 3 records the owner, version 4 the revision
// and the durations; older versions read as records without them, and are
// written back as version 4. A newer version's block, whatever fields it
// has, is refused as newer, not as damaged.
func TestStateVersions(t *testing.T) {
	for _, v := range []int{1, 2, 3} {
		_, st, err := ParseDescription(fmt.Sprintf("notes\n<!-- phoenix:state\n{\"v\":%d,\"name\":\"app\",\"kind\":\"Container\"}\n-->", v))
		if err != nil || st.Dep != "" || st.VMID != 0 || st.Rev != "" || st.Took != nil {
			t.Errorf("version %d: %+v %v", v, st, err)
		}
	}
	desc := RenderDescription("notes", &State{V: 1, Name: "app", Kind: "Container", Dep: "homelab", VMID: 950})
	if !strings.Contains(desc, `{"v":4,"name":"app","kind":"Container","dep":"homelab","vmid":950}`) {
		t.Errorf("rendered %q", desc)
	}
	_, st, err := ParseDescription(desc)
	if err != nil || st.Dep != "homelab" || st.VMID != 950 {
		t.Errorf("read back %+v %v", st, err)
	}
	for _, block := range []string{
		`{"v":5,"name":"app","kind":"Container"}`,
		`{"v":5,"name":"app","kind":"Container","later":{"field":1}}`,
	} {
		if _, _, err := ParseDescription("<!-- phoenix:state\n" + block + "\n-->"); err == nil || !strings.Contains(err.Error(), "reads versions 1 to 4") {
			t.Errorf("%s: %v", block, err)
		}
	}
}

// A record a newer phoenix wrote is left alone, even on a guest the specs
// name: writing it back would drop the fields this phoenix does not know.
func TestNewerRecordIsLeftAlone(t *testing.T) {
	res := examples(t)
	obs := converged(res, "580.76.05")
	og := obs.Guests[960]
	_, og.State, og.StateErr = ParseDescription("<!-- phoenix:state\n{\"v\":99,\"name\":\"nginx\",\"kind\":\"Container\",\"later\":1}\n-->")
	og.Config.Values["cores"] = "3"
	g, _ := MakePlan(res, obs, PlanOptions{}).Guest("nginx")
	if len(g.Changes) != 0 || len(g.Errors) != 1 || !strings.Contains(g.Errors[0].Message, "a newer phoenix wrote it") {
		t.Errorf("nginx with a version 99 record: changes %v, errors %+v", g.Changes, g.Errors)
	}
}
