package uptime

import (
	"fmt"
	"testing"
	"time"
)

// Figures change at most once a refresh interval per tenant, on the tenant's own slot: the first
// publication (at once, wherever the slot is) is followed by the next at least 9 minutes later,
// and publications on the slot, even a little late, are one interval apart.
func TestNextPublishKeepsAnIntervalBetweenChanges(t *testing.T) {
	const interval = 10 * time.Minute
	start := time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)
	for i := range 50 {
		name := fmt.Sprintf("tenant-%d", i)
		for _, offset := range []time.Duration{0, 7 * time.Second, 3 * time.Minute, 9*time.Minute + 59*time.Second} {
			first := start.Add(offset)
			next := nextPublish(name, interval, first)
			if gap := next.Sub(first); gap < interval-interval/10 || gap > 2*interval {
				t.Fatalf("%s published at %s: next at %s, %s later", name, first, next, gap)
			}
			if slot := NextSlot(name, interval, next.Add(-time.Second)); !slot.Equal(next) {
				t.Fatalf("%s: next publication %s is not on its slot (%s)", name, next, slot)
			}
			for _, late := range []time.Duration{0, 800 * time.Millisecond, 30 * time.Second} {
				if after := nextPublish(name, interval, next.Add(late)); !after.Equal(next.Add(interval)) {
					t.Fatalf("%s published on its slot %s (%s late): next at %s, want one interval on", name, next, late, after)
				}
			}
		}
	}
}
