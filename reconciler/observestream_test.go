package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/phoenixhv/phoenix/spec"
)

// streamingCluster lists n guests, every third not phoenix's; its first
// listing fails with failErr after failAfter of them when failErr is set.
// Config reads made while that first listing is current wait for their
// context to end: only cancelling them lets Observe go on.
type streamingCluster struct {
	Cluster // nil: Observe needs no more of it here
	n       int
	failAt  int
	failErr error

	mu       sync.Mutex
	attempts int
	reads    map[string]int // by attempt and VMID
}

func (c *streamingCluster) summary(i, attempt int) GuestSummary {
	s := GuestSummary{VMID: 100 + i, Type: "lxc", Node: "pve1", Name: fmt.Sprint("ct", i), Status: fmt.Sprint("stopped", attempt)}
	if i%3 != 0 {
		s.Tags = []string{ManagedTag}
	}
	return s
}

func (c *streamingCluster) StreamGuests(ctx context.Context, yield func(GuestSummary) error) error {
	c.mu.Lock()
	c.attempts++
	attempt := c.attempts
	c.mu.Unlock()
	for i := range c.n {
		if attempt == 1 && c.failErr != nil && i == c.failAt {
			return c.failErr
		}
		if err := yield(c.summary(i, attempt)); err != nil {
			return err
		}
	}
	return nil
}

func (c *streamingCluster) Guests(ctx context.Context) ([]GuestSummary, error) {
	var out []GuestSummary
	err := c.StreamGuests(ctx, func(s GuestSummary) error { out = append(out, s); return nil })
	return out, err
}

func (c *streamingCluster) GuestConfig(ctx context.Context, node string, vmid int) (Config, error) {
	c.mu.Lock()
	attempt := c.attempts
	c.reads[fmt.Sprint(attempt, ":", vmid)]++
	c.mu.Unlock()
	if attempt == 1 && c.failErr != nil {
		<-ctx.Done()
		return Config{}, ctx.Err()
	}
	return Config{Values: map[string]string{"hostname": fmt.Sprint("ct", vmid-100), "read": fmt.Sprint(attempt)}}, nil
}

// TestObserveStreamRetriesWhole: a listing that fails midway is retried
// whole; the reads it started are cancelled and dropped, and every guest is
// observed once, from the second listing alone.
func TestObserveStreamRetriesWhole(t *testing.T) {
	const n = 30
	c := &streamingCluster{n: n, failAt: 20, reads: map[string]int{},
		failErr: &APIError{Kind: ErrUnavailable, Op: "GET /cluster/resources", Message: "the server closed the connection", Transient: true}}
	obs, err := Observe(context.Background(), c, nil, &spec.Resolution{}, ObserveOptions{Parallelism: 4})
	if err != nil {
		t.Fatal(err)
	}
	if c.attempts != 2 {
		t.Errorf("%d listings, want 2", c.attempts)
	}
	if obs.Others != n/3 || len(obs.Guests) != n-n/3 {
		t.Errorf("%d guests and %d others, want %d and %d", len(obs.Guests), obs.Others, n-n/3, n/3)
	}
	for vmid, g := range obs.Guests {
		if g.Status != "stopped2" || g.ConfigErr != nil || g.Config.Values["read"] != "2" || !g.Managed {
			t.Errorf("%d: not from the second listing alone: %+v", vmid, g)
		}
		if r := c.reads[fmt.Sprint(2, ":", vmid)]; r != 1 {
			t.Errorf("%d: read %d times after the second listing", vmid, r)
		}
	}
	if len(c.reads) <= len(obs.Guests) {
		t.Errorf("the first listing started no reads (%v): the retry path was not taken", c.reads)
	}
}

// TestObserveStreamFails: a listing that fails midway with an error not worth
// retrying fails the observation; nothing of it is kept.
func TestObserveStreamFails(t *testing.T) {
	bad := errors.New("GET /cluster/resources: unexpected vmid in the answer: x")
	c := &streamingCluster{n: 10, failAt: 5, failErr: bad, reads: map[string]int{}}
	obs, err := Observe(context.Background(), c, nil, &spec.Resolution{}, ObserveOptions{})
	if obs != nil || !errors.Is(err, bad) || !strings.HasPrefix(err.Error(), "list guests: ") {
		t.Errorf("Observe = %v, %v; want no observation and the listing's error", obs, err)
	}
	if c.attempts != 1 {
		t.Errorf("%d listings, want 1", c.attempts)
	}
}

// TestObserveStreamSameAsWhole: streaming the listing observes what listing
// it whole observes.
func TestObserveStreamSameAsWhole(t *testing.T) {
	streamed, err := Observe(context.Background(), &streamingCluster{n: 50, reads: map[string]int{}}, nil, &spec.Resolution{}, ObserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Only Cluster's methods: no StreamGuests.
	whole, err := Observe(context.Background(), struct{ Cluster }{&streamingCluster{n: 50, reads: map[string]int{}}}, nil, &spec.Resolution{}, ObserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(whole, streamed, cmpopts.EquateErrors()); d != "" {
		t.Errorf("streamed observation differs (-whole +streamed):\n%s", d)
	}
}
