package uptime

import (
	"math/rand/v2"
	"testing"
	"time"
)

// event is one probe result offered to a WriteGate; due is whether a write must follow.
type event struct {
	at   time.Duration
	up   bool
	due  bool
	fail bool // the write is attempted and fails, so Wrote is not called
}

func TestWriteGate(t *testing.T) {
	s := time.Second
	tests := []struct {
		name   string
		events []event
	}{
		{
			name:   "the first result is written",
			events: []event{{at: 0, up: true, due: true}},
		},
		{
			name: "a steady tenant at 30 s writes every minute",
			events: []event{
				{at: 0, up: true, due: true}, {at: 30 * s, up: true}, {at: 60 * s, up: true, due: true},
				{at: 90 * s, up: true}, {at: 120 * s, up: true, due: true},
			},
		},
		{
			name: "a steady tenant at 45 s writes every 90 s",
			events: []event{
				{at: 0, up: true, due: true}, {at: 45 * s, up: true}, {at: 90 * s, up: true, due: true},
				{at: 135 * s, up: true}, {at: 180 * s, up: true, due: true},
			},
		},
		{
			name: "going down is written at once",
			events: []event{
				{at: 0, up: true, due: true}, {at: 10 * s, up: true}, {at: 20 * s, up: false, due: true},
				{at: 30 * s, up: false}, {at: 80 * s, up: false, due: true},
			},
		},
		{
			name: "recovering a minute after going down is written at once",
			events: []event{
				{at: 0, up: true, due: true}, {at: 30 * s, up: false, due: true},
				{at: 60 * s, up: false}, {at: 90 * s, up: true, due: true},
			},
		},
		{
			// The early write for going down was at 30 s; the next early one may come at 90 s,
			// and the regular one is due at 90 s anyway.
			name: "recovering within a minute of an early write waits for the regular write",
			events: []event{
				{at: 0, up: true, due: true}, {at: 30 * s, up: false, due: true},
				{at: 40 * s, up: true}, {at: 50 * s, up: true}, {at: 90 * s, up: true, due: true},
			},
		},
		{
			name: "a tenant flapping at 5 s writes twice a minute",
			events: []event{
				{at: 0, up: true, due: true}, {at: 5 * s, up: false, due: true}, {at: 10 * s, up: true},
				{at: 15 * s, up: false}, {at: 55 * s, up: true}, {at: 60 * s, up: false},
				{at: 65 * s, up: true, due: true}, {at: 70 * s, up: false, due: true}, {at: 75 * s, up: true},
			},
		},
		{
			name: "a failed write stays due",
			events: []event{
				{at: 0, up: true, due: true}, {at: 20 * s, up: false, due: true, fail: true},
				{at: 25 * s, up: false, due: true},
				{at: 30 * s, up: false},
			},
		},
		{
			name: "a failed first write stays due",
			events: []event{
				{at: 0, up: true, due: true, fail: true}, {at: 5 * s, up: true, due: true},
				{at: 10 * s, up: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g WriteGate
			for _, e := range tt.events {
				now := base.Add(e.at)
				if got := g.Due(now, e.up); got != e.due {
					t.Fatalf("at %v up=%v: Due = %v, want %v", e.at, e.up, got, e.due)
				}
				if e.due && !e.fail {
					g.Wrote(now, e.up)
				}
			}
		})
	}
}

// TestWriteGateBounds runs a day of probes at several intervals and patterns through a gate and
// checks the promises: never more than two writes in any minute, at most one a minute when the
// outcome does not change, and every change written within a minute and one interval.
func TestWriteGateBounds(t *testing.T) {
	patterns := map[string]func(i int, r *rand.Rand) bool{
		"steady":          func(int, *rand.Rand) bool { return true },
		"flapping":        func(i int, _ *rand.Rand) bool { return i%2 == 0 },
		"random":          func(_ int, r *rand.Rand) bool { return r.IntN(2) == 0 },
		"rare outages":    func(_ int, r *rand.Rand) bool { return r.IntN(50) != 0 },
		"long outages":    func(i int, _ *rand.Rand) bool { return (i/40)%2 == 0 },
		"bursts of flaps": func(i int, _ *rand.Rand) bool { return (i/100)%2 == 0 || i%3 == 0 },
	}
	for _, interval := range []time.Duration{5 * time.Second, 10 * time.Second, 30 * time.Second, 45 * time.Second, time.Hour} {
		for name, upAt := range patterns {
			t.Run(interval.String()+"/"+name, func(t *testing.T) {
				r := rand.New(rand.NewPCG(1, 2))
				var g WriteGate
				var writes []time.Time
				written := true // what the status says; starts equal to the first probe
				var pendingSince time.Time
				for i := 0; time.Duration(i)*interval < day; i++ {
					now := base.Add(time.Duration(i) * interval)
					up := upAt(i, r)
					if len(writes) > 0 && up != written && pendingSince.IsZero() {
						pendingSince = now
					}
					if up == written {
						pendingSince = time.Time{}
					}
					if g.Due(now, up) {
						if len(writes) > 0 && name == "steady" && now.Sub(writes[len(writes)-1]) < MinWriteInterval {
							t.Fatalf("steady tenant written twice within a minute, at %v and %v", writes[len(writes)-1], now)
						}
						g.Wrote(now, up)
						writes = append(writes, now)
						written, pendingSince = up, time.Time{}
					}
					if !pendingSince.IsZero() && now.Sub(pendingSince) > MinWriteInterval+interval {
						t.Fatalf("a change at %v is still not written at %v", pendingSince, now)
					}
				}
				for i := 2; i < len(writes); i++ {
					if writes[i].Sub(writes[i-2]) < MinWriteInterval {
						t.Fatalf("three writes within a minute: %v, %v, %v", writes[i-2], writes[i-1], writes[i])
					}
				}
				perMinute := float64(len(writes)) / (float64(day) / float64(time.Minute))
				t.Logf("%d writes in a day, %.2f a minute", len(writes), perMinute)
			})
		}
	}
}
