package sim

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// setRawScript runs phoenix's set-raw-lxc script by name on the node, the
// way the provider does (the simulator models it by its name).
func (l *lab) setRaw(vmid string, keys, lines string) sshResult {
	l.t.Helper()
	return l.script("pve1", 0, "phoenix/set-raw-lxc", "", "exit 99", "PHOENIX_VMID="+vmid, "PHOENIX_KEYS="+keys, "PHOENIX_LINES="+lines)
}

func rawLinesOf(cfg map[string]any) [][2]string {
	var out [][2]string
	list, _ := cfg["lxc"].([]any)
	for _, e := range list {
		kv := e.([]any)
		out = append(out, [2]string{kv[0].(string), kv[1].(string)})
	}
	return out
}

// TestRawLXCLinesLiveInTheConfigFile: raw keys are set only on the node; the
// owned keys end with exactly the given lines, others stay; a key Proxmox
// does not parse never shows; a clone copies the lines.
func TestRawLXCLinesLiveInTheConfigFile(t *testing.T) {
	l := startLab(t, "small.yaml", func(w *World) {
		w.Spec.Guests = append(w.Spec.Guests, WorldGuest{VMID: 102, Name: "raw", Node: "pve1",
			Config: map[string]string{"unprivileged": "1", "lxc.cgroup2.devices.allow": "c 10:200 rwm", "lxc.apparmor.profile": "generated"}})
	})
	err := l.token.Put(t.Context(), ctPath("pve1", 102, "/config"), map[string]any{"lxc.apparmor.profile": "unconfined"}, nil)
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("a raw key through the API: %v", err)
	}
	wantExit(t, "set", l.setRaw("102", "lxc.apparmor.profile\nlxc.mount.auto\nlxc.made.up",
		"lxc.apparmor.profile: unconfined\nlxc.mount.auto: sys:rw\nlxc.mount.auto: cgroup:rw\nlxc.made.up: 1"), 0)
	want := [][2]string{{"lxc.cgroup2.devices.allow", "c 10:200 rwm"}, {"lxc.apparmor.profile", "unconfined"}, {"lxc.mount.auto", "sys:rw"}, {"lxc.mount.auto", "cgroup:rw"}}
	if diff := cmp.Diff(want, rawLinesOf(l.config("pve1", 102))); diff != "" {
		t.Errorf("raw lines (-want +got):\n%s", diff)
	}
	wantExit(t, "set none", l.setRaw("102", "lxc.mount.auto", ""), 0)
	if diff := cmp.Diff(want[:2], rawLinesOf(l.config("pve1", 102))); diff != "" {
		t.Errorf("raw lines after an empty set (-want +got):\n%s", diff)
	}
	wantExit(t, "a missing container", l.setRaw("999", "lxc.mount.auto", ""), 2, "Configuration file '/etc/pve/lxc/999.conf' does not exist")
}

// TestIDMapNeedsRootsSubIDs: a custom id map starts only when /etc/subuid
// and /etc/subgid let root map its host ids; otherwise the start task
// fails as vm_start does, with LXC's error in its log.
func TestIDMapNeedsRootsSubIDs(t *testing.T) {
	idmap := "lxc.idmap: u 0 100000 65536\nlxc.idmap: g 0 100000 33\nlxc.idmap: g 33 33 1\nlxc.idmap: g 34 100034 65502"
	for name, tc := range map[string]struct {
		subgid []string
		ok     bool
		ids    string
	}{
		"a Proxmox VE install's files refuse gid 33": {ok: false, ids: "u 100000 65536\ng 100000 65536\n"},
		"root:33:1 in /etc/subgid allows it":         {subgid: []string{"root:100000:65536", "root:33:1"}, ok: true, ids: "u 100000 65536\ng 100000 65536\ng 33 1\n"},
	} {
		t.Run(name, func(t *testing.T) {
			l := startLab(t, "small.yaml", func(w *World) { w.Spec.Nodes[0].SubGID = tc.subgid })
			if r := l.script("pve1", 0, "phoenix/subids", "", "exit 99"); r.code != 0 || r.stdout != tc.ids {
				t.Errorf("subids: %v, want %q", r, tc.ids)
			}
			l.create("pve1", 103, nil)
			wantExit(t, "set", l.setRaw("103", "lxc.idmap", idmap), 0)
			data, err := l.post(ctPath("pve1", 103, "/status/start"), nil)
			if err != nil {
				t.Fatal(err)
			}
			upid := data.(string)
			var st map[string]any
			l.poll("start", func() bool {
				l.get("/nodes/pve1/tasks/"+url.PathEscape(upid)+"/status", &st)
				return st["status"] == "stopped"
			})
			if tc.ok {
				if st["exitstatus"] != "OK" {
					t.Fatalf("start: %v", st["exitstatus"])
				}
				return
			}
			if st["exitstatus"] != "startup for container '103' failed" {
				t.Fatalf("start: %v", st["exitstatus"])
			}
			var log []map[string]any
			l.get("/nodes/pve1/tasks/"+url.PathEscape(upid)+"/log", &log)
			var text []string
			for _, e := range log {
				text = append(text, e["t"].(string))
			}
			if !strings.Contains(strings.Join(text, "\n"), `newgidmap failed to write mapping "newgidmap: gid range [33-34) -> [33-34) not allowed"`) {
				t.Errorf("task log:\n%s", strings.Join(text, "\n"))
			}
		})
	}
}

// TestPrivilegedFeaturesAreRootsOnly: on a privileged container every
// features change is root@pam's, nesting too (check_ct_modify_config_perm).
func TestPrivilegedFeaturesAreRootsOnly(t *testing.T) {
	l := startLab(t, "small.yaml", nil)
	l.create("pve1", 104, map[string]any{"unprivileged": 0})
	err := l.token.Put(t.Context(), ctPath("pve1", 104, "/config"), map[string]any{"features": "nesting=1"}, nil)
	if err == nil {
		t.Error("a token changed a privileged container's nesting")
	}
	if err := l.root.Put(t.Context(), ctPath("pve1", 104, "/config"), map[string]any{"features": "nesting=1,fuse=1"}, nil); err != nil {
		t.Errorf("root@pam: %v", err)
	}
	l.create("pve1", 105, nil)
	if err := l.token.Put(t.Context(), ctPath("pve1", 105, "/config"), map[string]any{"features": "nesting=1"}, nil); err != nil {
		t.Errorf("a token, nesting of an unprivileged container: %v", err)
	}
}
