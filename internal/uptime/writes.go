package uptime

import "time"

// MinWriteInterval is the least time between two status writes of a tenant at steady state,
// whatever its probe interval: 1000 tenants probed every 5 s would otherwise write 12000 times a
// minute, each a watch event for every client of the API server.
const MinWriteInterval = time.Minute

// WriteGate decides when a tenant's uptime status is worth writing: the first time, then at most
// once per MinWriteInterval, and at once when the probe outcome flips between up and down, so
// that Available follows an outage without waiting. A tenant that flaps would make every probe a
// flip; one early write per MinWriteInterval is allowed, so even then a tenant costs at most two
// writes a minute, and a recovery that follows an early write by less than a minute waits for the
// regular one.
//
// The zero value has never written. The manager keeps one per tenant in memory; after a restart
// each tenant writes once more, which is the write that shows the restarted manager's view.
type WriteGate struct {
	written   bool
	last      time.Time // of the last write
	lastUp    bool      // what the last write said
	lastEarly time.Time // of the last write made early for a flip; zero if none
}

// Due reports whether a status saying up should be written at now.
func (g *WriteGate) Due(now time.Time, up bool) bool {
	switch {
	case !g.written:
		return true
	case now.Sub(g.last) >= MinWriteInterval:
		return true
	case up != g.lastUp:
		return g.lastEarly.IsZero() || now.Sub(g.lastEarly) >= MinWriteInterval
	default:
		return false
	}
}

// Wrote records that a status saying up was written at now. Call it only once the write
// succeeded, so that a failed write stays due.
func (g *WriteGate) Wrote(now time.Time, up bool) {
	if g.written && now.Sub(g.last) < MinWriteInterval {
		g.lastEarly = now
	}
	g.written, g.last, g.lastUp = true, now, up
}
