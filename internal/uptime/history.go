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
	// BucketWidth is the resolution of a History. Five minutes keeps 30 days in 8640 buckets while
	// business hours and windows stay exact to five minutes. A History stores them compactly: a
	// tenant probed steadily for a month takes about 3 KiB, a new one about 100 bytes, and the
	// most eventful month about 18 KiB.
	BucketWidth = 5 * time.Minute
	// Retention is how far back a History remembers, the longest window it answers for.
	Retention = 30 * 24 * time.Hour

	bucketSeconds = int64(BucketWidth / time.Second)
	numBuckets    = int64(Retention / BucketWidth)

	// blockLen buckets, an hour, are kept as they are while the newest probe falls in them, so
	// that recording a probe costs no encoding; the History seals them into their day when a
	// probe of the next hour comes.
	blockLen = int64(time.Hour / BucketWidth)
	// dayLen buckets, a day, are the unit the History stores compactly (see encodeDay).
	dayLen = int64(24 * time.Hour / BucketWidth)
	// numDays is the number of days a Retention can touch: 30 whole ones, or 29 and the ends of
	// two more.
	numDays = numBuckets/dayLen + 1
)

// bucket counts the probes that started within one BucketWidth. Probes run at most every 5 s, so
// a bucket sees at most 60 and a byte is plenty; see History.Record for what happens beyond 255.
type bucket struct {
	up, total uint8
}

// History is one tenant's probe results over the last 30 days, in buckets of BucketWidth that are
// aligned to the Unix epoch (so to whole minutes in every time zone of today). The zero value is
// an empty History ready for use. It is not safe for concurrent use.
//
// Its memory follows what it holds rather than the length of the Retention: the hour of the
// newest probe is kept as it is, every other day of the month compactly in one string. The form
// is canonical (a bucket outside the Retention before newest is never kept, a day without probes
// takes no byte), so two Histories holding the same probes are ==, and a copy shares the
// immutable string safely.
type History struct {
	// newest is the number of the newest bucket the History holds; it covers
	// (newest-numBuckets, newest]. Buckets after newest have had no probe yet.
	newest int64
	// recent is the block holding newest, bucket blockStart(newest)+i at i. The day that holds
	// it has zero buckets in its place.
	recent [blockLen]bucket
	// days holds day d (buckets d*dayLen to d*dayLen+dayLen-1), encoded by encodeDay, at slot
	// d mod numDays, the slots one after another: slot i is days[ends[i-1]:ends[i]]. Slots of
	// days outside the Retention before newest are empty.
	days string
	ends [numDays]uint16
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
		h.advance(n)
	case n <= h.newest-numBuckets:
		return
	}
	if start := blockStart(h.newest); n >= start {
		count(&h.recent[n-start], up)
		return
	}
	// A late result for an hour already sealed: rare enough to decode and encode its day.
	d := floorDiv(n, dayLen)
	var buf [dayLen]bucket
	decodeDay(h.day(d), &buf)
	if count(&buf[n-d*dayLen], up) {
		h.putDay(d, &buf)
	}
}

// count adds a probe to b, reporting whether b changed.
func count(b *bucket, up bool) bool {
	if b.total == math.MaxUint8 {
		// 255 probes in five minutes is one every 1.2 s, five times more often than the API
		// allows. Dropping the rest keeps the counts honest rather than wrapping them.
		return false
	}
	b.total++
	if up {
		b.up++
	}
	return true
}

// advance makes n, after newest, the newest bucket: it seals the hour of the old newest bucket
// if n is in another, and forgets what falls out of the Retention before n.
func (h *History) advance(n int64) {
	if blockStart(n) != blockStart(h.newest) {
		h.sealRecent()
	}
	oldFirst, first := h.newest-numBuckets+1, n-numBuckets+1
	h.newest = n
	// Days wholly before the Retention give their slots to the days to come; after a gap of
	// numDays days or more, every slot is such a day.
	for d := floorDiv(oldFirst, dayLen); d < floorDiv(first, dayLen) && d < floorDiv(oldFirst, dayLen)+numDays; d++ {
		h.setDay(d, nil)
	}
	// The day the Retention now starts in loses its buckets before the start, which also keeps
	// the form canonical.
	d := floorDiv(first, dayLen)
	if s := h.day(d); s != "" {
		var buf [dayLen]bucket
		decodeDay(s, &buf)
		stale := buf[:first-d*dayLen]
		for _, b := range stale {
			if b != (bucket{}) {
				clear(stale)
				h.putDay(d, &buf)
				break
			}
		}
	}
}

// sealRecent moves the block of newest into its day, leaving recent empty.
func (h *History) sealRecent() {
	if h.recent == ([blockLen]bucket{}) {
		return
	}
	start := blockStart(h.newest)
	d := floorDiv(start, dayLen)
	var buf [dayLen]bucket
	decodeDay(h.day(d), &buf)
	copy(buf[start-d*dayLen:], h.recent[:])
	h.putDay(d, &buf)
	h.recent = [blockLen]bucket{}
}

