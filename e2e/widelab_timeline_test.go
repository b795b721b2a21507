package e2e

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
)

// BenchmarkWideLabTimeline converges the wide lab once at each parallelism
// and prints when each guest's work began and ended (its first started step
// to its last event), and for how long: what shows where a schedule left
// the critical path waiting, and (against parallelism 1) how much longer a
// guest's own work takes beside others.
func BenchmarkWideLabTimeline(b *testing.B) {
	for _, p := range []int{1, 8, 16} {
		b.Run(fmt.Sprintf("parallelism=%d", p), func(b *testing.B) { wideLabTimeline(b, p) })
	}
}

func wideLabTimeline(b *testing.B, parallelism int) {
	for b.Loop() {
		r := wideLabRig(b, wideLabScale)
		opts := r.options()
		opts.Parallelism = parallelism
		var mu sync.Mutex
		type span struct {
			name       string
			start, end time.Time
		}
		spans := map[string]*span{}
		opts.Events = func(ev reconciler.Event) {
			mu.Lock()
			defer mu.Unlock()
			s := spans[ev.Guest]
			if s == nil {
				if ev.Outcome != reconciler.Started {
					return
				}
				s = &span{name: ev.Guest, start: ev.Time}
				spans[ev.Guest] = s
			}
			s.end = ev.Time
		}
		t0 := time.Now()
		if res := r.apply(context.Background(), opts); res.Failed() {
			b.Fatalf("apply failed: %+v", res)
		}
		all := make([]*span, 0, len(spans))
		for _, s := range spans {
			all = append(all, s)
		}
		slices.SortFunc(all, func(a, c *span) int { return cmp.Compare(a.start.UnixNano(), c.start.UnixNano()) })
		var out strings.Builder
		for _, s := range all {
			fmt.Fprintf(&out, "%-12s %6.2f s .. %6.2f s  %5.2f s\n", s.name, s.start.Sub(t0).Seconds(), s.end.Sub(t0).Seconds(), s.end.Sub(s.start).Seconds())
		}
		fmt.Printf("parallelism %d: makespan %.2f s\n%s", parallelism, time.Since(t0).Seconds(), out.String())
	}
}
