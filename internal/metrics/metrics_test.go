package metrics

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestBackupSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	finished := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	m.SetBackups("acme", []ScheduleBackups{
		{Schedule: "hot", LastSuccess: finished, AllowedAge: 13*time.Hour + 12*time.Minute, LastVerified: finished.Add(time.Hour), SizeBytes: 4096},
		{Schedule: "cold", AllowedAge: 26 * time.Hour},
	})
	want := `
# HELP tenantops_backup_last_success_timestamp_seconds When the newest complete backup of a tenant's schedule finished, as found in storage.
# TYPE tenantops_backup_last_success_timestamp_seconds gauge
tenantops_backup_last_success_timestamp_seconds{schedule="hot",tenant="acme"} 1.7955756e+09
# HELP tenantops_backup_expected_interval_seconds How old the newest backup of a schedule may be before it is stale (interval plus grace, or maxAge).
# TYPE tenantops_backup_expected_interval_seconds gauge
tenantops_backup_expected_interval_seconds{schedule="cold",tenant="acme"} 93600
tenantops_backup_expected_interval_seconds{schedule="hot",tenant="acme"} 47520
# HELP tenantops_backup_size_bytes Stored size of the newest complete backup of the schedule.
# TYPE tenantops_backup_size_bytes gauge
tenantops_backup_size_bytes{schedule="hot",tenant="acme"} 4096
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"tenantops_backup_last_success_timestamp_seconds", "tenantops_backup_expected_interval_seconds", "tenantops_backup_size_bytes"); err != nil {
		t.Error(err)
	}
	// A schedule never backed up has no last-success series (not 1970), and a removed schedule's
	// series disappear.
	m.SetBackups("acme", []ScheduleBackups{{Schedule: "cold", AllowedAge: time.Hour}})
	if n := seriesCount(t, reg, "tenantops_backup_last_success_timestamp_seconds"); n != 0 {
		t.Errorf("%d last-success series after the hot schedule went, want 0", n)
	}
	m.DeleteTenant("acme")
	if n := seriesCount(t, reg, "tenantops_backup_expected_interval_seconds"); n != 0 {
		t.Errorf("%d series left after the tenant was deleted", n)
	}
}

func seriesCount(t *testing.T, reg prometheus.Gatherer, names ...string) int {
	t.Helper()
	n, err := testutil.GatherAndCount(reg, names...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConditionSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.SetConditions("acme", []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse}, {Type: "BackupsFresh", Status: metav1.ConditionTrue}})
	want := `
# HELP tenantops_tenant_condition 1 for each condition of a tenant, labelled with its current status.
# TYPE tenantops_tenant_condition gauge
tenantops_tenant_condition{status="False",tenant="acme",type="Ready"} 1
tenantops_tenant_condition{status="True",tenant="acme",type="BackupsFresh"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tenantops_tenant_condition"); err != nil {
		t.Error(err)
	}
	// A status change replaces its series; a condition that went (Reconciling once provisioned)
	// takes its series with it; another tenant's stay.
	m.SetConditions("globex", []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}})
	m.SetConditions("acme", []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}})
	want = `
# HELP tenantops_tenant_condition 1 for each condition of a tenant, labelled with its current status.
# TYPE tenantops_tenant_condition gauge
tenantops_tenant_condition{status="True",tenant="acme",type="Ready"} 1
tenantops_tenant_condition{status="True",tenant="globex",type="Ready"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tenantops_tenant_condition"); err != nil {
		t.Error(err)
	}
	m.DeleteTenant("acme")
	if n := seriesCount(t, reg, "tenantops_tenant_condition"); n != 1 {
		t.Errorf("%d series after acme was deleted, want globex's 1", n)
	}
}

func TestProbeHistogram(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	// 10 ms lands in the 0.01 bucket (bounds are inclusive); 12 s is above the last bound and is
	// counted in +Inf alone.
	for _, d := range []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 30 * time.Millisecond,
		30 * time.Millisecond, 700 * time.Millisecond, 12 * time.Second} {
		m.ObserveProbe("acme", "http", d)
	}
	m.ObserveProbe("acme", "database", 2*time.Millisecond)
	want := `
