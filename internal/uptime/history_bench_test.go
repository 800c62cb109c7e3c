package uptime

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// probe is one recorded result of a benchmark's history.
type probe struct {
	at time.Time
	up bool
}

// jittered is a probe every 20 s from start for span, each up to 2 s early or late, so that a
// bucket sees 14 to 16 probes as with the scheduler's jitter; down says which fail.
func jittered(rng *rand.Rand, start time.Time, span time.Duration, down func(time.Time) bool) []probe {
	var ps []probe
	for at := time.Duration(0); at < span; at += 20 * time.Second {
		t := start.Add(at + time.Duration(rng.Int64N(int64(4*time.Second))) - 2*time.Second)
		ps = append(ps, probe{at: t, up: down == nil || !down(t)})
	}
	return ps
}

// every is a probe every interval from start for span, all up.
func every(start time.Time, span, interval time.Duration) []probe {
	var ps []probe
	for at := time.Duration(0); at < span; at += interval {
		ps = append(ps, probe{at: start.Add(at), up: true})
	}
	return ps
}

// historyCases are the histories the benchmarks measure: a tenant just created, a month of steady
// probing (on the scheduler's grid, and with jitter), a month with an outage of a few hours every
// few days, and the worst case, no two buckets alike.
func historyCases() []struct {
	name   string
	probes []probe
} {
	rng := rand.New(rand.NewPCG(1, 2))
	month := 30 * day
	outages := func(t time.Time) bool {
		// Three hours down every fourth day, starting mid-bucket.
		since := t.Sub(base) % (4 * day)
		return since >= 10*time.Hour+2*time.Minute && since < 13*time.Hour+2*time.Minute
	}
	var worst []probe
	for n := bucketOf(base); n < bucketOf(base.Add(month)); n++ {
		total := 1 + rng.IntN(60)
		up := rng.IntN(total + 1)
		for i := range total {
			worst = append(worst, probe{at: time.Unix(n*bucketSeconds+int64(i), 0), up: i < up})
		}
	}
	return []struct {
		name   string
		probes []probe
	}{
		{name: "10 minutes", probes: jittered(rng, base, 10*time.Minute, nil)},
		// The scheduler stamps a result with its turn, so at the default 15 s every bucket
		// holds 20 probes exactly.
		{name: "steady month on the 15 s grid", probes: every(base, month, 15*time.Second)},
		{name: "steady month", probes: jittered(rng, base, month, nil)},
		{name: "month with outages", probes: jittered(rng, base, month, outages)},
		{name: "every bucket different", probes: worst},
	}
}

// BenchmarkHistoryMemory reports the heap one History holds after its probes were recorded
// (B/history), measured over histories kept alive together; ns/op is the cost of recording them.
func BenchmarkHistoryMemory(b *testing.B) {
	for _, c := range historyCases() {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				h := &History{}
				for _, p := range c.probes {
					h.Record(p.at, p.up)
				}
			}
			// After the loop, which would reset it.
			b.ReportMetric(heapPerHistory(c.probes), "B/history")
		})
	}
}

// heapPerHistory is the heap that histories of the probes hold, per history. A fixed count rather
// than b.N keeps the benchmark from holding gigabytes when recording is fast.
func heapPerHistory(probes []probe) float64 {
	const n = 500
	histories := make([]*History, 0, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		h := &History{}
		for _, p := range probes {
			h.Record(p.at, p.up)
		}
		histories = append(histories, h)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(histories)
	return float64(after.HeapAlloc-before.HeapAlloc) / n
}

// recorded is a History of probes, and the time of the last of them.
func recorded(probes []probe) (*History, time.Time) {
	h := &History{}
	for _, p := range probes {
		h.Record(p.at, p.up)
	}
	return h, probes[len(probes)-1].at
}

// BenchmarkCounts is the cost of the three windows a status shows, over each case's history.
func BenchmarkCounts(b *testing.B) {
	for _, c := range historyCases() {
		h, now := recorded(c.probes)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				h.Counts(day, now)
				h.Counts(7*day, now)
				h.Counts(30*day, now)
			}
		})
	}
}

// BenchmarkEvaluateHistories is the cost of an objective over business hours, which walks the
// buckets one by one, over each case's history.
func BenchmarkEvaluateHistories(b *testing.B) {
	o, _ := ParseObjective("99.5")
	o.Hours = mustHours(&testing.T{}, "Europe/Amsterdam", "09:00", "17:00")
	for _, c := range historyCases() {
		h, now := recorded(c.probes)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				o.Evaluate(h, now)
			}
		})
	}
}
