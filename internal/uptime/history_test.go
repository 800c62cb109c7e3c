package uptime

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// base is a Monday, midnight UTC, and so a bucket boundary.
var base = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// at is bucket n of h, for tests that check single buckets; it decodes n's day on every call.
func (h *History) at(n int64) bucket {
	r := h.reader()
	return r.at(n)
}

// probeEvery records a probe every interval in [from, to), up unless down says otherwise.
func probeEvery(h *History, from, to time.Time, every time.Duration, down func(time.Time) bool) {
	for t := from; t.Before(to); t = t.Add(every) {
		h.Record(t, down == nil || !down(t))
	}
}

// between is a down function for probes in [from, to).
func between(from, to time.Time) func(time.Time) bool {
	return func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
}

func TestCounts(t *testing.T) {
	tests := []struct {
		name   string
		record func(h *History)
		window time.Duration
		now    time.Time
		want   Counts
	}{
		{
			name:   "empty history has no probes",
			record: func(h *History) {},
			window: day, now: base,
			want: Counts{},
		},
		{
			name: "a window of one bucket ends at the bucket boundary before now",
			record: func(h *History) {
				h.Record(base.Add(12*time.Hour+4*time.Minute+59*time.Second), true)
				h.Record(base.Add(12*time.Hour+5*time.Minute), false)
			},
			window: 5 * time.Minute, now: base.Add(12*time.Hour + 5*time.Minute + 30*time.Second),
			want: Counts{Up: 0, Total: 1},
		},
		{
			name: "a window crossing a bucket boundary takes both buckets",
			record: func(h *History) {
				h.Record(base.Add(12*time.Hour+4*time.Minute+59*time.Second), true)
				h.Record(base.Add(12*time.Hour+5*time.Minute), false)
			},
			window: 10 * time.Minute, now: base.Add(12*time.Hour + 5*time.Minute + 30*time.Second),
			want: Counts{Up: 1, Total: 2},
		},
		{
			name: "a window that is not whole buckets is rounded up",
			record: func(h *History) {
				h.Record(base.Add(12*time.Hour+4*time.Minute+59*time.Second), true)
				h.Record(base.Add(12*time.Hour+5*time.Minute), false)
			},
			window: 6 * time.Minute, now: base.Add(12*time.Hour + 5*time.Minute + 30*time.Second),
			want: Counts{Up: 1, Total: 2},
		},
		{
			// 24 h back from 48h00 is the buckets from 24h05 on: 2870 probes at 30 s, of which
			// the 20 of the 10-minute outage at 36h failed.
			name: "24 hours of steady probes with an outage",
			record: func(h *History) {
				probeEvery(h, base, base.Add(2*day), 30*time.Second,
					between(base.Add(36*time.Hour), base.Add(36*time.Hour+10*time.Minute)))
			},
			window: day, now: base.Add(2 * day),
			want: Counts{Up: 2850, Total: 2870},
		},
		{
			name: "7 days reach back before the first probe",
			record: func(h *History) {
				probeEvery(h, base, base.Add(2*day), 30*time.Second,
					between(base.Add(36*time.Hour), base.Add(36*time.Hour+10*time.Minute)))
			},
			window: 7 * day, now: base.Add(2 * day),
			want: Counts{Up: 5740, Total: 5760},
		},
		{
			// The manager was down from 1h to 5h: those hours count neither way.
			name: "a gap without probes is not downtime",
			record: func(h *History) {
				probeEvery(h, base, base.Add(time.Hour), 30*time.Second, nil)
				probeEvery(h, base.Add(5*time.Hour), base.Add(6*time.Hour), 30*time.Second,
					between(base.Add(5*time.Hour), base.Add(5*time.Hour+time.Minute)))
			},
			window: day, now: base.Add(6 * time.Hour),
			want: Counts{Up: 238, Total: 240},
		},
		{
			name: "now long after the last probe sees the old probes still in the window",
			record: func(h *History) {
				probeEvery(h, base, base.Add(time.Hour), time.Minute, nil)
			},
			window: day, now: base.Add(20 * time.Hour),
			want: Counts{Up: 60, Total: 60},
		},
		{
			name: "probes older than 30 days are forgotten",
			record: func(h *History) {
				h.Record(base, false)
				h.Record(base.Add(30*day+time.Hour), true)
			},
			window: 30 * day, now: base.Add(30*day + time.Hour),
			want: Counts{Up: 1, Total: 1},
		},
		{
			name: "a result older than 30 days arriving late is dropped",
			record: func(h *History) {
				h.Record(base.Add(30*day+time.Hour), true)
				h.Record(base, false)
			},
			window: 30 * day, now: base.Add(30*day + time.Hour),
			want: Counts{Up: 1, Total: 1},
		},
		{
			name: "results arriving out of order all count",
			record: func(h *History) {
				h.Record(base.Add(2*time.Hour), true)
				h.Record(base.Add(time.Hour), false)
				h.Record(base.Add(90*time.Minute), true)
			},
			window: day, now: base.Add(3 * time.Hour),
			want: Counts{Up: 2, Total: 3},
		},
		{
			// Two whole retentions later the ring slot of the old probe is the current one again:
			// it must have been emptied, not added to.
			name: "a gap longer than the retention empties the whole ring",
			record: func(h *History) {
				h.Record(base, false)
				h.Record(base.Add(60*day), true)
			},
			window: 30 * day, now: base.Add(60 * day),
			want: Counts{Up: 1, Total: 1},
		},
		{
			name: "a gap of most of the retention keeps what is still inside it",
			record: func(h *History) {
				h.Record(base, false)
				h.Record(base.Add(29*day), true)
			},
			window: 30 * day, now: base.Add(29 * day),
			want: Counts{Up: 1, Total: 2},
		},
		{
			name: "a result stamped after now (clock skew) is not counted yet",
			record: func(h *History) {
				h.Record(base, true)
				h.Record(base.Add(10*time.Minute), false)
			},
			window: day, now: base.Add(time.Minute),
			want: Counts{Up: 1, Total: 1},
		},
		{
			// The failures of the first 10 days are out of reach; so is the probe at 10d
			// exactly, as the window starts with the bucket after it.
			name: "a window longer than the retention is the retention",
			record: func(h *History) {
				probeEvery(h, base, base.Add(40*day), time.Hour, between(base, base.Add(10*day)))
			},
			window: 365 * day, now: base.Add(40 * day),
			want: Counts{Up: 719, Total: 719},
		},
		{
			name: "times before 1970 fall in their own buckets",
			record: func(h *History) {
				h.Record(time.Unix(-1, 0), false)
				h.Record(time.Unix(0, 0), true)
			},
			window: 5 * time.Minute, now: time.Unix(1, 0),
			want: Counts{Up: 1, Total: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &History{}
			tt.record(h)
			if got := h.Counts(tt.window, tt.now); got != tt.want {
				t.Fatalf("Counts(%v, %v) = %+v, want %+v", tt.window, tt.now, got, tt.want)
			}
			ratio, ok := h.Ratio(tt.window, tt.now)
			if ok != (tt.want.Total > 0) {
				t.Fatalf("Ratio ok = %v with %d probes", ok, tt.want.Total)
			}
			if ok && ratio != float64(tt.want.Up)/float64(tt.want.Total) {
				t.Fatalf("Ratio = %v, want %d/%d", ratio, tt.want.Up, tt.want.Total)
			}
		})
	}
}

func TestRecordSaturatesABucket(t *testing.T) {
	h := &History{}
	for i := 0; i < 300; i++ {
		h.Record(base.Add(time.Duration(i)*time.Millisecond), i%2 == 0)
	}
	got := h.Counts(BucketWidth, base)
	if got.Total != 255 || got.Up != 128 {
		t.Fatalf("Counts = %+v, want the first 255 probes (128 up) and no wrap-around", got)
	}
}

func TestDayEncoding(t *testing.T) {
	fill := func(f func(i int) bucket) *[dayLen]bucket {
		var day [dayLen]bucket
		for i := range day {
			day[i] = f(i)
		}
		return &day
	}
	tests := []struct {
		name    string
		day     *[dayLen]bucket
		maxSize int
		minSize int
	}{
		{name: "no probes", day: fill(func(int) bucket { return bucket{} }), maxSize: 0},
		{name: "one probe", day: fill(func(i int) bucket {
			if i == 100 {
				return bucket{up: 1, total: 1}
			}
			return bucket{}
		}), maxSize: 12},
		{name: "steady, no jitter", day: fill(func(int) bucket { return bucket{up: 20, total: 20} }), maxSize: 12},
		{name: "steady, jitter of two", day: fill(func(i int) bucket {
			n := uint8(14 + i*7%3)
			return bucket{up: n, total: n}
		}), maxSize: 90},
		{name: "an outage", day: fill(func(i int) bucket {
			n := uint8(14 + i*7%3)
			switch {
			case i >= 100 && i < 136:
				return bucket{total: n}
			case i == 99 || i == 136:
				return bucket{up: n / 2, total: n}
			}
			return bucket{up: n, total: n}
		}), maxSize: 100},
		{name: "a restart gap", day: fill(func(i int) bucket {
			if i >= 50 && i < 80 {
				return bucket{}
			}
			return bucket{up: 20, total: 20}
		}), maxSize: 16},
		{name: "all saturated", day: fill(func(int) bucket { return bucket{up: 255, total: 255} }), maxSize: 12},
		{name: "nothing repeats", day: fill(func(i int) bucket {
			n := uint8(1 + i*37%255)
			return bucket{up: uint8(i*11) % n, total: n}
		}), minSize: rawDayLen, maxSize: rawDayLen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := string(encodeDay(nil, tt.day))
			t.Logf("%d bytes", len(enc))
			if len(enc) > tt.maxSize || len(enc) < tt.minSize {
				t.Errorf("encoded in %d bytes, want %d to %d", len(enc), tt.minSize, tt.maxSize)
			}
			var got [dayLen]bucket
			got[7] = bucket{up: 1, total: 9} // decodeDay must overwrite every bucket
			decodeDay(enc, &got)
			if got != *tt.day {
				t.Fatalf("decoded day differs:\n got %v\nwant %v", got, *tt.day)
			}
			var want Counts
			for _, b := range tt.day {
				want.add(b)
			}
			if up, total := daySums(enc); up != want.Up || total != want.Total {
				t.Errorf("daySums = %d up of %d, want %+v", up, total, want)
			}
		})
	}
}

// TestLateRecords records results into hours already sealed, as a probe that took long or a
// delivery delayed by a busy manager would: each must count once, in its own bucket, and leave the
// History as if it had come in order.
func TestLateRecords(t *testing.T) {
	end := base.Add(20*day + 12*time.Hour)
	tests := []struct {
		name string
		late time.Time
		up   bool
		// counted is false for results too old to keep.
		counted bool
	}{
		{name: "the hour before", late: end.Add(-time.Hour + 7*time.Second), up: false, counted: true},
		{name: "earlier the same day", late: end.Add(-10 * time.Hour), up: true, counted: true},
		{name: "ten days back", late: end.Add(-10 * day), up: false, counted: true},
		{name: "into a day without probes", late: base.Add(3 * day), up: false, counted: true},
		{name: "before the first probe", late: base.Add(-5 * day), up: true, counted: true},
		{name: "the oldest bucket still kept", late: end.Add(-30*day + BucketWidth), up: false, counted: true},
		{name: "just older than the Retention", late: end.Add(-30 * day), up: false, counted: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noProbes := between(base.Add(3*day), base.Add(4*day))
			record := func(h *History, late bool) {
				for at := base; at.Before(end); at = at.Add(30 * time.Second) {
					if !noProbes(at) {
						h.Record(at, true)
					}
				}
				h.Record(end, true)
				if late {
					h.Record(tt.late, tt.up)
				}
			}
			h, without := &History{}, &History{}
			record(h, true)
			record(without, false)
			want := without.Counts(Retention, end)
			if tt.counted {
				want.Total++
				if tt.up {
					want.Up++
				}
			}
			if got := h.Counts(Retention, end); got != want {
				t.Fatalf("Counts = %+v, want %+v", got, want)
			}
			n := bucketOf(tt.late)
			if got, before := h.at(n), without.at(n); tt.counted && got.total != before.total+1 {
				t.Fatalf("bucket of the late result holds %+v, had %+v", got, before)
			}
			// The same probes recorded in order give the same History.
			inOrder := &History{}
			if tt.counted && tt.late.Before(base) {
				inOrder.Record(tt.late, tt.up)
			}
			for at := base; at.Before(end); at = at.Add(30 * time.Second) {
				if !noProbes(at) {
					inOrder.Record(at, true)
				}
				if tt.counted && !tt.late.Before(at) && tt.late.Before(at.Add(30*time.Second)) {
					inOrder.Record(tt.late, tt.up)
				}
			}
			inOrder.Record(end, true)
			if *inOrder != *h {
				t.Fatal("the History differs from one that recorded the same probes in order")
			}
		})
	}
}

func TestLateRecordSaturates(t *testing.T) {
	h := &History{}
	for i := 0; i < 300; i++ {
		h.Record(base.Add(time.Duration(i)*time.Millisecond), i%2 == 0)
	}
	h.Record(base.Add(2*day), true)
	h.Record(base.Add(time.Second), false)
	if got := h.at(bucketOf(base)); got != (bucket{up: 128, total: 255}) {
		t.Fatalf("bucket = %+v after a late result into a full bucket, want 128 up of 255", got)
	}
}

// TestDaysAgeOut checks that a day's memory is given back as it leaves the Retention, whether
// newest moves on bucket by bucket or jumps, and that its slot serves the days after it.
func TestDaysAgeOut(t *testing.T) {
	tests := []struct {
		name string
		// start is when the first 24 hours of probes, one a minute, begin after base.
		start time.Duration
		// next is when the one probe after them comes.
		next time.Time
		// wantFirstDay is what is left of the first 24 hours.
		wantFirstDay int
	}{
		{name: "the next day", next: base.Add(day), wantFirstDay: 24 * 60},
		{name: "29 days later", next: base.Add(29 * day), wantFirstDay: 24 * 60},
		{name: "30 days later: the first bucket goes", next: base.Add(30 * day), wantFirstDay: 24*60 - 5},
		{name: "30 days and 12 hours later: half goes", next: base.Add(30*day + 12*time.Hour), wantFirstDay: 12*60 - 5},
		{name: "31 days later, the same slot", next: base.Add(31 * day), wantFirstDay: 0},
		{name: "31 days and a bucket later", next: base.Add(31*day + BucketWidth), wantFirstDay: 0},
		{name: "62 days later, the same slot again", next: base.Add(62 * day), wantFirstDay: 0},
		{name: "a year later", next: base.Add(365 * day), wantFirstDay: 0},
		// Starting at 06:00, the newest bucket is early in a day, and the Retention before it
		// touches 31 days.
		{name: "from 06:00, 30 days and 12 hours later", start: 6 * time.Hour, next: base.Add(30*day + 18*time.Hour), wantFirstDay: 12*60 - 5},
		{name: "from 06:00, 31 days later", start: 6 * time.Hour, next: base.Add(31*day + 6*time.Hour), wantFirstDay: 0},
		{name: "from 06:00, 45 days later", start: 6 * time.Hour, next: base.Add(45*day + 6*time.Hour), wantFirstDay: 0},
		{name: "from 06:00, 100 days later", start: 6 * time.Hour, next: base.Add(100*day + 7*time.Hour), wantFirstDay: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := base.Add(tt.start)
			h := &History{}
			probeEvery(h, from, from.Add(day), time.Minute, nil)
			h.Record(tt.next, true)
			if got := h.Counts(Retention, tt.next).Total - 1; got != tt.wantFirstDay {
				t.Fatalf("%d probes left of the first day, want %d", got, tt.wantFirstDay)
			}
			if got, want := h.at(bucketOf(tt.next)), (bucket{up: 1, total: 1}); got != want {
				t.Fatalf("bucket of the new probe holds %+v, want %+v", got, want)
			}
			if tt.wantFirstDay == 0 && (h.days != "" || h.ends != [numDays]uint16{}) {
				t.Fatalf("the first day still takes %d bytes after it left the Retention", len(h.days))
			}
			// Nothing of what left is kept: the History is the one that never had it.
			kept := &History{}
			oldest := time.Unix((bucketOf(tt.next)-numBuckets+1)*bucketSeconds, 0)
			for at := from; at.Before(from.Add(day)); at = at.Add(time.Minute) {
				if !at.Before(oldest) {
					kept.Record(at, true)
				}
			}
			kept.Record(tt.next, true)
			if *kept != *h {
				t.Fatalf("the History differs from one without the probes that left; %d bytes of days, want %d", len(h.days), len(kept.days))
			}
		})
	}

	// Bucket by bucket, the first day shrinks to nothing.
	h := &History{}
	probeEvery(h, base, base.Add(day), time.Minute, nil)
	for at := base.Add(30 * day); at.Before(base.Add(31*day + time.Hour)); at = at.Add(BucketWidth) {
		h.Record(at, true)
	}
	if got := h.Counts(Retention, base.Add(31*day+time.Hour)); got.Total != 300 {
		t.Fatalf("after the first day left: %+v, want only the 300 later probes", got)
	}
	// What remains is the 24 hours since the first day, one probe a bucket: a few bytes.
	if len(h.days) > 16 {
		t.Fatalf("the days take %d bytes, want the last day's few", len(h.days))
	}
}

// TestHistoryMatchesReference drives a History and a plain map of buckets with the same random
// probes, 40 days' worth (in order, late, saturating buckets, with gaps of up to 70 days), and
// compares every answer.
func TestHistoryMatchesReference(t *testing.T) {
	amsterdam := mustHours(t, "Europe/Amsterdam", "08:30", "18:00")
	starts := map[string]time.Time{
		"2026":        base.Add(17*time.Hour + 3*time.Minute),
		"before 1970": time.Unix(-20*86400+1234, 0),
		"around DST":  time.Date(2026, 3, 14, 5, 0, 0, 0, time.UTC),
	}
	for name, start := range starts {
		for seed := range uint64(2) {
			t.Run(fmt.Sprintf("%s/%d", name, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 7))
				h, ref := &History{}, newReference()
				at := start
				checks := 0
				// As many probes as 40 days at one per 20 s hold, however far the gaps take them.
				for range 40 * 24 * 180 {
					// Mostly the next probe, 15 to 25 s later; now and then a gap or a result
					// that comes late, up to a little more than the Retention.
					switch r := rng.IntN(100_000); {
					case r < 5:
						at = at.Add(time.Duration(rng.Int64N(int64(3 * day))))
					case r < 8:
						at = at.Add(time.Duration(rng.Int64N(int64(70 * day))))
					case r < 3000:
						late := at.Add(-time.Duration(rng.Int64N(int64(2 * time.Hour))))
						up := rng.IntN(2) == 0
						h.Record(late, up)
						ref.record(late, up)
					case r < 3500:
						late := at.Add(-time.Duration(rng.Int64N(int64(Retention + 2*day))))
						up := rng.IntN(2) == 0
						h.Record(late, up)
						ref.record(late, up)
					case r < 3510:
						// A burst past the 255 a bucket holds.
						for i := range 300 {
							h.Record(at, i%3 == 0)
							ref.record(at, i%3 == 0)
						}
					}
					at = at.Add(15*time.Second + time.Duration(rng.Int64N(int64(10*time.Second))))
					up := (at.Unix()/3600)%29 != 0 && rng.IntN(50) != 0
					h.Record(at, up)
					ref.record(at, up)

					if rng.IntN(4000) == 0 {
						checks++
						compareWithReference(t, rng, h, ref, at, amsterdam)
					}
				}
				compareWithReference(t, rng, h, ref, at, amsterdam)
				t.Logf("%d checks, %d bytes of days", checks+1, len(h.days))
			})
		}
	}
}

// reference is a History kept as plainly as possible.
type reference struct {
	newest  int64
	buckets map[int64]bucket
}

func newReference() *reference { return &reference{buckets: map[int64]bucket{}} }

func (r *reference) record(t time.Time, up bool) {
	n := bucketOf(t)
	if n > r.newest {
		if n-r.newest >= numBuckets {
			clear(r.buckets)
		}
		for k := max(r.newest, n-numBuckets) - numBuckets + 1; k <= n-numBuckets; k++ {
			delete(r.buckets, k)
		}
		r.newest = n
	}
	if n <= r.newest-numBuckets {
		return
	}
	b := r.buckets[n]
	if b.total < 255 {
		b.total++
		if up {
			b.up++
		}
	}
	r.buckets[n] = b
}

func (r *reference) span(window time.Duration, now time.Time) (first, last int64) {
	last = bucketOf(now)
	width := max(1, min(int64((window+BucketWidth-1)/BucketWidth), numBuckets))
	return max(last-width+1, r.newest-numBuckets+1), min(last, r.newest)
}

func (r *reference) counts(first, last int64, in func(n int64) bool) Counts {
	var c Counts
	for n := first; n <= last; n++ {
		if in == nil || in(n) {
			c.add(r.buckets[n])
		}
	}
	return c
}

// marshal is MarshalBinary's format written from its description.
func (r *reference) marshal() []byte {
	out := []byte{encodingVersion}
	out = binary.AppendUvarint(out, uint64(bucketSeconds))
	out = binary.AppendVarint(out, r.newest)
	oldest := r.newest - numBuckets + 1
	for oldest <= r.newest && r.buckets[oldest] == (bucket{}) {
		oldest++
	}
	for n := r.newest; n >= oldest; {
		b, run := r.buckets[n], uint64(0)
		for ; n >= oldest && r.buckets[n] == b; n-- {
			run++
		}
		out = binary.AppendUvarint(out, run)
		out = append(out, b.total, b.up)
	}
	return out
}

func compareWithReference(t *testing.T, rng *rand.Rand, h *History, ref *reference, at time.Time, hours *BusinessHours) {
	t.Helper()
	windows := []time.Duration{BucketWidth, time.Hour, day, 7 * day, Retention, 365 * day}
	for range 10 {
		window := windows[rng.IntN(len(windows))]
		if rng.IntN(2) == 0 {
			window = time.Duration(rng.Int64N(int64(Retention + day)))
		}
		now := at.Add(time.Duration(rng.Int64N(int64(4*day))) - 3*day)
		first, last := ref.span(window, now)
		if got, want := h.Counts(window, now), ref.counts(first, last, nil); got != want {
			t.Fatalf("at %v: Counts(%v, %v) = %+v, want %+v", at, window, now, got, want)
		}
	}
	now := at.Add(time.Duration(rng.Int64N(int64(time.Hour))))
	first, last := ref.span(ObjectiveWindow, now)
	o, _ := ParseObjective("99.5")
	if got, want := o.Evaluate(h, now).Counts, ref.counts(first, last, nil); got != want {
		t.Fatalf("at %v: the objective counted %+v, want %+v", at, got, want)
	}
	o.Hours = hours
	inHours := func(n int64) bool { return hours.Contains(time.Unix(n*bucketSeconds, 0)) }
	if got, want := o.Evaluate(h, now).Counts, ref.counts(first, last, inHours); got != want {
		t.Fatalf("at %v: the objective over business hours counted %+v, want %+v", at, got, want)
	}
	for range 100 {
		n := ref.newest - rng.Int64N(numBuckets+300) + 100
		if got, want := h.at(n), ref.buckets[n]; got != want && n > ref.newest-numBuckets {
			t.Fatalf("at %v: bucket %d holds %+v, want %+v", at, n, got, want)
		}
	}
	data, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := ref.marshal(); !bytes.Equal(data, want) {
		t.Fatalf("at %v: MarshalBinary gives %d bytes other than the format's %d", at, len(data), len(want))
	}
	var decoded History
	if err := decoded.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if decoded != *h {
		t.Fatalf("at %v: the decoded History differs from the one encoded", at)
	}
}
