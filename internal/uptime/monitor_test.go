package uptime

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	tenancyv1alpha1 "github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/metrics"
	"github.com/tenantops/tenant-operator/internal/probes"
)

// notices counts the Monitor's Notify calls per tenant.
type notices struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *notices) notify(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[tenant]++
}

func (c *notices) take(tenant string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n[tenant]
	delete(c.n, tenant)
	return n
}

func newTestMonitor(t *testing.T, now time.Time) (*Monitor, *notices, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	c := &notices{}
	mon := NewMonitor(MonitorOptions{Clock: clocktesting.NewFakeClock(now), Metrics: m, Notify: c.notify})
	if err := mon.Track("acme", Targets{URL: "https://acme.example.com/", Objective: mustObjective(t, "99.5")}); err != nil {
		t.Fatal(err)
	}
	return mon, c, reg
}

func mustObjective(t *testing.T, percent string) Objective {
	t.Helper()
	o, err := ParseObjective(percent)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func ok(at time.Time) probes.Result { return probes.Result{Time: at, Success: true, StatusCode: 200} }

func refused(at time.Time) probes.Result {
	return probes.Result{Time: at, Reason: probes.ReasonConnectionRefused, Message: "nothing listens on acme.example.com:443"}
}

// upGauge is tenantops_tenant_up of tenant as the registry exposes it; -1 without the series.
func upGauge(t *testing.T, reg *prometheus.Registry, tenant string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "tenantops_tenant_up" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tenant" && l.GetValue() == tenant {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func TestOneFailedProbeIsNotAnOutageTwoAre(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	mon, seen, m := newTestMonitor(t, t0)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * DefaultInterval) }

	mon.deliver("http/acme", ok(at(0)))
	if r := mon.Report("acme"); r.State != Up || seen.take("acme") != 1 || upGauge(t, m, "acme") != 1 {
		t.Fatalf("after a first success: %+v, want Up, told once, gauge 1", r)
	}
	// One lost probe between successes: nothing changes, nobody is told, the gauge stays 1.
	mon.deliver("http/acme", refused(at(1)))
	mon.deliver("http/acme", ok(at(2)))
	if r := mon.Report("acme"); r.State != Up || seen.take("acme") != 0 || upGauge(t, m, "acme") != 1 {
		t.Fatalf("after one lost probe: %+v, want still Up and no notice", r)
	}
	// Two in a row: down since the first of them, with what the probe found.
	mon.deliver("http/acme", refused(at(3)))
	if mon.Report("acme").State != Up {
		t.Fatal("down after one failure")
	}
	mon.deliver("http/acme", refused(at(4)))
	r := mon.Report("acme")
	if r.State != Down || !r.Since.Equal(at(3)) || r.Reason != probes.ReasonConnectionRefused || seen.take("acme") != 1 || upGauge(t, m, "acme") != 0 {
		t.Fatalf("after two failures: %+v, want Down since %v with the probe's reason, told once, gauge 0", r, at(3))
	}
	// More failures change nothing.
	mon.deliver("http/acme", refused(at(5)))
	if seen.take("acme") != 0 || mon.Report("acme") != r {
		t.Fatal("a further failure changed the report")
	}
	// Back: up again, with how long it was down.
	mon.deliver("http/acme", ok(at(6)))
	r = mon.Report("acme")
	if r.State != Up || !r.Since.Equal(at(6)) || r.LastOutage != at(6).Sub(at(3)) || seen.take("acme") != 1 || upGauge(t, m, "acme") != 1 {
		t.Fatalf("after recovery: %+v, want Up since %v after %v down", r, at(6), at(6).Sub(at(3)))
	}
}

func TestTheDatabaseCountsToo(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	mon, seen, _ := newTestMonitor(t, t0)
	mon.deliver("http/acme", ok(t0))
	seen.take("acme")
	failed := probes.Result{Time: t0, Reason: probes.ReasonAuthenticationFailed, Message: "password authentication failed"}
	mon.deliver("database/acme", failed)
	mon.deliver("database/acme", failed)
	r := mon.Report("acme")
	if r.State != Down || r.Message != "database: password authentication failed" || seen.take("acme") != 1 {
		t.Fatalf("after two failed database probes: %+v, want Down naming the database", r)
	}
	// The database answering again brings the tenant back only with the URL answering too.
	mon.deliver("database/acme", ok(t0.Add(30*time.Second)))
	if r := mon.Report("acme"); r.State != Up {
		t.Fatalf("after the database answers again: %+v, want Up", r)
	}
}

func TestResultsOfAnUntrackedTenantAreDropped(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	mon, seen, _ := newTestMonitor(t, t0)
	mon.Forget("acme")
	mon.deliver("http/acme", ok(t0))
	if r := mon.Report("acme"); r.State != Unknown || seen.take("acme") != 0 {
		t.Fatalf("a forgotten tenant's late result made %+v", r)
	}
}

// A steady tenant is told about once; its figures are refreshed on its own second of every ten
// minutes and told only when they read differently: a steady-up tenant never, a steady-down one
// at most six times an hour.
func TestFiguresAreToldOnlyWhenTheyChange(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name           string
		up             bool
		least, most    int
		ratio24h       string
		objectiveState metav1.ConditionStatus
	}{
		// Up since the first hour: nothing to tell in the second.
		{"steady up", true, 0, 0, "100", metav1.ConditionTrue},
		// Down since the second hour began: told it is down, then each refresh lowers the ratios.
		{"steady down", false, 4, 7, "50", metav1.ConditionFalse},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mon, seen, _ := newTestMonitor(t, t0)
			run := func(from time.Time, up bool) {
				for s := 0; s < 3600; s++ {
					now := from.Add(time.Duration(s) * time.Second)
					if s%15 == 0 {
						r := ok(now)
						if !up {
							r = refused(now)
						}
						mon.deliver("http/acme", r)
					}
					mon.refresh(now)
				}
			}
			run(t0, true)
			if n := seen.take("acme"); n != 2 {
				t.Errorf("told %d times in the first hour, want 2: up, then the first figures", n)
			}
			run(t0.Add(time.Hour), tt.up)
			n := seen.take("acme")
			t.Logf("%s: told %d times in an hour of probes every 15 s", tt.name, n)
			if n < tt.least || n > tt.most {
				t.Errorf("told %d times in the second hour, want %d to %d", n, tt.least, tt.most)
			}
			f := mon.Report("acme").Figures
			if f == nil || f.Objective.Type != tenancyv1alpha1.ConditionUptimeObjectiveMet {
				t.Fatalf("figures = %+v, want them published", f)
			}
			if f.Objective.Status != tt.objectiveState || (tt.up && f.Ratio24h != tt.ratio24h) || (!tt.up && f.Ratio24h >= "60") {
				t.Errorf("figures after the second hour = %+v", f)
			}
		})
	}
}

