package sim

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/phoenixhv/phoenix/providers/pveapi"
)

// ACL is one entry of a token's own access control list (pveum acl modify
// PATH --tokens ID --roles ROLE): a built-in role on a path, which reaches
// every path below it (propagate=1, pveum's default; the simulator models
// no other).
type ACL struct {
	Path string `yaml:"path"`
	Role string `yaml:"role"`
}

// privGroups are the privileges Proxmox VE knows, by category and the tier
// of the role that holds them, as pve-access-control's
// src/PVE/AccessControl.pm $privgroups lists them (PVE 9). create_roles
// makes the built-in roles from them.
var privGroups = []struct {
	cat                      string
	root, admin, user, audit []string
}{
	{cat: "VM",
		admin: []string{"VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType",
			"VM.Config.Options", "VM.Allocate", "VM.Clone", "VM.GuestAgent.Unrestricted", "VM.Migrate", "VM.Replicate",
			"VM.Snapshot", "VM.Snapshot.Rollback"},
		user: []string{"VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup", "VM.GuestAgent.FileRead",
			"VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite", "VM.PowerMgmt"},
		audit: []string{"VM.Audit", "VM.GuestAgent.Audit"}},
	{cat: "Sys",
		root:  []string{"Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"},
		admin: []string{"Sys.Console", "Sys.Syslog"},
		audit: []string{"Sys.Audit"}},
	{cat: "Datastore",
		admin: []string{"Datastore.Allocate", "Datastore.AllocateTemplate"},
		user:  []string{"Datastore.AllocateSpace"},
		audit: []string{"Datastore.Audit"}},
	{cat: "SDN",
		admin: []string{"SDN.Allocate", "SDN.Audit"},
		user:  []string{"SDN.Use"},
		audit: []string{"SDN.Audit"}},
	{cat: "User",
		root:  []string{"Realm.Allocate"},
		admin: []string{"User.Modify", "Group.Allocate", "Realm.AllocateUser"}},
	{cat: "Pool",
		admin: []string{"Pool.Allocate"},
		user:  []string{"Pool.Audit"},
		audit: []string{"Pool.Audit"}},
	{cat: "Mapping",
		admin: []string{"Mapping.Modify"},
		user:  []string{"Mapping.Use"},
		audit: []string{"Mapping.Audit"}},
}

// builtinRoles are PVE's built-in roles, made as create_roles makes them:
// Administrator has every privilege (Permissions.Modify too), PVEAdmin every
// admin, user and audit one but Mapping.Modify, PVE<cat>Admin those of its
// category, PVE<cat>User the user and audit ones of a category that has
// user privileges, PVEAuditor every audit privilege.
var builtinRoles = func() map[string]map[string]bool {
	roles := map[string]map[string]bool{
		"NoAccess":        {},
		"Administrator":   {"Permissions.Modify": true},
		"PVEAdmin":        {},
		"PVEAuditor":      {},
		"PVETemplateUser": {"VM.Clone": true, "VM.Audit": true},
	}
	add := func(role string, privs ...[]string) {
		if roles[role] == nil {
			roles[role] = map[string]bool{}
		}
		for _, l := range privs {
			for _, p := range l {
				roles[role][p] = true
			}
		}
	}
	for _, g := range privGroups {
		add("Administrator", g.root, g.admin, g.user, g.audit)
		add("PVE"+g.cat+"Admin", g.admin, g.user, g.audit)
		add("PVEAdmin", g.admin, g.user, g.audit)
		if len(g.user) > 0 {
			add("PVE"+g.cat+"User", g.user, g.audit)
		}
		add("PVEAuditor", g.audit)
	}
	delete(roles["PVEAdmin"], "Mapping.Modify")
	return roles
}()

// token returns the world's token of a caller, if the caller came with one.
func (c *cluster) token(who caller) (Token, bool) {
	if who.token == "" {
		return Token{}, false
	}
	for _, t := range c.world.Spec.Users.Tokens {
		if t.ID == who.String() {
			return t, true
		}
	}
	return Token{}, false
}

// privileges is pve-access-control's RPCEnvironment::permissions for a
// caller on a normalized path. root@pam, by ticket or by a token without
// privilege separation, has Administrator's privileges (the only user the
// simulated user.cfg has; a token of another user is not refused anything
// either, as before the simulator modelled privileges). A privilege-separated
// token has the intersection of its user's privileges and its own ACL's.
func (c *cluster) privileges(who caller, path string) map[string]bool {
	t, ok := c.token(who)
	if !ok || !t.Privsep {
		return builtinRoles["Administrator"]
	}
	return aclPrivileges(t.ACL, path)
}

// aclPrivileges is compile_acl_path for one ACL: the entries on the deepest
// path at or above path decide, a deeper entry replacing what propagated
// from above (NoAccess there leaves nothing).
func aclPrivileges(acl []ACL, path string) map[string]bool {
	out := map[string]bool{}
	best := -1
	for _, e := range acl {
		if !pathCovers(e.Path, path) {
			continue
		}
		depth := len(strings.Split(strings.Trim(e.Path, "/"), "/"))
		if e.Path == "/" {
			depth = 0
		}
		if depth > best {
			best = depth
			out = map[string]bool{}
		}
		if depth == best {
			maps.Copy(out, builtinRoles[e.Role])
		}
	}
	return out
}

