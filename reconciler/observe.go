package reconciler

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/phoenixhv/phoenix/reconciler/features"
	"github.com/phoenixhv/phoenix/spec"
)

// Observed is the cluster as one pass saw it. It is a value: building it reads
// the cluster, nothing in it writes.
type Observed struct {
	// Guests are the guests that matter: managed ones and any whose VMID or
	// name a spec wants, by VMID.
	Guests map[int]*ObservedGuest
	// Hosts are the GPU probes of the nodes where a spec needs GPUs.
	Hosts map[string]*HostObservation
	// Others counts the guests that do not matter to phoenix.
	Others int
	// Nodes are the cluster's nodes, and Inventory what those where a guest
	// is to be made offer it: read only when something is to be made (nil
	// otherwise). NodesErr is why the nodes could not be read.
	Nodes     []NodeInfo
	NodesErr  error
	Inventory map[string]*NodeInventory
	// SecurityGroups are the cluster's firewall security groups, read only
	// when a spec's firewall uses one; SecurityGroupsErr is why they could
	// not be read.
	SecurityGroups    []string
	SecurityGroupsErr error
	// ClusterSets are the cluster's firewall aliases and ipsets, read only
	// when a spec's firewall names one it does not define itself;
	// ClusterSetsErr is why they could not be read.
	ClusterSets    *ClusterFirewallSets
	ClusterSetsErr error
	// HostDirs are the bind mount directories of the nodes where a spec
	// has bind mounts, by node.
	HostDirs map[string]*HostDirObservation
	// SubIDs are the host ids root may map on the nodes where a spec has
	// custom id maps, by node (security.go).
	SubIDs map[string]*SubIDObservation
}

// ObservedGuest is one guest: its listing, its config, its state block.
type ObservedGuest struct {
	GuestSummary
	Config  Config
	Managed bool
	// User is the description's text outside phoenix's block.
	User  string
	State *State
	// StateErr is set when the block is damaged; State is then nil.
	StateErr error
	// ConfigErr is set when the config could not be read.
	ConfigErr error
	// Pending are the options of a running container that wait for its
	// next start (read only for running containers: a stopped one takes
	// changes at once).
	Pending []PendingOption
	// PendingErr is set when the pending changes could not be read.
	PendingErr error
	// Firewall is the guest's firewall, read only where a spec manages it
	// (firewall.go); FirewallErr is why it could not be read.
	Firewall    *FirewallConfig
	FirewallErr error
	// Snapshots are the guest's snapshots and StorageTypes the types of
	// its node's storages, read only where its spec asks for snapshots
	// (snapshots.go); SnapshotsErr is why they could not be read.
	Snapshots    []Snapshot
	StorageTypes map[string]string
	SnapshotsErr error
	// Inside is what a running container holds of the files and services
	// its spec keeps (files.go), read only where it keeps some;
	// InsideErr is why it could not be read.
	Inside    *Inside
	InsideErr error
}

// records are the feature records of a guest whose state block is trusted.
func (og *ObservedGuest) records() map[string]FeatureRecord {
	if og.State == nil || og.StateErr != nil {
		return nil
	}
	return og.State.Features
}

// waiting lists the options that wait for the next start.
func (og *ObservedGuest) waiting() []PendingOption { return onlyWaiting(og.Pending) }

// onlyWaiting keeps the options that wait for the next start, in a list of
// their own (nil when none), so that the rest can be freed.
func onlyWaiting(pending []PendingOption) []PendingOption {
	var out []PendingOption
	for _, p := range pending {
		if p.Waiting() {
			out = append(out, p)
		}
	}
	return out
}

// readsPending reports whether a guest's pending changes matter: only a
// running container holds changes back.
func readsPending(s GuestSummary, cfg Config) bool {
	return s.Status == "running" && cfg.Values["template"] != "1"
}

// HostObservation is a node's GPU probe, or why it failed.
type HostObservation struct {
	Info HostInfo
	Err  error
	// Runfile is where the runfile of the host's driver will come from,
	// asked only when a guest on the node is to install the driver (nil
	// otherwise); RunfileErr is why the node could not say.
	Runfile    *RunfileSource
	RunfileErr error
}

// NodeOf returns the Node that runs commands on a node by name.
type NodeOf func(node string) (Node, error)

// ObserveOptions bound the work of one observation.
type ObserveOptions struct {
	// Parallelism bounds concurrent config reads and probes (default 8).
	Parallelism int
	// Log is told about the reads that are retried.
	Log *slog.Logger
}

