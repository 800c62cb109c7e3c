package rules

import (
	"testing"
	"time"
)

// The operator's side of the 2-minute promise (issue 18, docs/promises.md): each tenant is probed
// every 15 s with a 10 s timeout, and marked down (tenantops_tenant_up 0) at the second
// consecutive failed probe.
const (
	probeInterval  = 15 * time.Second
	probeTimeout   = 10 * time.Second
	failuresToDown = 2
	// operatorWorst is the longest from an outage to the gauge's drop: the probe just before the
	// outage succeeded, so the first failing probe starts at most one interval later, the second
	// one interval after that, and it fails when its timeout ends.
	operatorWorst = failuresToDown*probeInterval + probeTimeout
	promise       = 2 * time.Minute
	// scrapeTimeout is the chart's ServiceMonitor's: a scrape's samples are committed before it
	// ends, or never.
	scrapeTimeout = 10 * time.Second
	// interval is Prometheus' scrape and rule evaluation interval the promise assumes.
	interval = 30 * time.Second
)

// down is the gauge of a tenant that goes down at 0 and stays down.
var down = Gauge{{At: -5 * time.Minute, Up: true}, {At: 0, Up: false}}

// TestTenantDownFiresWithinTwoMinutesAtEveryPhase drops the gauge at every phase relative to
// the 30 s scrapes and the 30 s rule evaluations (1 s steps of both, 900 combinations) and
// finds when TenantDown fires. The worst case must be the derived sum, scrape interval +
// evaluation interval + the scrape's own duration + the rule's for, exactly (so the sweep did
// reach the worst phase), and with the operator's 2 × 15 s + 10 s it must be within 2 minutes.
// The scrape's duration is swept at 0 and at the scrape timeout, the longest it can be.
func TestTenantDownFiresWithinTwoMinutesAtEveryPhase(t *testing.T) {
	const step = time.Second
	for _, scrapeDuration := range []time.Duration{0, scrapeTimeout} {
		t.Run("scrape takes "+scrapeDuration.String(), func(t *testing.T) {
			r, err := Sweep(down, Schedule{ScrapeInterval: interval, EvalInterval: interval, ScrapeDuration: scrapeDuration}, step)
			if err != nil {
				t.Fatal(err)
			}
			bound := interval + interval + scrapeDuration + r.For
			t.Logf("gauge drop to firing over %d phases: earliest %s (%s), latest %s (%s); derived bound %s",
				r.Runs, r.Earliest, r.EarliestSchedule, r.Latest, r.LatestSchedule, bound)
			t.Logf("outage to firing, worst case: %s (operator: %d × %s + %s) + %s = %s, promise %s",
				operatorWorst, failuresToDown, probeInterval, probeTimeout, r.Latest, operatorWorst+r.Latest, promise)
			if r.Fired != r.Runs {
				t.Errorf("TenantDown fired in %d of %d phases, want all", r.Fired, r.Runs)
			}
			if r.Latest > bound {
				t.Errorf("worst case %s (%s) exceeds the derived %s", r.Latest, r.LatestSchedule, bound)
			}
			if r.Latest < bound-step {
				t.Errorf("worst case %s is below the derived %s by more than the step: the derivation or the sweep is wrong", r.Latest, bound)
			}
			if operatorWorst+r.Latest > promise {
				t.Errorf("outage to firing takes up to %s, more than %s", operatorWorst+r.Latest, promise)
			}
		})
	}
}

