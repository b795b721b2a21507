package sim

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Proxmox VE keeps at most 8192 characters of a container's description
// (pve-container's PVE/LXC/Config.pm: maxLength 8 KiB on the create and
// config options). PVE::JSONSchema checks the length with Perl's length on
// the parameter after pve-http-server decoded it from UTF-8 (form or JSON),
// so it counts characters, not bytes. The clone call's own description has
// no limit (PVE/API2/LXC.pm's clone parameters), and a description reads
// back with a line break added.
func TestDescriptionLimitConformance(t *testing.T) {
	s, c := startAPISim(t, apiWorld)
	root := c.asRoot(s)
	refused := map[string]any{"description": "value may only be 8192 characters long"}
	wantRefused := func(t *testing.T, r apiResponse) {
		t.Helper()
		if r.code != 400 || r.reason != "Parameter verification failed." || !cmp.Equal(r.body["errors"], refused) {
			t.Errorf("got %d %q %v", r.code, r.reason, r.body["errors"])
		}
	}
	// 8192 two-byte characters: 16384 bytes.
	most := strings.Repeat("é", 8192)

	t.Run("config: 8192 characters are kept, 8193 refused", func(t *testing.T) {
		if r := c.call("PUT", "/nodes/pve1/lxc/101/config", url.Values{"description": {most}}); r.code != 200 {
			t.Fatalf("8192 characters: %d %q %v", r.code, r.reason, r.body["errors"])
		}
		if got := c.config("pve1", 101)["description"]; got != most+"\n" {
			t.Errorf("read back %d bytes", len(fmt.Sprint(got)))
		}
		wantRefused(t, c.call("PUT", "/nodes/pve1/lxc/101/config", url.Values{"description": {most + "x"}}))
		// The refused write changed nothing.
		if got := c.config("pve1", 101)["description"]; got != most+"\n" {
			t.Errorf("after the refused write: %d bytes", len(fmt.Sprint(got)))
		}
	})
	t.Run("config as JSON, as go-proxmox sends it", func(t *testing.T) {
		body, _ := json.Marshal(map[string]string{"description": strings.Repeat("<", 8193)})
		wantRefused(t, c.wireSend("PUT", "/nodes/pve1/lxc/101/config", "application/json", string(body)))
	})
	t.Run("create: refused over 8192 characters", func(t *testing.T) {
		wantRefused(t, c.call("POST", "/nodes/pve1/lxc", url.Values{"vmid": {"200"}, "ostemplate": {ubuntu}, "rootfs": {"local-lvm:8"},
			"description": {strings.Repeat("x", 8193)}}))
	})
	t.Run("clone: the description has no limit", func(t *testing.T) {
		root.create("pve1", 300, url.Values{"description": {"the template"}})
		c.convert("pve1", 300)
		long := strings.Repeat("y", 9000)
		r := c.call("POST", "/nodes/pve1/lxc/300/clone", url.Values{"newid": {"301"}, "description": {long}})
		if r.code != 200 {
			t.Fatalf("clone: %d %q %v", r.code, r.reason, r.body["errors"])
		}
		c.waitTask("pve1", r.data)
		if got := c.config("pve1", 301)["description"]; got != long+"\n" {
			t.Errorf("clone's description: %d bytes", len(fmt.Sprint(got)))
		}
	})
}
