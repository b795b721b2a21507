package reconciler

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/phoenixhv/phoenix/spec"
)

// Preflight: before a plan says + create or + clone, it checks what the new
// guest needs of its node (the node is in the cluster and online, the storage
// is there and holds root disks, the OS template volume is there, the
// bridges exist), from a few cheap reads made only when something is to be
// made. A failed check is a problem that names the thing and what exists
// instead, so that apply never retries a create that cannot succeed.

// NodeInventory is what a node offers a guest to be made on it.
type NodeInventory struct {
	Storages []StorageInfo
	Bridges  []string
	// Templates are the OS template volumes, by storage.
	Templates map[string][]string
	// Appliances are the template files of the node's appliance index,
	// read only when a volume to be made from it is missing; AppliancesErr
	// is why the index could not be read.
	Appliances    []string
	AppliancesErr error
	// Err is why the node could not be read.
	Err error
}

// inventoryNeeds lists, by node, what the guests still to be made need read:
// their nodes, and the storages holding their OS templates, each with the
// volumes that would come from the appliance index were they missing.
func inventoryNeeds(res *spec.Resolution, exists map[int]bool) map[string]map[string][]string {
	needs := map[string]map[string][]string{}
	for _, r := range res.Guests {
		if !exists[r.VMID] {
			addInventoryNeed(needs, r)
		}
	}
	return needs
}

// observeInventory reads the cluster's nodes and, for each node a guest is
// to be made on, its storages, bridges and OS templates.
func observeInventory(rd reader, cluster Cluster, obs *Observed, needs map[string]map[string][]string, parallelism int) {
	ctx := rd.ctx
	if len(needs) == 0 {
		return
	}
	obs.Inventory = map[string]*NodeInventory{}
	if err := rd.retry("list the nodes", func() (err error) { obs.Nodes, err = cluster.Nodes(ctx); return err }); err != nil {
		obs.NodesErr = err
		return
	}
	sem := make(chan struct{}, parallelism)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for node, templateStorages := range needs {
		if !slices.ContainsFunc(obs.Nodes, func(n NodeInfo) bool { return n.Name == node && n.Online }) {
			continue // the plan says the node is missing or offline
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			inv := readInventory(rd, cluster, node, templateStorages)
			mu.Lock()
			obs.Inventory[node] = inv
			mu.Unlock()
		})
	}
	wg.Wait()
}

func readInventory(rd reader, cluster Cluster, node string, templateStorages map[string][]string) *NodeInventory {
	ctx := rd.ctx
	inv := &NodeInventory{Templates: map[string][]string{}}
	if inv.Err = rd.retry("list the storages of "+node, func() (err error) { inv.Storages, err = cluster.Storages(ctx, node); return err }); inv.Err != nil {
		return inv
	}
	if inv.Err = rd.retry("list the bridges of "+node, func() (err error) { inv.Bridges, err = cluster.Bridges(ctx, node); return err }); inv.Err != nil {
		return inv
	}
	for _, st := range slices.Sorted(maps.Keys(templateStorages)) {
		info, ok := inv.storage(st)
		if !ok || !info.Enabled || !info.Active {
			continue // the plan names what is wrong with the storage
		}
		var vols []string
		if inv.Err = rd.retry("list the OS templates on "+st, func() (err error) { vols, err = cluster.Volumes(ctx, node, st, "vztmpl"); return err }); inv.Err != nil {
			return inv
		}
		inv.Templates[st] = vols
	}
	readAppliances(rd, cluster, node, inv, templateStorages)
	return inv
}

func (inv *NodeInventory) storage(name string) (StorageInfo, bool) {
	for _, s := range inv.Storages {
		if s.Name == name {
			return s, true
		}
	}
	return StorageInfo{}, false
}

// preflight checks what a guest to be made needs of its node.
func (p *planner) preflight(r *spec.Resolved, d desired) []Problem {
	if p.obs.Inventory == nil {
		return nil // not observed (a partial observation of the apply engine)
	}
	node := r.Settings.Node
	if p.obs.NodesErr != nil {
		return []Problem{problem(ProblemObserve, "the cluster's nodes could not be read: %v", p.obs.NodesErr)}
	}
	var names []string
	for _, n := range p.obs.Nodes {
		if n.Name == node && !n.Online {
			return []Problem{problem(ProblemObserve, "node %s is offline", node)}
		}
		names = append(names, n.Name)
	}
	if !slices.Contains(names, node) {
		return []Problem{problem(ProblemSpec, "node %s is not in the cluster: it has %s", node, listOr(names, "no nodes"))}
	}
	inv := p.obs.Inventory[node]
	if inv == nil {
		return nil
	}
	if inv.Err != nil {
		return []Problem{problem(ProblemObserve, "node %s could not be read for its storages and bridges: %v", node, inv.Err)}
	}
	var out []Problem
	if r.Parent == "" {
		out = append(out, inv.checkStorage(node, r.Settings.Storage)...)
		out = append(out, inv.checkTemplate(node, r.Settings.OSTemplate, r.Guest.Spec.From.Download)...)
	} else if r.Settings.CloneMode == spec.CloneFull && r.Guest.Spec.Storage != "" {
		out = append(out, inv.checkStorage(node, r.Settings.Storage)...)
	}
	for _, n := range d.nics {
		if !slices.Contains(inv.Bridges, n.Bridge) {
			out = append(out, problem(ProblemSpec, "bridge %s of %s is not on %s: it has %s", n.Bridge, n.Name, node, listOr(inv.Bridges, "no bridges")))
		}
	}
	return out
}

// checkStorage checks that a storage can hold a new container's root disk.
func (inv *NodeInventory) checkStorage(node, name string) []Problem {
	st, ok := inv.storage(name)
	switch {
	case !ok:
		var have []string
		for _, s := range inv.Storages {
			have = append(have, s.Name)
		}
		return []Problem{problem(ProblemSpec, "storage %s is not on %s: it has %s", name, node, listOr(have, "no storages"))}
	case !st.Enabled:
		return []Problem{problem(ProblemNode, "storage %s is disabled in the cluster's storage configuration", name)}
	case !st.Active:
		return []Problem{problem(ProblemNode, "storage %s is not active on %s (not mounted, or its pool or volume group is missing)", name, node)}
	case !slices.Contains(st.Content, "rootdir"):
		var can []string
		for _, s := range inv.Storages {
			if slices.Contains(s.Content, "rootdir") {
				can = append(can, s.Name)
			}
		}
		return []Problem{problem(ProblemSpec, "storage %s on %s does not hold container root disks (content rootdir): %s does", name, node, listOr(can, "none"))}
	}
	return nil
}

func listOr(items []string, none string) string {
	if len(items) == 0 {
		return none
	}
	return strings.Join(items, ", ")
}
