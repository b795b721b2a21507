package reconciler

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/phoenixhv/phoenix/spec"
)

// OS templates: a root's from.ostemplate volume that is not on its storage
// is downloaded before the create, from a URL with a checksum where the spec
// gives from.download (the storage's download-url endpoint), else from the
// node's appliance index (what pveam download does). One that is in neither
// is a problem of the plan.

// Appliance is one entry of a node's appliance index (GET
// /nodes/{node}/aplinfo: pve-manager PVE/APLInfo.pm).
type Appliance struct {
	// Template is the file a download makes, e.g.
	// ubuntu-24.04-standard_24.04-2_amd64.tar.zst.
	Template string
	// Section is the index's section: system, turnkeylinux, mail, ...
	Section string
	// Type is lxc or openvz.
	Type string
}

// DownloadRequest downloads a file into a storage from a URL, checking its
// checksum (POST /nodes/{node}/storage/{storage}/download-url).
type DownloadRequest struct {
	Node, Storage string
	// Content is the storage content the file is: vztmpl for an OS template.
	Content  string
	Filename string
	URL      string
	// ChecksumAlgorithm is md5, sha1, sha224, sha256, sha384 or sha512.
	ChecksumAlgorithm, Checksum string
}

// addInventoryNeed adds what a guest still to be made needs read of its
// node: the node, and for a root the storage of its OS template, with the
// volume when it would come from the appliance index.
func addInventoryNeed(needs map[string]map[string][]string, r *spec.Resolved) {
	node := r.Settings.Node
	if needs[node] == nil {
		needs[node] = map[string][]string{}
	}
	if r.Parent != "" {
		return
	}
	st, _, ok := strings.Cut(r.Settings.OSTemplate, ":")
	if !ok {
		return
	}
	vols := needs[node][st]
	if r.Guest.Spec.From.Download == nil && !slices.Contains(vols, r.Settings.OSTemplate) {
		vols = append(vols, r.Settings.OSTemplate)
	}
	needs[node][st] = vols
}

// readAppliances reads the node's appliance index when a volume that would
// come from it is missing.
func readAppliances(rd reader, cluster Cluster, node string, inv *NodeInventory, needs map[string][]string) {
	if inv.Err != nil {
		return
	}
	missing := false
	for st, vols := range needs {
		have, read := inv.Templates[st]
		for _, v := range vols {
			missing = missing || read && !slices.Contains(have, v)
		}
	}
	if !missing {
		return
	}
	var apps []Appliance
	inv.AppliancesErr = rd.retry("read the appliance index of "+node, func() (err error) { apps, err = cluster.Appliances(rd.ctx, node); return err })
	for _, a := range apps {
		// apl_download (pve-manager PVE/API2/Nodes.pm) takes lxc and
		// openvz appliances only.
		if a.Type == "lxc" || a.Type == "openvz" {
			inv.Appliances = append(inv.Appliances, a.Template)
		}
	}
}

// checkTemplate checks that an OS template volume is on the node, or can be
// downloaded there: from dl, or from the appliance index.
func (inv *NodeInventory) checkTemplate(node, volid string, dl *spec.Download) []Problem {
	st, _, _ := strings.Cut(volid, ":")
	file := spec.OSTemplateFile(volid)
	info, ok := inv.storage(st)
	switch {
	case !ok:
		return []Problem{problem(ProblemSpec, "the OS template %s is on storage %s, which is not on %s", volid, st, node)}
	case !info.Enabled || !info.Active:
		return []Problem{problem(ProblemNode, "the OS template %s is on storage %s, which is not available on %s", volid, st, node)}
	}
	vols := inv.Templates[st]
	if slices.Contains(vols, volid) {
		return nil
	}
	if !slices.Contains(info.Content, "vztmpl") {
		var can []string
		for _, s := range inv.Storages {
			if slices.Contains(s.Content, "vztmpl") {
				can = append(can, s.Name)
			}
		}
		return []Problem{problem(ProblemSpec, "the OS template %s is not on %s, and storage %s does not hold container templates (content vztmpl), so it cannot be downloaded there: %s does",
			volid, node, st, listOr(can, "none"))}
	}
	if dl != nil {
		return nil
	}
	if inv.AppliancesErr != nil {
		return []Problem{problem(ProblemObserve, "the OS template %s is not on %s, and the node's appliance index could not be read: %v", volid, node, inv.AppliancesErr)}
	}
	if slices.Contains(inv.Appliances, file) {
		return nil
	}
	return []Problem{problem(ProblemNode, "the OS template %s is not on %s: it has %s; %s is not in the node's appliance index (pveam available): "+
		"set from.download {url, checksum} to download it from a URL, or name a file the index has (pveam update refreshes the index)",
		volid, node, listOr(vols, "none on "+st), file)}
}

