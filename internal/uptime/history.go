// Package uptime keeps a tenant's probe results for 30 days and answers what its status shows:
// the availability over 24 hours, 7 days and 30 days, whether the objective is met (over business
// hours only, when the tenant has them), how much of the error budget is left, and when the status
// is worth writing again.
//
// Availability is the share of probes that succeeded. A time without probes — the manager was
// down, the tenant is new, the scheduler skipped a probe that was still running — counts neither
// as up nor as down: no probe is no evidence. A tenant whose manager was down for a day therefore
// keeps the availability it had, computed over the probes that did run.
//
// Every function takes the current time as an argument; nothing here reads the clock.
package uptime

import (
	"math"
	"time"
)

const (
	// BucketWidth is the resolution of a History. Five minutes keeps 30 days in 8640 buckets
	// (17 KiB in memory per tenant) while business hours and windows stay exact to five minutes.
	BucketWidth = 5 * time.Minute
	// Retention is how far back a History remembers, the longest window it answers for.
	Retention = 30 * 24 * time.Hour

	bucketSeconds = int64(BucketWidth / time.Second)
	numBuckets    = int64(Retention / BucketWidth)
)

// bucket counts the probes that started within one BucketWidth. Probes run at most every 5 s, so
// a bucket sees at most 60 and a byte is plenty; see History.Record for what happens beyond 255.
type bucket struct {
	up, total uint8
}

// History is one tenant's probe results over the last 30 days, in buckets of BucketWidth that are
// aligned to the Unix epoch (so to whole minutes in every time zone of today). The zero value is
// an empty History ready for use. It is not safe for concurrent use.
type History struct {
	// buckets is a ring: bucket number n (Unix seconds / bucketSeconds) lives at n mod numBuckets.
	buckets [numBuckets]bucket
	// newest is the number of the newest bucket the ring holds; the ring covers
	// (newest-numBuckets, newest]. Buckets after newest have had no probe yet.
	newest int64
}

// Counts are probes counted over some span of time.
type Counts struct {
	Up, Total int
}

// Ratio is the share of probes that succeeded; ok is false when there were none.
func (c Counts) Ratio() (ratio float64, ok bool) {
	if c.Total == 0 {
		return 0, false
	}
	return float64(c.Up) / float64(c.Total), true
}

func (c *Counts) add(b bucket) {
	c.Up += int(b.up)
	c.Total += int(b.total)
}

// Record counts one probe that started at t. Results older than the Retention before the newest
// one are dropped; results may otherwise arrive in any order.
func (h *History) Record(t time.Time, up bool) {
	n := bucketOf(t)
	switch {
	case n > h.newest:
		// Everything between the old newest bucket and this one had no probes, and the slots
		// still hold counts from 30 days ago: empty them.
		for i := h.newest + 1; i <= n && i <= h.newest+numBuckets; i++ {
			h.buckets[slot(i)] = bucket{}
		}
		h.newest = n
	case n <= h.newest-numBuckets:
		return
	}
	b := &h.buckets[slot(n)]
	if b.total == math.MaxUint8 {
		// 255 probes in five minutes is one every 1.2 s, five times more often than the API
		// allows. Dropping the rest keeps the counts honest rather than wrapping them.
		return
	}
	b.total++
	if up {
		b.up++
	}
}

// Counts adds up the probes in the window that ends with the bucket holding now and reaches back
// window (rounded up to whole buckets, at most Retention). A 24-hour window is thus the 288
// buckets from 23h55m–24h ago up to now, the current one partly filled. The History holds only
// the Retention before its newest probe, so a window ending long before that is cut short.
func (h *History) Counts(window time.Duration, now time.Time) Counts {
	var c Counts
	first, last := h.span(window, now)
	for n := first; n <= last; n++ {
		c.add(h.buckets[slot(n)])
	}
	return c
}

// Ratio is Counts(window, now).Ratio(): the share of probes in the window that succeeded.
func (h *History) Ratio(window time.Duration, now time.Time) (ratio float64, ok bool) {
	return h.Counts(window, now).Ratio()
}

// span returns the numbers of the first and last bucket of the window that the ring still holds;
// first > last when there are none.
func (h *History) span(window time.Duration, now time.Time) (first, last int64) {
	last = bucketOf(now)
	width := int64((window + BucketWidth - 1) / BucketWidth)
	width = max(1, min(width, numBuckets))
	first = last - width + 1
	// Buckets after newest have no probes yet; the slots would hold month-old counts.
	last = min(last, h.newest)
	first = max(first, h.newest-numBuckets+1)
	return first, last
}

// bucketOf is the number of the bucket holding t, rounding down also before 1970.
func bucketOf(t time.Time) int64 { return floorDiv(t.Unix(), bucketSeconds) }

func slot(n int64) int64 {
	s := n % numBuckets
	if s < 0 {
		s += numBuckets
	}
	return s
}