// TestOneEvaluationOfForBreaksThePromise is why TenantDown has for: 0s: holding the alert pending
// for just one evaluation interval would put the worst case over 2 minutes.
func TestOneEvaluationOfForBreaksThePromise(t *testing.T) {
	def, err := tenantDown()
	if err != nil {
		t.Fatal(err)
	}
	def.hold = interval
	r, err := sweep(def, down, Schedule{}, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("with for: %s the gauge drop to firing takes up to %s, the outage to firing %s", def.hold, r.Latest, operatorWorst+r.Latest)
	if operatorWorst+r.Latest <= promise {
		t.Errorf("with for: %s the worst case is %s, within %s: the rule could afford a for", def.hold, operatorWorst+r.Latest, promise)
	}
}

// TestTenantDownQuietWhileTheGaugeIsUp: a single failed probe between successes leaves the gauge
// at 1 (the operator marks a tenant down only at the second consecutive failure), and the alert
// reads nothing but the gauge, so it never fires, whatever the phase.
func TestTenantDownQuietWhileTheGaugeIsUp(t *testing.T) {
	oneLostProbe := Gauge{{At: -5 * time.Minute, Up: true}}
	r, err := Sweep(oneLostProbe, Schedule{}, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Fired != 0 {
		t.Errorf("TenantDown fired in %d of %d phases for a gauge that stayed 1 (latest %s)", r.Fired, r.Runs, r.LatestSchedule)
	}
}

// TestTenantDownAddsNoFilterOfItsOwn: the operator has already waited for 2 failed probes, and
// the 2-minute budget leaves no room for the rule to wait too (a filter needs a second sample, 30
// s more). So a tenant marked down fires as soon as a scrape has seen the 0, however briefly it
// lasted, and a 0 between two scrapes goes unseen by Prometheus. The shortest such blip at the
// defaults is 5 s: the second probe fails at its 10 s timeout, the next starts 5 s later and
// succeeds. It fires exactly when a scrape starts within those 5 s: 5 of every 30 scrape phases.
func TestTenantDownAddsNoFilterOfItsOwn(t *testing.T) {
	const blip = probeInterval - probeTimeout
	gauge := Gauge{{At: -5 * time.Minute, Up: true}, {At: 0, Up: false}, {At: blip, Up: true}}
	r, err := Sweep(gauge, Schedule{}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := r.Runs * int(blip/time.Second) / int(interval/time.Second)
	t.Logf("a %s blip of the gauge fires in %d of %d phases, at %s to %s after it began", blip, r.Fired, r.Runs, r.Earliest, r.Latest)
	if r.Fired != want {
		t.Errorf("a %s blip fired in %d of %d phases, want %d (those with a scrape in it)", blip, r.Fired, r.Runs, want)
	}
}

// TestFiringTimeAtKnownPhases pins FiringTime's reading of the engine on cases worked out by hand.
func TestFiringTimeAtKnownPhases(t *testing.T) {
	for _, c := range []struct {
		name string
		s    Schedule
		want time.Duration
	}{
		// The scrape at 0 reads the value from just before the drop; the one at 30 s reads 0 but
		// is not committed before the evaluation at 30 s, so the one at 60 s fires.
		{"scrape and evaluation at the drop", Schedule{}, 60 * time.Second},
		{"scrape 1 s after the drop, evaluation 1 s later", Schedule{ScrapeOffset: time.Second, EvalOffset: 2 * time.Second}, 2 * time.Second},
		// An evaluation at the very moment of a scrape does not see it.
		{"evaluation at the scrape", Schedule{ScrapeOffset: time.Second, EvalOffset: time.Second}, 31 * time.Second},
		// Committed at 6 s, after the evaluation at 2 s.
		{"a 5 s scrape", Schedule{ScrapeOffset: time.Second, EvalOffset: 2 * time.Second, ScrapeDuration: 5 * time.Second}, 32 * time.Second},
		// The evaluation at 2 s queries at -8 s.
		{"a 10 s query offset", Schedule{ScrapeOffset: time.Second, EvalOffset: 2 * time.Second, QueryOffset: 10 * time.Second}, 32 * time.Second},
		// Phases are taken modulo the intervals.
		{"phases beyond the interval", Schedule{ScrapeOffset: 61 * time.Second, EvalOffset: -28 * time.Second}, 2 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			at, fired, err := FiringTime(down, c.s)
			if err != nil {
				t.Fatal(err)
			}
			if !fired || at != c.want {
				t.Errorf("FiringTime(%s) = %s, fired %t; want %s", c.s, at, fired, c.want)
			}
		})
	}
}
