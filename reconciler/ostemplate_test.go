package reconciler

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestPlanOSTemplateDownload: a root whose OS template volume is missing
// downloads it before the create, from its URL or from the appliance index;
// one that is in neither, or a storage without vztmpl content, is a problem.
func TestPlanOSTemplateDownload(t *testing.T) {
	const ubuntu = "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"
	root := func(from string) string {
		return "apiVersion: phoenix/v1alpha1\nkind: Template\nmetadata: {name: base}\nspec:\n  vmid: 9000\n  node: pve1\n  storage: local-lvm\n  from:\n" + from
	}
	withURL := root("    ostemplate: " + ubuntu + "\n    download: {url: https://images.example.com/u.tar.zst, checksum: sha256:" + strings.Repeat("0", 64) + "}\n")
	fromIndex := root("    ostemplate: " + ubuntu + "\n")
	storages := []StorageInfo{
		{Name: "local", Type: "dir", Content: []string{"backup", "iso", "vztmpl"}, Active: true, Enabled: true},
		{Name: "local-lvm", Type: "lvmthin", Content: []string{"images", "rootdir"}, Active: true, Enabled: true},
	}
	index := []string{"debian-12-standard_12.7-1_amd64.tar.zst", "ubuntu-24.04-standard_24.04-2_amd64.tar.zst"}
	cases := map[string]struct {
		src        string
		templates  []string
		appliances []string
		indexErr   error
		want       []string
	}{
		"the volume is there": {src: fromIndex, templates: []string{ubuntu}, want: []string{"create", "create"}},
		"missing, in the index": {src: fromIndex, appliances: index,
			want: []string{"create", "download: ubuntu-24.04-standard_24.04-2_amd64.tar.zst to local from the appliance index", "create"}},
		"missing, with a URL": {src: withURL,
			want: []string{"create", "download: ubuntu-24.04-standard_24.04-2_amd64.tar.zst to local from https://images.example.com/u.tar.zst, sha256 checked", "create"}},
		"missing, in neither": {src: fromIndex, appliances: index[:1],
			want: []string{"no-op", "error [node]: the OS template " + ubuntu + " is not on pve1: it has none on local; ubuntu-24.04-standard_24.04-2_amd64.tar.zst is not in the node's appliance index"}},
		"missing, the index unreadable": {src: fromIndex, indexErr: errors.New("595 Connection refused"),
			want: []string{"no-op", "error [observe]: the OS template " + ubuntu + " is not on pve1, and the node's appliance index could not be read: 595 Connection refused"}},
		"a storage without vztmpl": {src: strings.Replace(withURL, "ostemplate: local:", "ostemplate: local-lvm:", 1),
			want: []string{"no-op", "error [spec]: the OS template local-lvm:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst is not on pve1, and storage local-lvm does not hold container templates (content vztmpl), so it cannot be downloaded there: local does"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res := resolve(t, tc.src)
			obs := &Observed{Guests: map[int]*ObservedGuest{}, Hosts: map[string]*HostObservation{},
				Nodes: []NodeInfo{{Name: "pve1", Online: true}},
				Inventory: map[string]*NodeInventory{"pve1": {Storages: storages, Bridges: []string{"vmbr0"},
					Templates: map[string][]string{"local": tc.templates, "local-lvm": nil}, Appliances: tc.appliances, AppliancesErr: tc.indexErr}}}
			p := MakePlan(res, obs, PlanOptions{})
			g, _ := p.Guest("base")
			got := []string{g.Action.String()}
			for _, c := range g.Changes {
				if c.Action == Download {
					got = append(got, "download: "+c.Reason)
				} else if c.Action == Create {
					got = append(got, "create")
				}
			}
			for _, e := range g.Errors {
				got = append(got, "error ["+string(e.Kind)+"]: "+e.Message)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("got %q\nwant %q", got[i], tc.want[i])
				}
			}
		})
	}
}

// TestInventoryNeedsTheIndexOnlyForMissingVolumes: a root with a URL does
// not need the appliance index; one without does, for its volume.
func TestInventoryNeedsTheIndexOnlyForMissingVolumes(t *testing.T) {
	src := "apiVersion: phoenix/v1alpha1\nkind: Template\nmetadata: {name: a}\nspec:\n  vmid: 9000\n  node: pve1\n  storage: local-lvm\n  from:\n    ostemplate: local:vztmpl/a.tar.zst\n" +
		"---\napiVersion: phoenix/v1alpha1\nkind: Template\nmetadata: {name: b}\nspec:\n  vmid: 9001\n  node: pve1\n  storage: local-lvm\n  from:\n    ostemplate: nfs:vztmpl/b.tar.zst\n" +
		"    download: {url: https://x.example/b.tar.zst, checksum: md5:" + strings.Repeat("0", 32) + "}\n"
	needs := inventoryNeeds(resolve(t, src), map[int]bool{})
	if got := needs["pve1"]["local"]; !slices.Equal(got, []string{"local:vztmpl/a.tar.zst"}) {
		t.Errorf("local: %q", got)
	}
	if got, ok := needs["pve1"]["nfs"]; !ok || len(got) != 0 {
		t.Errorf("nfs: %q, %v: want the storage read, no index", got, ok)
	}
}