// day is the encoded day d, which must be within numDays of newest's.
func (h *History) day(d int64) string {
	_, start, end := h.bounds(d)
	return h.days[start:end]
}

// bounds are the slot of day d and where its encoding starts and ends in days.
func (h *History) bounds(d int64) (slot int64, start, end int) {
	slot = floorMod(d, numDays)
	if slot > 0 {
		start = int(h.ends[slot-1])
	}
	return slot, start, int(h.ends[slot])
}

// putDay replaces day d with the buckets of day.
func (h *History) putDay(d int64, day *[dayLen]bucket) {
	var buf [maxDayLen]byte
	h.setDay(d, encodeDay(buf[:0], day))
}

// setDay replaces the encoded day d. Keeping all days in one string costs a copy of the month on
// every change (about 13 an hour once the month is full: the hour sealed, the oldest buckets
// dropped), and saves the 16-byte headers of 31 strings and their rounding up to a size class,
// most of the memory of a History that is new or steady.
func (h *History) setDay(d int64, enc []byte) {
	i, start, end := h.bounds(d)
	if h.days[start:end] == string(enc) {
		return
	}
	h.days = h.days[:start] + string(enc) + h.days[end:]
	grow := len(enc) - (end - start)
	for j := i; j < numDays; j++ {
		h.ends[j] = uint16(int(h.ends[j]) + grow)
	}
}

// Counts adds up the probes in the window that ends with the bucket holding now and reaches back
// window (rounded up to whole buckets, at most Retention). A 24-hour window is thus the 288
// buckets from 23h55m–24h ago up to now, the current one partly filled. The History holds only
// the Retention before its newest probe, so a window ending long before that is cut short.
func (h *History) Counts(window time.Duration, now time.Time) Counts {
	return h.sum(h.span(window, now))
}

// Ratio is Counts(window, now).Ratio(): the share of probes in the window that succeeded.
func (h *History) Ratio(window time.Duration, now time.Time) (ratio float64, ok bool) {
	return h.Counts(window, now).Ratio()
}

// span returns the numbers of the first and last bucket of the window that the History still
// holds; first > last when there are none.
func (h *History) span(window time.Duration, now time.Time) (first, last int64) {
	last = bucketOf(now)
	width := int64((window + BucketWidth - 1) / BucketWidth)
	width = max(1, min(width, numBuckets))
	first = last - width + 1
	// Buckets after newest have no probes yet, and the days they would be in are not held.
	last = min(last, h.newest)
	first = max(first, h.newest-numBuckets+1)
	return first, last
}

// sum adds up the buckets first to last, which span returned. A whole day is read from its
// encoding's totals without decoding it.
func (h *History) sum(first, last int64) Counts {
	var c Counts
	if first > last {
		return c
	}
	start := blockStart(h.newest)
	for n := max(first, start); n <= last; n++ {
		c.add(h.recent[n-start])
	}
	last = min(last, start-1)
	var buf [dayLen]bucket
	for d := floorDiv(first, dayLen); first <= last && d <= floorDiv(last, dayLen); d++ {
		lo, hi := max(first, d*dayLen), min(last, d*dayLen+dayLen-1)
		s := h.day(d)
		switch {
		case s == "":
		case lo == d*dayLen && hi == d*dayLen+dayLen-1:
			up, total := daySums(s)
			c.Up += up
			c.Total += total
		default:
			decodeDay(s, &buf)
			for n := lo; n <= hi; n++ {
				c.add(buf[n-d*dayLen])
			}
		}
	}
	return c
}

// reader reads a History's buckets one by one, decoding each day it reads from once, for walks
// that skip buckets (business hours). It is meant to live on the stack of one walk.
type reader struct {
	h *History
	// oldest and recent are the first buckets of the Retention and of the raw block.
	oldest, recent int64
	// buf holds the day from dayStart on, when decoded.
	decoded  bool
	dayStart int64
	buf      [dayLen]bucket
}

func (h *History) reader() reader {
	return reader{h: h, oldest: h.newest - numBuckets + 1, recent: blockStart(h.newest)}
}

// at is bucket n; buckets outside the Retention before newest, or after it, are empty. The
// business hours of a month call it some 4000 times, hence the cheap checks first.
func (r *reader) at(n int64) bucket {
	switch {
	case n >= r.recent:
		if n > r.h.newest {
			return bucket{}
		}
		return r.h.recent[n-r.recent]
	case n < r.oldest:
		return bucket{}
	case r.decoded && n >= r.dayStart && n < r.dayStart+dayLen:
		return r.buf[n-r.dayStart]
	}
	d := floorDiv(n, dayLen)
	decodeDay(r.h.day(d), &r.buf)
	r.decoded, r.dayStart = true, d*dayLen
	return r.buf[n-r.dayStart]
}

// bucketOf is the number of the bucket holding t, rounding down also before 1970.
func bucketOf(t time.Time) int64 { return floorDiv(t.Unix(), bucketSeconds) }

// blockStart is the number of the first bucket of n's block.
func blockStart(n int64) int64 { return floorDiv(n, blockLen) * blockLen }

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }
