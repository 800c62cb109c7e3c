package uptime

import (
	"testing"
	"time"
)

// base is a Monday, midnight UTC, and so a bucket boundary.
var base = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

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