// Each tenant has its own second of the interval, so a thousand tenants are refreshed spread over
// it rather than together.
func TestRefreshesAreSpread(t *testing.T) {
	perSecond := map[int64]int{}
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 1000 {
		next := NextSlot(fmt.Sprintf("tenant-%04d", i), DefaultRefreshInterval, t0)
		if !next.After(t0) || next.Sub(t0) > DefaultRefreshInterval {
			t.Fatalf("next slot %v is not within the interval after %v", next, t0)
		}
		perSecond[next.Unix()]++
	}
	most := 0
	for _, n := range perSecond {
		most = max(most, n)
	}
	if most > 10 {
		t.Errorf("up to %d of 1000 tenants refresh in the same second, want them spread over 600 s", most)
	}
}

func TestHistoriesSurviveARestart(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	store := &memoryStore{}
	clk := clocktesting.NewFakeClock(t0)
	first := NewMonitor(MonitorOptions{Clock: clk, Store: store})
	if err := first.Track("acme", Targets{URL: "https://acme.example.com/"}); err != nil {
		t.Fatal(err)
	}
	first.deliver("http/acme", ok(t0))
	first.deliver("http/acme", refused(t0.Add(15*time.Second)))
	if err := first.save(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := NewMonitor(MonitorOptions{Clock: clk, Store: store})
	second.load(context.Background())
	got := second.tenants["acme"].history.Counts(24*time.Hour, t0.Add(time.Minute))
	if got != (Counts{Up: 1, Total: 2}) {
		t.Fatalf("restored history counts %+v, want 1 up of 2", got)
	}
	// An untracked history is kept through saves until it ages out.
	if err := second.save(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, kept := store.saved["acme"]; !kept {
		t.Error("a history whose tenant no pass has tracked yet was dropped")
	}
	clk.Step(Retention + time.Hour)
	if err := second.save(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, kept := store.saved["acme"]; kept {
		t.Error("a history older than the retention was kept")
	}
}

// A restarted Monitor publishes a resumed tenant's first figures at the tenant's slot, as the
// previous process did, not at once: a restart adds no change of status between two slots.
func TestARestartPublishesAtTheTenantsSlot(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	store := &memoryStore{}
	clk := clocktesting.NewFakeClock(t0)
	targets := Targets{URL: "https://acme.example.com/", Objective: mustObjective(t, "99.5")}
	first := NewMonitor(MonitorOptions{Clock: clk, Store: store, Notify: func(string) {}})
	if err := first.Track("acme", targets); err != nil {
		t.Fatal(err)
	}
	first.deliver("http/acme", ok(t0))
	first.refresh(t0)
	if first.Report("acme").Figures == nil {
		t.Fatal("a new tenant's first figures were not published at its first probe")
	}
	if err := first.save(context.Background()); err != nil {
		t.Fatal(err)
	}

	restart := t0.Add(time.Minute)
	seen := &notices{}
	second := NewMonitor(MonitorOptions{Clock: clk, Store: store, Notify: seen.notify})
	second.load(context.Background())
	if err := second.Track("acme", targets); err != nil {
		t.Fatal(err)
	}
	slot := NextSlot("acme", DefaultRefreshInterval, restart)
	for now := restart; now.Before(slot); now = now.Add(time.Second) {
		if now.Sub(restart)%(15*time.Second) == 0 {
			second.deliver("http/acme", ok(now))
		}
		second.refresh(now)
		if f := second.Report("acme").Figures; f != nil {
			t.Fatalf("figures published %s after the restart, %s before the tenant's slot", now.Sub(restart), slot.Sub(now))
		}
	}
	second.refresh(slot)
	f := second.Report("acme").Figures
	if f == nil || f.Ratio24h != "100" {
		t.Fatalf("figures at the tenant's slot = %+v, want 100 %% from the saved history and the new probes", f)
	}
	// Told once when the first probe found it up, once for the figures.
	if n := seen.take("acme"); n != 2 {
		t.Errorf("told %d times from the restart to the slot, want 2", n)
	}
}

type memoryStore struct{ saved map[string][]byte }

func (s *memoryStore) Load(context.Context) (map[string][]byte, error) { return s.saved, nil }
func (s *memoryStore) Save(_ context.Context, h map[string][]byte) error {
	s.saved = h
	return nil
}

func TestDetectionTime(t *testing.T) {
	if got := DetectionTime(DefaultInterval); got != 100*time.Second {
		t.Errorf("DetectionTime(default) = %v, want 100s", got)
	}
	if got := DetectionTime(25 * time.Second); got > 2*time.Minute {
		t.Errorf("DetectionTime(25s) = %v, want the last interval within two minutes", got)
	}
	if got := DetectionTime(30 * time.Second); got <= 2*time.Minute {
		t.Errorf("DetectionTime(30s) = %v, want beyond two minutes", got)
	}
}

// A probe still running when its tenant is forgotten (the Tenant was deleted) delivers its result
// afterwards: that must not bring back the deleted tenant's series.
func TestAProbeEndingAfterForgetLeavesNoSeries(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	mon, _, reg := newTestMonitor(t, t0)
	mon.deliver("http/acme", ok(t0))
	if upGauge(t, reg, "acme") != 1 {
		t.Fatal("no up series after a first success; the test proves nothing")
	}
	mon.Forget("acme")
	result := ok(t0.Add(DefaultInterval))
	result.Latency = 30 * time.Millisecond
	result.CertificateNotAfter = t0.Add(90 * 24 * time.Hour)
	mon.deliver("http/acme", result)
	mon.deliver("database/acme", refused(t0.Add(DefaultInterval)))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "tenant" && l.GetValue() == "acme" {
					t.Errorf("%s of the forgotten tenant is back", f.GetName())
				}
			}
		}
	}
}
