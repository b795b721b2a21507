package sim

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

// The roles are pve-access-control's create_roles of $privgroups: PVEAuditor
// holds exactly the audit privileges of PVE 9.
func TestBuiltinRoles(t *testing.T) {
	got := slices.Sorted(func(yield func(string) bool) {
		for p := range builtinRoles["PVEAuditor"] {
			if !yield(p) {
				return
			}
		}
	})
	want := []string{"Datastore.Audit", "Mapping.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit", "VM.Audit", "VM.GuestAgent.Audit"}
	if !slices.Equal(got, want) {
		t.Errorf("PVEAuditor = %v, want %v", got, want)
	}
	if builtinRoles["PVEAdmin"]["Mapping.Modify"] || builtinRoles["PVEAdmin"]["Sys.Modify"] || !builtinRoles["PVEAdmin"]["VM.Allocate"] {
		t.Errorf("PVEAdmin = %v: want admin, user and audit privileges without Mapping.Modify or root ones", builtinRoles["PVEAdmin"])
	}
	if !builtinRoles["Administrator"]["Permissions.Modify"] || !builtinRoles["Administrator"]["Sys.Modify"] {
		t.Errorf("Administrator lacks root privileges: %v", builtinRoles["Administrator"])
	}
	if !builtinRoles["PVEVMUser"]["VM.PowerMgmt"] || builtinRoles["PVEVMUser"]["VM.Allocate"] {
		t.Errorf("PVEVMUser = %v", builtinRoles["PVEVMUser"])
	}
}

// compile_acl_path: a deeper ACL replaces what propagates from above.
func TestACLPrivileges(t *testing.T) {
	acl := []ACL{{Path: "/", Role: "PVEAuditor"}, {Path: "/vms/100", Role: "PVEVMAdmin"}, {Path: "/vms/101", Role: "NoAccess"}}
	for _, tc := range []struct {
		path, priv string
		want       bool
	}{
		{"/", "Sys.Audit", true},
		{"/vms/100", "VM.Config.Options", true},
		{"/vms/100", "VM.Audit", true},
		{"/vms/1000", "VM.Config.Options", false},
		{"/vms/1000", "VM.Audit", true},
		{"/vms/101", "VM.Audit", false},
		{"/storage/local", "Datastore.Audit", true},
		{"/storage/local", "Datastore.AllocateSpace", false},
	} {
		if got := aclPrivileges(acl, tc.path)[tc.priv]; got != tc.want {
			t.Errorf("%s %s = %t, want %t", tc.path, tc.priv, got, tc.want)
		}
	}
}

const auditorTokens = "  users:\n    tokens:\n" +
	"      - {id: root@pam!phoenix}\n" +
	"      - {id: root@pam!audit, secret: 11111111-2222-3333-4444-555555555555, privsep: true, acl: [{path: /, role: PVEAuditor}]}\n" +
	"      - {id: root@pam!full, secret: 11111111-2222-3333-4444-666666666666}\n" +
	"      - {id: root@pam!none, secret: 11111111-2222-3333-4444-777777777777, privsep: true}\n"

