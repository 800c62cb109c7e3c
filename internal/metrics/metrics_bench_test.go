package metrics

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fixedRatio is a window's ratio that is always known.
type fixedRatio float64

func (r fixedRatio) Ratio() (float64, bool) { return float64(r), true }

// typicalConditions are the conditions a provisioned tenant with backups and uptime probes carries.
var typicalConditions = []metav1.Condition{
	{Type: "Ready", Status: metav1.ConditionTrue},
	{Type: "Reconciling", Status: metav1.ConditionFalse},
	{Type: "NamespaceReady", Status: metav1.ConditionTrue},
	{Type: "AccessReady", Status: metav1.ConditionTrue},
	{Type: "DatabaseReady", Status: metav1.ConditionTrue},
	{Type: "CertificateReady", Status: metav1.ConditionTrue},
	{Type: "RouteReady", Status: metav1.ConditionTrue},
	{Type: "BackupsFresh", Status: metav1.ConditionTrue},
	{Type: "BackupVerified", Status: metav1.ConditionTrue},
	{Type: "Available", Status: metav1.ConditionTrue},
}

// setTypicalTenant gives tenant the series a typical tenant has: 10 conditions, up, 3 ratios,
// objective, budget, certificate expiry, http and database probe histograms with a few
// observations each, and two backup schedules (one logical, one physical).
func setTypicalTenant(m *Metrics, tenant string) {
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	m.SetConditions(tenant, typicalConditions)
	m.SetUp(tenant, true)
	m.SetRatios(tenant, Ratios{Day: fixedRatio(1), Week: fixedRatio(0.999), Month: fixedRatio(0.998),
		Objective: 0.995, BudgetRemaining: 0.6, Probed: true})
	m.SetCertificateExpiry(tenant, now.Add(60*24*time.Hour))
	for _, d := range []time.Duration{40 * time.Millisecond, 120 * time.Millisecond, 80 * time.Millisecond} {
		m.ObserveProbe(tenant, "http", d)
	}
	for _, d := range []time.Duration{3 * time.Millisecond, 7 * time.Millisecond} {
		m.ObserveProbe(tenant, "database", d)
	}
	m.SetBackups(tenant, []ScheduleBackups{
		{Schedule: "nightly", LastSuccess: now, AllowedAge: 26 * time.Hour, LastVerified: now.Add(-time.Hour), SizeBytes: 1 << 30},
		{Schedule: "continuous", LastSuccess: now, AllowedAge: 13 * time.Hour, SizeBytes: 5 << 30, PointInTime: &PointInTime{
			ReceiverReady: true, LastArchived: now, EarliestTime: now.Add(-7 * 24 * time.Hour), LatestTime: now}},
	})
}

func tenantNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("tenant-%05d", i)
	}
	return names
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	return s.HeapAlloc
}

// BenchmarkTenantSeriesMemory reports how much heap the series of one typical tenant hold, at
// 10,000 tenants (the scale one manager must hold in 1 GiB) and at 1,000 for a quicker run: with
// the client_golang vectors every SetBackups scanned every backup series (DeletePartialMatch), so
// filling 10,000 tenants took over a minute.
func BenchmarkTenantSeriesMemory(b *testing.B) {
	for _, tenants := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
			names := tenantNames(tenants)
			var perTenant float64
			for b.Loop() {
				before := heapInUse()
				m := New(prometheus.NewRegistry())
				for _, name := range names {
					setTypicalTenant(m, name)
				}
				after := heapInUse()
				runtime.KeepAlive(m)
				perTenant = float64(int64(after)-int64(before)) / float64(tenants)
			}
			b.ReportMetric(perTenant, "B/tenant")
		})
	}
}

// BenchmarkGather10000 is one scrape of 10,000 typical tenants.
func BenchmarkGather10000(b *testing.B) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	for _, name := range tenantNames(10000) {
		setTypicalTenant(m, name)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