// templateDownload is the change that downloads a root's missing OS template.
func (p *planner) templateDownload(r *spec.Resolved) (Change, bool) {
	if r.Parent != "" || p.obs.Inventory == nil {
		return Change{}, false
	}
	inv := p.obs.Inventory[r.Settings.Node]
	if inv == nil || inv.Err != nil {
		return Change{}, false
	}
	volid := r.Settings.OSTemplate
	st, _, _ := strings.Cut(volid, ":")
	if slices.Contains(inv.Templates[st], volid) {
		return Change{}, false
	}
	file := spec.OSTemplateFile(volid)
	if dl := r.Guest.Spec.From.Download; dl != nil {
		return Change{Action: Download, Reason: fmt.Sprintf("%s to %s from %s, %s checked", file, st, dl.URL, dl.Algorithm())}, true
	}
	return Change{Action: Download, Reason: fmt.Sprintf("%s to %s from the appliance index", file, st)}, true
}

// observeTemplate adds to a guest's observation, while the guest is still to
// be created with a download, what its node has of OS templates: the fresh
// plan then still has the download, or has dropped it once the volume is
// there (another root's download brought it).
func (e *engine) observeTemplate(ctx context.Context, g GuestPlan, obs *Observed) {
	if obs.Guests[g.VMID] != nil || !slices.ContainsFunc(g.Changes, func(c Change) bool { return c.Action == Download }) {
		return
	}
	r, ok := e.res.Guest(g.Name)
	if !ok {
		return
	}
	needs := map[string]map[string][]string{}
	addInventoryNeed(needs, r)
	observeInventory(reader{ctx: ctx}, e.cluster, obs, needs, 1)
}

// download brings a root's OS template volume to its storage, and confirms
// that the storage lists it. Roots that need the same volume wait for one
// another: the first downloads it, the others find it there.
func (e *engine) download(ctx context.Context, g GuestPlan, r *spec.Resolved, obs *Observed) error {
	node, volid := r.Settings.Node, r.Settings.OSTemplate
	st, _, _ := strings.Cut(volid, ":")
	file := spec.OSTemplateFile(volid)
	thing := "download " + node + " " + volid
	if inv := obs.Inventory[node]; inv != nil {
		if info, ok := inv.storage(st); ok && info.Shared {
			thing = "download " + volid // one file for every node
		}
	}
	unlock, err := e.hold(ctx, thing)
	if err != nil {
		return err
	}
	defer unlock()
	present := func() (bool, error) {
		var vols []string
		err := e.retry(ctx, g, Event{Action: Download, Step: "observe"}, func() (err error) {
			vols, err = e.cluster.Volumes(ctx, node, st, "vztmpl")
			return err
		})
		return slices.Contains(vols, volid), err
	}
	if there, err := present(); err != nil || there {
		return err
	}
	if dl := r.Guest.Spec.From.Download; dl != nil {
		req := DownloadRequest{Node: node, Storage: st, Content: "vztmpl", Filename: file, URL: dl.URL, ChecksumAlgorithm: dl.Algorithm(), Checksum: dl.Digest()}
		err = e.retry(ctx, g, Event{Action: Download}, func() error { return e.cluster.DownloadURL(ctx, req) })
	} else {
		err = e.retry(ctx, g, Event{Action: Download}, func() error { return e.cluster.DownloadAppliance(ctx, node, st, file) })
	}
	if err != nil {
		return err
	}
	there, err := present()
	if err == nil && !there {
		err = fmt.Errorf("the download ended, but storage %s on %s does not list %s", st, node, volid)
	}
	return err
}