// An audit-only token reads what phoenix observes, and every write is
// refused with 403 and PVE's text before its parameters are looked at; a
// token without privilege separation keeps root@pam's privileges, and a
// separated one without an ACL has none.
func TestTokenPrivileges(t *testing.T) {
	_, c := startAPISim(t, worldWith(auditorTokens))
	as := func(id, secret string) *apiClient {
		o := *c
		o.token = id + "=" + secret
		return &o
	}
	audit := as("root@pam!audit", "11111111-2222-3333-4444-555555555555")
	full := as("root@pam!full", "11111111-2222-3333-4444-666666666666")
	none := as("root@pam!none", "11111111-2222-3333-4444-777777777777")

	for _, p := range []string{"/cluster/status", "/cluster/resources", "/nodes/pve1/status", "/nodes/pve1/lxc",
		"/nodes/pve1/lxc/100/config", "/nodes/pve1/lxc/100/pending", "/nodes/pve1/lxc/100/status/current",
		"/nodes/pve1/lxc/100/firewall/options", "/nodes/pve1/lxc/100/firewall/rules", "/nodes/pve1/lxc/100/snapshot",
		"/nodes/pve1/storage", "/nodes/pve1/storage/local/content", "/nodes/pve1/aplinfo", "/cluster/firewall/aliases"} {
		if r := audit.call("GET", p, nil); r.code != 200 {
			t.Errorf("auditor GET %s: %d %q", p, r.code, r.reason)
		}
	}
	if r := audit.call("GET", "/nodes/pve1/lxc", nil); len(r.data.([]any)) != 2 {
		t.Errorf("auditor's CT list: %v, want both CTs", r.data)
	}

	refusals := []struct {
		method, path string
		params       url.Values
		want         string
	}{
		{"PUT", "/nodes/pve1/lxc/100/config", url.Values{"memory": {"2048"}},
			"Permission check failed (/vms/100, VM.Config.Disk|VM.Config.CPU|VM.Config.Memory|VM.Config.Network|VM.Config.Options)"},
		// Privileges are checked before the parameters: a bad one changes nothing.
		{"PUT", "/nodes/pve1/lxc/100/config", url.Values{"memory": {"lots"}},
			"Permission check failed (/vms/100, VM.Config.Disk|VM.Config.CPU|VM.Config.Memory|VM.Config.Network|VM.Config.Options)"},
		{"POST", "/nodes/pve1/lxc/100/status/shutdown", nil, "Permission check failed (/vms/100, VM.PowerMgmt)"},
		{"POST", "/nodes/pve1/lxc/101/status/start", nil, "Permission check failed (/vms/101, VM.PowerMgmt)"},
		{"DELETE", "/nodes/pve1/lxc/101", nil, "Permission check failed (/vms/101, VM.Allocate)"},
		{"POST", "/nodes/pve1/lxc/100/snapshot", url.Values{"snapname": {"s1"}}, "Permission check failed (/vms/100, VM.Snapshot)"},
		{"POST", "/nodes/pve1/lxc/100/firewall/rules", url.Values{"type": {"in"}, "action": {"ACCEPT"}}, "Permission check failed (/vms/100, VM.Config.Network)"},
		{"POST", "/nodes/pve1/lxc/100/template", nil, "Permission check failed (/vms/100, VM.Allocate)"},
		{"PUT", "/nodes/pve1/lxc/100/resize", url.Values{"disk": {"rootfs"}, "size": {"+1G"}}, "Permission check failed (/vms/100, VM.Config.Disk)"},
		{"POST", "/nodes/pve1/lxc/100/clone", url.Values{"newid": {"200"}}, "Permission check failed (/vms/100, VM.Clone)"},
		{"POST", "/nodes/pve1/aplinfo", url.Values{"storage": {"local"}, "template": {"x"}}, "Permission check failed (/storage/local, Datastore.AllocateTemplate)"},
		// create_vm checks VM.Allocate itself, and names nothing.
		{"POST", "/nodes/pve1/lxc", url.Values{"vmid": {"300"}, "ostemplate": {ubuntu}}, "Permission check failed"},
		{"POST", "/nodes/pve1/lxc", url.Values{"vmid": {"300"}, "ostemplate": {ubuntu}, "unprivileged": {"0"}}, "Permission check failed (/, Sys.Modify)"},
	}
	for _, tc := range refusals {
		r := audit.call(tc.method, tc.path, tc.params)
		if r.code != 403 || r.reason != tc.want {
			t.Errorf("auditor %s %s: %d %q, want 403 %q", tc.method, tc.path, r.code, r.reason, tc.want)
		}
	}
	if cfg := full.config("pve1", 100); cfg["memory"] != float64(1024) {
		t.Errorf("memory changed by refused writes: %v", cfg["memory"])
	}

	// A full token writes as before.
	if r := full.call("PUT", "/nodes/pve1/lxc/100/config", url.Values{"memory": {"2048"}}); r.code != 200 {
		t.Errorf("full token: %d %q", r.code, r.reason)
	}
	// A separated token without an ACL sees no CT and reads nothing guarded.
	if r := none.call("GET", "/nodes/pve1/lxc", nil); r.code != 200 || len(r.data.([]any)) != 0 {
		t.Errorf("ACL-less token's CT list: %d %v, want none", r.code, r.data)
	}
	if r := none.call("GET", "/nodes/pve1/lxc/100/config", nil); r.code != 403 || r.reason != "Permission check failed (/vms/100, VM.Audit)" {
		t.Errorf("ACL-less token reads a config: %d %q", r.code, r.reason)
	}
	if r := none.call("GET", "/version", nil); r.code != 200 {
		t.Errorf("ACL-less token, /version (user: all): %d %q", r.code, r.reason)
	}
}

func TestTokenACLChecked(t *testing.T) {
	for body, want := range map[string]string{
		"      - {id: root@pam!a, privsep: true, acl: [{path: /, role: PVEAuditr}]}\n":    `role "PVEAuditr" is not one of`,
		"      - {id: root@pam!a, privsep: true, acl: [{path: vms, role: PVEAuditor}]}\n": `path "vms"`,
		"      - {id: root@pam!a, acl: [{path: /, role: PVEAuditor}]}\n":                  "acl without privsep",
	} {
		w, err := ParseWorld([]byte(worldWith("  users:\n    tokens:\n" + body)))
		if err == nil {
			err = CheckWorld(w)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", strings.TrimSpace(body), err, want)
		}
	}
}
