package uptime

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMarshalRoundTrip(t *testing.T) {
	month := base.Add(30 * day)
	tests := []struct {
		name    string
		record  func(h *History)
		maxSize int
	}{
		{name: "empty", record: func(h *History) {}, maxSize: 4},
		{
			name: "a steady month at 30 s",
			record: func(h *History) {
				probeEvery(h, base, month.Add(90*time.Second), 30*time.Second, nil)
			},
			maxSize: 16,
		},
		{
			name: "a month at 30 s with ten outages",
			record: func(h *History) {
				probeEvery(h, base, month, 30*time.Second, func(t time.Time) bool {
					// 7 minutes down every third day, starting mid-bucket.
					since := t.Sub(base) % (3 * day)
					return since >= 2*time.Minute && since < 9*time.Minute
				})
			},
			maxSize: 120,
		},
		{
			name: "a month with a restart gap",
			record: func(h *History) {
				probeEvery(h, base, base.Add(10*day), 30*time.Second, nil)
				probeEvery(h, base.Add(10*day+2*time.Hour), month, 30*time.Second, nil)
			},
			maxSize: 24,
		},
		{
			// The worst case: no two neighbouring buckets alike.
			name: "a month of flapping",
			record: func(h *History) {
				i := 0
				probeEvery(h, base, month, 30*time.Second, func(time.Time) bool {
					i++
					return (i/10)%2 == 0 && i%10 < 3
				})
			},
			maxSize: 3*int(numBuckets) + 8,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &History{}
			tt.record(h)
			data, err := h.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d bytes", len(data))
			if len(data) > tt.maxSize {
				t.Errorf("encoded in %d bytes, want at most %d", len(data), tt.maxSize)
			}
			var decoded History
			if err := decoded.UnmarshalBinary(data); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if decoded != *h {
				t.Fatal("decoded history differs from the original")
			}
			again, _ := decoded.MarshalBinary()
			if !bytes.Equal(again, data) {
				t.Fatal("encoding the decoded history gives other bytes")
			}
		})
	}
}

// TestRestartContinues stops the manager for two hours in the middle of a week: the history that
// went through MarshalBinary and UnmarshalBinary must go on exactly as one that never stopped, and
// the two hours without probes count neither way.
func TestRestartContinues(t *testing.T) {
	outage := between(base.Add(3*day), base.Add(3*day+20*time.Minute))
	stop, start := base.Add(4*day+time.Hour), base.Add(4*day+3*time.Hour)
	end := base.Add(7 * day)

	uninterrupted := &History{}
	probeEvery(uninterrupted, base, stop, 30*time.Second, outage)
	probeEvery(uninterrupted, start, end, 30*time.Second, outage)

	before := &History{}
	probeEvery(before, base, stop, 30*time.Second, outage)
	saved, err := before.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ratioAtStop, _ := before.Ratio(7*day, stop)

	after := &History{}
	if err := after.UnmarshalBinary(saved); err != nil {
		t.Fatal(err)
	}
	if got, _ := after.Ratio(7*day, start); got != ratioAtStop {
		t.Fatalf("after the restart the 7-day ratio is %v, want %v as at the stop: a gap is not downtime", got, ratioAtStop)
	}
	probeEvery(after, start, end, 30*time.Second, outage)

	for _, window := range []time.Duration{time.Hour, day, 7 * day, 30 * day} {
		if got, want := after.Counts(window, end), uninterrupted.Counts(window, end); got != want {
			t.Errorf("%v window after a restart: %+v, want %+v", window, got, want)
		}
	}
	// Seven days of probes at 30 s, less the first bucket (the window starts with the one after
	// it), less the two hours not probed; the 20-minute outage failed 40 probes.
	total := 7*2880 - 10 - 240
	if got, want := after.Counts(7*day, end), (Counts{Up: total - 40, Total: total}); got != want {
		t.Errorf("7 days: %+v, want %+v", got, want)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	valid := func() []byte {
		h := &History{}
		probeEvery(h, base, base.Add(time.Hour), 30*time.Second, between(base, base.Add(time.Minute)))
		data, _ := h.MarshalBinary()
		return data
	}
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{name: "empty", data: nil, wantErr: "empty"},
		{name: "unknown version", data: append([]byte{2}, valid()[1:]...), wantErr: "unknown version 2"},
		{name: "other bucket width", data: []byte{1, 60, 0}, wantErr: "buckets of 60 s"},
		{name: "truncated width", data: []byte{1}, wantErr: "truncated bucket width"},
		{name: "truncated newest", data: []byte{1, 0xac, 0x02}, wantErr: "truncated newest"},
		{name: "truncated run", data: valid()[:len(valid())-1], wantErr: "truncated run"},
		{name: "more up than probes", data: []byte{1, 0xac, 0x02, 0, 1, 3, 4}, wantErr: "4 up of 3 probes"},
		{name: "empty run", data: []byte{1, 0xac, 0x02, 0, 0, 3, 3}, wantErr: "more than 8640"},
		{name: "runs longer than 30 days", data: []byte{1, 0xac, 0x02, 0, 0xc1, 0x43, 3, 3}, wantErr: "more than 8640"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &History{}
			h.Record(base, true)
			err := h.UnmarshalBinary(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("UnmarshalBinary error = %v, want it to contain %q", err, tt.wantErr)
			}
			if got := h.Counts(day, base); got != (Counts{Up: 1, Total: 1}) {
				t.Fatalf("a failed UnmarshalBinary changed the history: %+v", got)
			}
		})
	}
}
