package reconciler

import (
	"context"
	"strings"
	"sync"

	"github.com/phoenixhv/phoenix/spec"
)

// wanted says which guests of a listing matter to a pass: managed ones and
// any whose VMID or name a spec wants. exists collects every VMID listed.
type wanted struct {
	vmid   map[int]bool
	name   map[string]bool
	exists map[int]bool
}

func wantedGuests(res *spec.Resolution) *wanted {
	w := &wanted{vmid: map[int]bool{}, name: map[string]bool{}, exists: map[int]bool{}}
	for _, g := range res.Guests {
		w.vmid[g.VMID] = true
		for _, vmid := range g.RenewalVMIDs {
			w.vmid[vmid] = true
		}
		w.name[strings.ToLower(g.Name)] = true
	}
	return w
}

// add puts a listed guest into obs, or counts it among the others, and
// returns it when it matters (nil otherwise). A VMID listed twice (Proxmox
// VE lists each once) keeps its last entry, in both of Observe's paths.
func (w *wanted) add(obs *Observed, s GuestSummary) *ObservedGuest {
	w.exists[s.VMID] = true
	managed := managedTags(s.Tags...)
	if !managed && !w.vmid[s.VMID] && !w.name[strings.ToLower(s.Name)] {
		obs.Others++
		return nil
	}
	g := &ObservedGuest{GuestSummary: s, Managed: managed}
	obs.Guests[s.VMID] = g
	return g
}

// containerish reports whether a guest is a container (or says no type),
// the guests whose config Observe reads.
func (g *ObservedGuest) containerish() bool { return g.Type == "" || g.Type == "lxc" }

// streamGuests lists the guests through a GuestStreamer into obs and starts
// the reads of each container that matters as its summary comes in, under
// sem, so that the reads overlap the listing's transfer and decoding. It
// returns the group of those reads, still running. A listing that fails is
// retried whole, as Observe retries Guests: the reads it started are
// cancelled and waited for, and what they and the listing found is dropped,
// so that no observation is built from two listings.
func streamGuests(rd reader, streamer GuestStreamer, want *wanted, obs *Observed, sem chan struct{},
	read func(reader, *ObservedGuest)) (*sync.WaitGroup, error) {
	var reads *sync.WaitGroup
	err := rd.retry("list guests", func() error {
		obs.Guests, obs.Others, want.exists = make(map[int]*ObservedGuest, len(want.vmid)), 0, map[int]bool{}
		ctx, cancel := context.WithCancel(rd.ctx)
		attempt := reader{ctx: ctx, log: rd.log}
		q := newGuestReads(sem, func(g *ObservedGuest) { read(attempt, g) })
		err := streamer.StreamGuests(ctx, func(s GuestSummary) error {
			g := want.add(obs, s)
			if g == nil || !g.containerish() {
				return nil // a VM: phoenix manages containers; a VM on a wanted VMID is a conflict
			}
			q.add(g)
			return nil
		})
		if err != nil {
			cancel()
			q.wait()
			return err
		}
		// The reads keep the attempt's context, cancelled once they are
		// done (or with rd.ctx).
		reads = &sync.WaitGroup{}
		reads.Go(func() {
			q.wait()
			cancel()
		})
		return nil
	})
	if err != nil {
		obs.Guests, obs.Others, want.exists = map[int]*ObservedGuest{}, 0, map[int]bool{}
		return nil, err
	}
	return reads, nil
}

// guestReads runs the reads of the guests added to it on at most cap(sem)
// goroutines of its own, each read under sem. A guest waiting for its read
// costs a pointer in the queue; a goroutine per guest would cost far more,
// for good: the runtime keeps every goroutine it ever made for reuse.
type guestReads struct {
	sem     chan struct{}
	read    func(*ObservedGuest)
	wg      sync.WaitGroup
	mu      sync.Mutex
	queue   []*ObservedGuest
	workers int
}

func newGuestReads(sem chan struct{}, read func(*ObservedGuest)) *guestReads {
	return &guestReads{sem: sem, read: read}
}

// add starts g's read, or queues it while every goroutine is busy. It must
// not be called once wait has begun.
func (q *guestReads) add(g *ObservedGuest) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.workers < max(cap(q.sem), 1) {
		q.workers++
		q.wg.Go(func() { q.work(g) })
		return
	}
	q.queue = append(q.queue, g)
}

// work reads g, then the queued guests until none is left.
func (q *guestReads) work(g *ObservedGuest) {
	for {
		q.sem <- struct{}{}
		q.read(g)
		<-q.sem
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.workers--
			q.queue = nil
			q.mu.Unlock()
			return
		}
		g = q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		q.mu.Unlock()
	}
}

// wait returns once every added guest is read.
func (q *guestReads) wait() { q.wg.Wait() }