// pathCovers reports whether an ACL on acl reaches path.
func pathCovers(acl, path string) bool {
	return acl == "/" || acl == path || strings.HasPrefix(path, acl+"/")
}

// check is RPCEnvironment::check (every privilege) or, with any,
// check_any: the refusal names the path and the privilege, or with any the
// privileges joined by |.
func (c *cluster) check(who caller, path string, any bool, privs ...string) *apiError {
	have := c.privileges(who, path)
	if any {
		if slices.ContainsFunc(privs, func(p string) bool { return have[p] }) {
			return nil
		}
		return permission(path + ", " + strings.Join(privs, "|"))
	}
	for _, p := range privs {
		if !have[p] {
			return permission(path + ", " + p)
		}
	}
	return nil
}

// can reports whether the caller holds priv on path (check with noerr).
func (c *cluster) can(who caller, path, priv string) bool {
	return c.privileges(who, path)[priv]
}

// authorize is RPCEnvironment::check_api2_permissions for a method's
// schema "permissions", run where pve-manager's PVE/HTTPServer.pm
// rest_handler runs it: after the token's allowtoken check and before the
// request is proxied to its node or its parameters are verified. root@pam's
// ticket passes everything; "user: all" passes every authenticated caller
// (the handler then checks what it needs itself).
func (c *cluster) authorize(who caller, m *pveapi.Method, params map[string]any) *apiError {
	if who.rootTicket() {
		return nil
	}
	var perm struct {
		User  string          `json:"user"`
		Check json.RawMessage `json:"check"`
	}
	if len(m.Permissions) == 0 || json.Unmarshal(m.Permissions, &perm) != nil {
		return permission("user != root@pam")
	}
	if perm.User == "all" || perm.User == "world" {
		return nil
	}
	if len(perm.Check) == 0 {
		return permission("")
	}
	var check []any
	if err := json.Unmarshal(perm.Check, &check); err != nil {
		return die("permission check of %s %s: %v", m.HTTPMethod, m.Path, err)
	}
	_, aerr := c.permCheck(who, check, params, false)
	return aerr
}

// permCheck is exec_api2_perm_check for the tests phoenix's endpoints use:
// and, or, perm (with any and require_param). With noerr a failed test
// answers false instead of the refusal.
func (c *cluster) permCheck(who caller, check []any, params map[string]any, noerr bool) (bool, *apiError) {
	if len(check) == 0 {
		return false, die("no permission test specified")
	}
	switch check[0] {
	case "and":
		for _, sub := range check[1:] {
			l, _ := sub.([]any)
			if _, aerr := c.permCheck(who, l, params, false); aerr != nil {
				return false, aerr
			}
		}
		return true, nil
	case "or":
		for _, sub := range check[1:] {
			l, _ := sub.([]any)
			if ok, _ := c.permCheck(who, l, params, true); ok {
				return true, nil
			}
		}
		if noerr {
			return false, nil
		}
		return false, permission("")
	case "perm":
		if len(check) < 3 {
			return false, die("missing parameters")
		}
		tmpl, _ := check[1].(string)
		var privs []string
		list, _ := check[2].([]any)
		for _, p := range list {
			s, _ := p.(string)
			privs = append(privs, s)
		}
		any := false
		for i := 3; i+1 < len(check); i += 2 {
			switch check[i] {
			case "any":
				any = check[i+1] != nil && check[i+1] != float64(0)
			case "require_param":
				name, _ := check[i+1].(string)
				if params[name] == nil {
					if noerr {
						return false, nil
					}
					return false, permission("")
				}
			}
		}
		path := normalizeACLPath(templateReplace(tmpl, params))
		if aerr := c.check(who, path, any, privs...); aerr != nil {
			if noerr {
				return false, nil
			}
			return false, aerr
		}
		return true, nil
	}
	return false, die("unknown permission test")
}

var templateRE = regexp.MustCompile(`\{([^}]+)\}`)

// templateReplace is pve-common's PVE::Tools::template_replace: each
// {name} becomes the parameter's value, or - where it is unset or false.
func templateReplace(tmpl string, params map[string]any) string {
	return templateRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		v := params[m[1:len(m)-1]]
		s := paramString(v)
		if v == nil || s == "" || s == "0" {
			return "-"
		}
		return s
	})
}

// normalizeACLPath is AccessControl::normalize_path without its refusal of
// odd characters (a path it refuses is checked as undef, which no ACL
// reaches; the simulator checks it as it is, which none reaches either).
func normalizeACLPath(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return "/"
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// checkACL reports what is wrong with a token's privilege settings.
func checkACL(t Token) []string {
	var out []string
	if len(t.ACL) > 0 && !t.Privsep {
		out = append(out, fmt.Sprintf("token %s: acl without privsep: true has no effect (a token without privilege separation has its user's privileges)", t.ID))
	}
	for i, e := range t.ACL {
		if _, ok := builtinRoles[e.Role]; !ok {
			out = append(out, fmt.Sprintf("token %s: acl[%d]: role %q is not one of Proxmox VE's built-in roles (%s)", t.ID, i, e.Role,
				strings.Join(slices.Sorted(maps.Keys(builtinRoles)), ", ")))
		}
		if !strings.HasPrefix(e.Path, "/") || normalizeACLPath(e.Path) != e.Path {
			out = append(out, fmt.Sprintf("token %s: acl[%d]: path %q: want a normalized ACL path such as / or /vms/100", t.ID, i, e.Path))
		}
	}
	return out
}
