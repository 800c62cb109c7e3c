package rules

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantops/tenant-operator/internal/metrics"
	"github.com/tenantops/tenant-operator/internal/probes"
	"github.com/tenantops/tenant-operator/internal/uptime"
)

// outageServer is a real HTTPS listener that answers until told to stop: then it accepts
// requests and never answers them, the slowest outage to notice (each probe waits its full
// timeout). It records when it answered last.
type outageServer struct {
	*httptest.Server
	// failAfter: after this many answers the server stops answering; 0 never.
	failAfter int64
	// blipAt: this request alone is answered 503, a lost probe between successes; 0 none.
	blipAt   int64
	requests atomic.Int64

	mu         sync.Mutex
	lastAnswer time.Time
	stopped    time.Time
}

func newOutageServer(t *testing.T, failAfter, blipAt int64) *outageServer {
	s := &outageServer{failAfter: failAfter, blipAt: blipAt}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.requests.Add(1)
		if s.failAfter > 0 && n > s.failAfter {
			<-r.Context().Done() // hangs until the probe gives up
			return
		}
		if n == s.blipAt {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
		s.mu.Lock()
		s.lastAnswer = time.Now()
		if n == s.failAfter {
			s.stopped = s.lastAnswer // the outage begins right after this answer
		}
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

// gaugeWatcher records tenantops_tenant_up of one tenant as it changes, from the registry the
// Monitor writes, in real time.
func watchGauge(ctx context.Context, reg *prometheus.Registry, tenant string) func() (changes []Point, at []time.Time) {
	var mu sync.Mutex
	var points []Point
	var times []time.Time
	start := time.Now()
	go func() {
		last := -1.0
		for ctx.Err() == nil {
			families, _ := reg.Gather()
			for _, f := range families {
				if f.GetName() != "tenantops_tenant_up" {
					continue
				}
				for _, m := range f.GetMetric() {
					if m.GetLabel()[0].GetValue() == tenant && m.GetGauge().GetValue() != last {
						last = m.GetGauge().GetValue()
						now := time.Now()
						mu.Lock()
						points = append(points, Point{At: now.Sub(start), Up: last == 1})
						times = append(times, now)
						mu.Unlock()
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() ([]Point, []time.Time) {
		mu.Lock()
		defer mu.Unlock()
		return append([]Point(nil), points...), append([]time.Time(nil), times...)
	}
}

// TestDownIsKnownWithinTwoMinutes drives the operator's real probe loop (the uptime Monitor, its
// scheduler and HTTPS prober, with the shipped defaults: a probe every 15 s with a 10 s timeout,
// down after two failures in a row) against a real listener that stops answering right after
// answering a probe, the worst phase. It measures, in real time, when tenantops_tenant_up turns 0
// and when the Monitor wakes the reconciler (which then sets Available=False with reason Down and
// records a Warning event in the same pass: controllers' TestUptimeIsProbedAndReported), and then
// evaluates the shipped TenantDown rule with Prometheus' rule engine on that gauge, scraped every
// 30 s and evaluated every 30 s, at every phase. The worst case from the outage to the firing
// alert must be within 120 s. A single failed probe between successes must change nothing: the
// gauge stays 1 and the alert does not fire in any phase.
//
// It takes about a minute of real time: the defaults are what it measures.
func TestDownIsKnownWithinTwoMinutes(t *testing.T) {
	down := newOutageServer(t, 2, 0)
	blip := newOutageServer(t, 0, 2)
	pool := x509.NewCertPool()
	pool.AddCert(down.Certificate())
	pool.AddCert(blip.Certificate())
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	woken := map[string][]time.Time{}
	mon := uptime.NewMonitor(uptime.MonitorOptions{
		HTTP:    probes.NewHTTPProber(probes.HTTPOptions{RootCAs: pool}),
		Metrics: metrics.New(reg),
		Notify: func(tenant string) {
			mu.Lock()
			woken[tenant] = append(woken[tenant], time.Now())
			mu.Unlock()
		},
	})
	objective, err := uptime.ParseObjective("99.5")
	if err != nil {
		t.Fatal(err)
	}
	for name, url := range map[string]string{"down": down.URL + "/", "blip": blip.URL + "/"} {
		if err := mon.Track(name, uptime.Targets{URL: url, Objective: objective}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = mon.Start(ctx) }()
	downGauge, blipGauge := watchGauge(ctx, reg, "down"), watchGauge(ctx, reg, "blip")

	// Wait until the down tenant's gauge has dropped: at most 2 intervals and the timeout after the
	// outage, plus the first probe's offset of up to an interval.
	deadline := time.Now().Add(uptime.DefaultInterval*4 + probes.DefaultTimeout)
	var points []Point
	var at []time.Time
	for time.Now().Before(deadline) {
		points, at = downGauge()
		if len(points) >= 2 && !points[len(points)-1].Up {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(points) < 2 || points[0].Up != true || points[len(points)-1].Up {
		t.Fatalf("the gauge of the tenant that stopped answering went %v, want 1 then 0", points)
	}
	down.mu.Lock()
	stopped := down.stopped
	down.mu.Unlock()
	gaugeZero := at[len(at)-1].Sub(stopped)
	mu.Lock()
	var wakeAfter time.Duration = -1
	for _, w := range woken["down"] {
		if !w.Before(stopped) {
			wakeAfter = w.Sub(stopped)
			break
		}
	}
	mu.Unlock()
	t.Logf("outage at the worst phase: tenantops_tenant_up is 0 after %s, the reconciler woken after %s", gaugeZero.Round(time.Millisecond), wakeAfter.Round(time.Millisecond))
	if bound := uptime.DetectionTime(uptime.DefaultInterval) - uptime.PrometheusDelay; gaugeZero > bound+2*time.Second {
		t.Errorf("the gauge turned 0 %s after the outage, more than the %s the defaults promise", gaugeZero, bound)
	}
	if wakeAfter < 0 || wakeAfter > gaugeZero+time.Second {
		t.Errorf("the reconciler was woken %s after the outage, want with the gauge's drop (%s)", wakeAfter, gaugeZero)
	}

	// Prometheus' part, at every phase of scrape and evaluation, on the gauge as measured from the
	// outage; also with a 10 s scrape (its samples are committed when it ends).
	gauge := Gauge{{At: 0, Up: true}, {At: gaugeZero, Up: false}}
	for _, scrape := range []time.Duration{0, 10 * time.Second} {
		r, err := Sweep(gauge, Schedule{ScrapeDuration: scrape}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("scrape taking %s: TenantDown fires %s to %s after the outage (%d phases)", scrape, r.Earliest, r.Latest, r.Runs)
		if r.Fired != r.Runs || r.Latest > 2*time.Minute {
			t.Errorf("scrape taking %s: fired in %d of %d phases, latest %s after the outage; want every phase within 2m", scrape, r.Fired, r.Runs, r.Latest)
		}
	}

	// The other tenant lost one probe between successes; give it two more probes.
	time.Sleep(2 * uptime.DefaultInterval)
	if n := blip.requests.Load(); n < 4 {
		t.Fatalf("the blipping tenant was probed %d times, want at least 4", n)
	}
	blipPoints, _ := blipGauge()
	for _, p := range blipPoints {
		if !p.Up {
			t.Fatalf("one lost probe turned the gauge to 0: %v", blipPoints)
		}
	}
	r, err := Sweep(Gauge(blipPoints), Schedule{}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Fired != 0 {
		t.Errorf("one lost probe fired TenantDown in %d of %d phases", r.Fired, r.Runs)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(woken["blip"]); n != 2 {
		t.Errorf("the blipping tenant woke the reconciler %d times, want twice: seen up, then its first figures", n)
	}
}