// Observe reads what the plan needs: one /cluster/resources call, one config
// read per guest that matters, in parallel, and a host probe per node where a
// spec wants GPUs. With a GuestStreamer, each config read starts as its guest
// comes in, while the rest of the listing still streams.
func Observe(ctx context.Context, cluster Cluster, nodes NodeOf, res *spec.Resolution, opts ObserveOptions) (*Observed, error) {
	if opts.Parallelism <= 0 {
		opts.Parallelism = 8
	}
	rd := reader{ctx: ctx, log: opts.Log}
	want := wantedGuests(res)
	gpuNodes := map[string]bool{}
	for _, g := range res.Guests {
		if !g.Settings.GPUs.Empty() {
			gpuNodes[g.Settings.Node] = true
		}
	}
	obs := &Observed{Guests: map[int]*ObservedGuest{}, Hosts: map[string]*HostObservation{}}
	sem := make(chan struct{}, opts.Parallelism)
	var wg sync.WaitGroup
	var mu sync.Mutex
	read := func(rd reader, g *ObservedGuest) { observeGuest(rd, cluster, nodes, res, g) }
	if streamer, ok := cluster.(GuestStreamer); ok {
		// Each guest's reads start as its summary comes in (observestream.go).
		reads, err := streamGuests(rd, streamer, want, obs, sem, read)
		if err != nil {
			return nil, fmt.Errorf("list guests: %w", err)
		}
		wg.Go(reads.Wait)
	} else {
		var summaries []GuestSummary
		err := rd.retry("list guests", func() (err error) { summaries, err = cluster.Guests(ctx); return err })
		if err != nil {
			return nil, fmt.Errorf("list guests: %w", err)
		}
		for _, s := range summaries {
			want.add(obs, s)
		}
	}

	observeInventory(rd, cluster, obs, inventoryNeeds(res, want.exists), opts.Parallelism)
	observeSecurityGroups(rd, cluster, res, obs)
	observeClusterSets(rd, cluster, res, obs)

	if _, ok := cluster.(GuestStreamer); !ok {
		q := newGuestReads(sem, func(g *ObservedGuest) { read(rd, g) })
		for _, g := range obs.Guests {
			if !g.containerish() {
				continue // a VM: phoenix manages containers; a VM on a wanted VMID is a conflict
			}
			q.add(g)
		}
		wg.Go(q.wait)
	}
	for node := range gpuNodes {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			h := &HostObservation{}
			n, err := nodes(node)
			if err == nil {
				err = rd.retry("probe the GPUs of "+node, func() (err error) { h.Info, err = n.HostProbe(ctx); return err })
			}
			h.Err = err
			mu.Lock()
			obs.Hosts[node] = h
			mu.Unlock()
		})
	}
	wg.Wait()
	observeHostDirs(rd, nodes, res, obs)
	observeSubIDs(rd, nodes, res, obs)
	for node, h := range obs.Hosts {
		if !driverDue(res, obs, node, h) {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			n, err := nodes(node)
			if err != nil {
				h.RunfileErr = err
				return
			}
			v := h.Info.DriverVersion
			q := RunfileQuery{Version: v, Path: features.RunfilePath(v), URLs: features.RunfileURLs(res.Cluster.NVIDIA, v)}
			var src RunfileSource
			h.RunfileErr = rd.retry("find the driver runfile for "+node, func() (err error) { src, err = n.FindRunfile(ctx, q); return err })
			if h.RunfileErr == nil {
				h.Runfile = &src
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return obs, nil
}

// observeGuest reads what a plan needs of one container that matters: its
// config, and what follows from it.
func observeGuest(rd reader, cluster Cluster, nodes NodeOf, res *spec.Resolution, g *ObservedGuest) {
	ctx := rd.ctx
	var cfg Config
	err := rd.retry(fmt.Sprintf("read the config of %d", g.VMID), func() (err error) { cfg, err = cluster.GuestConfig(ctx, g.Node, g.VMID); return err })
	if err != nil {
		g.ConfigErr = err
		return
	}
	g.Config = cfg
	g.User, g.State, g.StateErr = ParseDescription(cfg.Values["description"])
	observeFirewall(rd, cluster, res, g)
	observeSnapshots(rd, cluster, res, g)
	observeInside(rd, nodes, res, g)
	if readsPending(g.GuestSummary, cfg) {
		g.PendingErr = rd.retry(fmt.Sprintf("read the pending changes of %d", g.VMID), func() (err error) {
			g.Pending, err = cluster.Pending(ctx, g.Node, g.VMID)
			return err
		})
		// Only the options that wait matter (waiting): the list has every
		// option, each with its value, and a pass keeps thousands of them.
		g.Pending = onlyWaiting(g.Pending)
	}
}

// driverDue reports whether a guest on a node with a working driver is to
// install that driver's userspace: a guest that has none, or whose record is
// of another version or not its own. Only then is the node asked where the
// runfile will come from, so that a converged cluster asks nothing.
func driverDue(res *spec.Resolution, obs *Observed, node string, h *HostObservation) bool {
	if h.Err != nil || h.Info.DriverVersion == "" {
		return false
	}
	for _, r := range res.Guests {
		if r.Settings.Node != node || !slices.Contains(r.Effective, spec.FeatureNVIDIADriver) {
			continue
		}
		seen := false
		for _, vmid := range append([]int{r.VMID}, r.RenewalVMIDs...) {
			og := obs.Guests[vmid]
			if og == nil {
				continue
			}
			seen = true
			rec, ok := og.records()[spec.FeatureNVIDIADriver]
			trusted := ok && (rec.VMID == og.VMID || slices.Contains(r.Inherited, spec.FeatureNVIDIADriver))
			if !trusted || rec.Version != h.Info.DriverVersion {
				return true
			}
		}
		if !seen && (r.Parent == "" || !slices.Contains(r.Inherited, spec.FeatureNVIDIADriver)) {
			return true
		}
	}
	return false
}

// reader retries the reads of an observation while their failure is worth
// retrying: an observation should not fail on one dropped connection. Each
// retry is logged at info level, so that a slow observation says why.
type reader struct {
	ctx context.Context
	log *slog.Logger
}

func (rd reader) retry(what string, read func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 100*time.Millisecond, 2*time.Second, 30*time.Second
	return backoff.RetryNotify(func() error {
		err := read()
		if err != nil && !Retryable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, rd.ctx), func(err error, wait time.Duration) {
		if rd.log != nil {
			rd.log.Info("retrying", "read", what, "in", wait.Round(time.Millisecond), "error", err)
		}
	})
}