# HELP tenantops_probe_duration_seconds How long a tenant's probes took, by probe (http or database).
# TYPE tenantops_probe_duration_seconds histogram
tenantops_probe_duration_seconds_bucket{probe="database",tenant="acme",le="0.01"} 1
tenantops_probe_duration_seconds_bucket{probe="database",tenant="acme",le="0.025"} 1
tenantops_probe_duration_seconds_bucket{probe="database",tenant="acme",le="0.05"} 1
tenantops_probe_duration_seconds_bucket{probe="database",tenant="acme",le="0.1"} 1
tenantops_probe_duration_seconds_bucket{probe="database",tenant="acme",le="0.25"} 1
tenantops_probe_duration_seconds_bucket{probe="database",tenant="acme",le="0.5"} 1
tenantops_probe_duration_seconds_bucket{probe="database",tenant="acme",le="1"} 1
tenantops_probe_duration_seconds_bucket{probe="database",tenant="acme",le="2.5"} 1
tenantops_probe_duration_seconds_bucket{probe="database",tenant="acme",le="5"} 1
tenantops_probe_duration_seconds_bucket{probe="database",tenant="acme",le="10"} 1
tenantops_probe_duration_seconds_bucket{probe="database",tenant="acme",le="+Inf"} 1
tenantops_probe_duration_seconds_sum{probe="database",tenant="acme"} 0.002
tenantops_probe_duration_seconds_count{probe="database",tenant="acme"} 1
tenantops_probe_duration_seconds_bucket{probe="http",tenant="acme",le="0.01"} 2
tenantops_probe_duration_seconds_bucket{probe="http",tenant="acme",le="0.025"} 2
tenantops_probe_duration_seconds_bucket{probe="http",tenant="acme",le="0.05"} 4
tenantops_probe_duration_seconds_bucket{probe="http",tenant="acme",le="0.1"} 4
tenantops_probe_duration_seconds_bucket{probe="http",tenant="acme",le="0.25"} 4
tenantops_probe_duration_seconds_bucket{probe="http",tenant="acme",le="0.5"} 4
tenantops_probe_duration_seconds_bucket{probe="http",tenant="acme",le="1"} 5
tenantops_probe_duration_seconds_bucket{probe="http",tenant="acme",le="2.5"} 5
tenantops_probe_duration_seconds_bucket{probe="http",tenant="acme",le="5"} 5
tenantops_probe_duration_seconds_bucket{probe="http",tenant="acme",le="10"} 5
tenantops_probe_duration_seconds_bucket{probe="http",tenant="acme",le="+Inf"} 6
tenantops_probe_duration_seconds_sum{probe="http",tenant="acme"} 12.775
tenantops_probe_duration_seconds_count{probe="http",tenant="acme"} 6
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tenantops_probe_duration_seconds"); err != nil {
		t.Error(err)
	}
	// Prometheus' created-timestamp ingestion reads it, as it did from client_golang's histograms.
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			if h := s.GetHistogram(); h != nil && h.GetCreatedTimestamp() == nil {
				t.Errorf("%s %v has no created timestamp", f.GetName(), s.GetLabel())
			}
		}
	}
	m.DeleteUptime("acme")
	if n := seriesCount(t, reg); n != 0 {
		t.Errorf("%d series after DeleteUptime, want 0", n)
	}
}

func TestConditionStatusChangeReplacesSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	for _, status := range []metav1.ConditionStatus{metav1.ConditionUnknown, metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse} {
		m.SetConditions("acme", []metav1.Condition{{Type: "Ready", Status: status}})
		want := `
# HELP tenantops_tenant_condition 1 for each condition of a tenant, labelled with its current status.
# TYPE tenantops_tenant_condition gauge
tenantops_tenant_condition{status="` + string(status) + `",tenant="acme",type="Ready"} 1
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tenantops_tenant_condition"); err != nil {
			t.Errorf("after Ready turned %s: %v", status, err)
		}
	}
	// A type listed twice is one series (two would fail the scrape), with the last status.
	m.SetConditions("acme", []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse}, {Type: "Ready", Status: metav1.ConditionTrue}})
	want := `
# HELP tenantops_tenant_condition 1 for each condition of a tenant, labelled with its current status.
# TYPE tenantops_tenant_condition gauge
tenantops_tenant_condition{status="True",tenant="acme",type="Ready"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tenantops_tenant_condition"); err != nil {
		t.Error(err)
	}
}

func TestDeleteTenantLeavesNoSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	setTypicalTenant(m, "acme")
	setTypicalTenant(m, "globex")
	each := seriesCount(t, reg) / 2
	m.DeleteTenant("acme")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		for _, s := range f.GetMetric() {
			n++
			for _, l := range s.GetLabel() {
				if l.GetName() == "tenant" && l.GetValue() != "globex" {
					t.Errorf("%s %v is left after acme was deleted", f.GetName(), s.GetLabel())
				}
			}
		}
	}
	if n != each {
		t.Errorf("%d series of globex after acme was deleted, want its %d", n, each)
	}
}

// TestBudgetGoesWithoutProbes: the error budget series is there while the objective's window holds
// probes, and goes when it holds none, rather than showing the last window's budget.
func TestBudgetGoesWithoutProbes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	probed := Ratios{Day: fixedRatio(1), Week: fixedRatio(1), Month: fixedRatio(1), Objective: 0.995, BudgetRemaining: 0.6, Probed: true}
	m.SetRatios("acme", probed)
	want := `
# HELP tenantops_tenant_error_budget_remaining_ratio Share of the error budget left over the objective's 30-day window; negative when overspent.
# TYPE tenantops_tenant_error_budget_remaining_ratio gauge
tenantops_tenant_error_budget_remaining_ratio{tenant="acme"} 0.6
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tenantops_tenant_error_budget_remaining_ratio"); err != nil {
		t.Error(err)
	}
	// A window with no probe has no ratio either (what uptime.Counts says of no probes).
	none := noProbes{}
	m.SetRatios("acme", Ratios{Day: fixedRatio(1), Week: none, Month: none, Objective: 0.995})
	if n := seriesCount(t, reg, "tenantops_tenant_error_budget_remaining_ratio"); n != 0 {
		t.Errorf("%d budget series with no probe in the window, want 0", n)
	}
	if n := seriesCount(t, reg, "tenantops_tenant_uptime_objective_ratio"); n != 1 {
		t.Errorf("%d objective series, want 1: the objective stands without probes", n)
	}
	m.SetRatios("acme", probed)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tenantops_tenant_error_budget_remaining_ratio"); err != nil {
		t.Errorf("probed again: %v", err)
	}
}

// noProbes is a window without probes: no ratio.
type noProbes struct{}

func (noProbes) Ratio() (float64, bool) { return 0, false }

// TestDeletedTenantIsForgotten: a tenant whose series all went holds no memory, whichever way they
// went.
func TestDeletedTenantIsForgotten(t *testing.T) {
	m := New(prometheus.NewRegistry())
	setTypicalTenant(m, "acme")
	m.DeleteUptime("acme")
	m.DeleteBackups("acme")
	m.SetConditions("acme", nil)
	setTypicalTenant(m, "globex")
	m.DeleteTenant("globex")
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.tenants) != 0 {
		t.Errorf("%d tenants held after all their series went, want 0", len(m.tenants))
	}
}

// TestConcurrentSettersAndScrapes is for `go test -race`: the reconcilers and the uptime monitor set
// series while Prometheus scrapes.
func TestConcurrentSettersAndScrapes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	names := tenantNames(20)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				tenant := names[(i*7+w)%len(names)]
				switch i % 5 {
				case 0:
					setTypicalTenant(m, tenant)
				case 1:
					m.ObserveProbe(tenant, "http", time.Duration(i)*time.Millisecond)
					m.ObserveProbe(tenant, "smtp", time.Duration(i)*time.Millisecond)
				case 2:
					m.SetConditions(tenant, typicalConditions[:i%len(typicalConditions)])
				case 3:
					m.DeleteUptime(tenant)
					m.DeleteBackups(tenant)
				case 4:
					m.DeleteTenant(tenant)
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 20 {
				if _, err := reg.Gather(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestLint(t *testing.T) {
	// The pedantic registry also checks every collected series against its description.
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	setTypicalTenant(m, "acme")
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
