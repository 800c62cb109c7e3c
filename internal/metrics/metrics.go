// Package metrics defines the Prometheus metrics of tenant-operator. Names are a contract with the
// alert rules and dashboard in config/prometheus: change them together.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Metrics holds the collectors; New registers them once with a registry.
type Metrics struct {
	backupLastSuccess  *prometheus.GaugeVec
	backupInterval     *prometheus.GaugeVec
	backupLastVerified *prometheus.GaugeVec
	backupSize         *prometheus.GaugeVec
	walLastArchived    *prometheus.GaugeVec
	walReceiverReady   *prometheus.GaugeVec
	recoverableFrom    *prometheus.GaugeVec
	recoverableTo      *prometheus.GaugeVec
	tenantCondition    *prometheus.GaugeVec

	// conditionStatus is each tenant's conditions as their series were last set, so that a
	// series that no longer holds is deleted without scanning every tenant's series.
	mu              sync.Mutex
	conditionStatus map[string]map[string]metav1.ConditionStatus

	tenantUp          *prometheus.GaugeVec
	probeDuration     *prometheus.HistogramVec
	uptimeRatio       *prometheus.GaugeVec
	objectiveRatio    *prometheus.GaugeVec
	budgetRemaining   *prometheus.GaugeVec
	certificateExpiry *prometheus.GaugeVec
}

// New creates the collectors and registers them with reg (controller-runtime's
// metrics.Registry in the manager, a fresh registry in tests).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		backupLastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_backup_last_success_timestamp_seconds",
			Help: "When the newest complete backup of a tenant's schedule finished, as found in storage.",
		}, []string{"tenant", "schedule"}),
		backupInterval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_backup_expected_interval_seconds",
			Help: "How old the newest backup of a schedule may be before it is stale (interval plus grace, or maxAge).",
		}, []string{"tenant", "schedule"}),
		backupLastVerified: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_backup_last_verified_timestamp_seconds",
			Help: "When a backup of the schedule last passed verification.",
		}, []string{"tenant", "schedule"}),
		backupSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_backup_size_bytes",
			Help: "Stored size of the newest complete backup of the schedule.",
		}, []string{"tenant", "schedule"}),
		walLastArchived: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_wal_last_archived_timestamp_seconds",
			Help: "When the newest WAL segment of a physical schedule's archive was stored.",
		}, []string{"tenant", "schedule"}),
		walReceiverReady: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_wal_receiver_ready",
			Help: "1 while a physical schedule's WAL receiver keeps up (its Deployment is available), else 0.",
		}, []string{"tenant", "schedule"}),
		recoverableFrom: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_recoverable_earliest_timestamp_seconds",
			Help: "The oldest moment a physical schedule's storage restores the tenant to.",
		}, []string{"tenant", "schedule"}),
		recoverableTo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_recoverable_latest_timestamp_seconds",
			Help: "The newest moment a physical schedule's storage restores the tenant to: the end of its archived WAL.",
		}, []string{"tenant", "schedule"}),
		tenantCondition: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_tenant_condition",
			Help: "1 for each condition of a tenant, labelled with its current status.",
		}, []string{"tenant", "type", "status"}),
		tenantUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_tenant_up",
			Help: "0 once the tenant's URL or database failed 2 probes in a row, 1 once every probe answers again.",
		}, []string{"tenant"}),
		probeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantops_probe_duration_seconds",
			Help:    "How long a tenant's probes took, by probe (http or database).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"tenant", "probe"}),
		uptimeRatio: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_tenant_uptime_ratio",
			Help: "Share of successful probes of the tenant's URL over the window (24h, 7d, 30d).",
		}, []string{"tenant", "window"}),
		objectiveRatio: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_tenant_uptime_objective_ratio",
			Help: "The tenant's uptime objective as a fraction (0.995 for 99.5 %).",
		}, []string{"tenant"}),
		budgetRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_tenant_error_budget_remaining_ratio",
			Help: "Share of the error budget left over the objective's 30-day window; negative when overspent.",
		}, []string{"tenant"}),
		certificateExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_tenant_certificate_expiry_timestamp_seconds",
			Help: "When the certificate the tenant's URL served at the last probe expires.",
		}, []string{"tenant"}),
	}
	reg.MustRegister(m.backupLastSuccess, m.backupInterval, m.backupLastVerified, m.backupSize, m.tenantCondition,
		m.walLastArchived, m.walReceiverReady, m.recoverableFrom, m.recoverableTo,
		m.tenantUp, m.probeDuration, m.uptimeRatio, m.objectiveRatio, m.budgetRemaining, m.certificateExpiry)
	return m
}

// ObserveProbe records one probe's duration.
func (m *Metrics) ObserveProbe(tenant, probe string, d time.Duration) {
	m.probeDuration.WithLabelValues(tenant, probe).Observe(d.Seconds())
}

// Counts are probes counted over a window.
type Counts interface{ Ratio() (float64, bool) }

// Ratios are what a tenant's uptime ratio series show.
type Ratios struct {
	Day, Week, Month Counts
	Objective        float64
	BudgetRemaining  float64
	// Probed is false while the objective's window holds no probe: then there is no budget.
	Probed bool
}

// SetUp sets whether the tenant answers: 0 once it failed enough probes in a row to be down,
// 1 once it answers again. A single failed probe between successes does not change it.
func (m *Metrics) SetUp(tenant string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.tenantUp.WithLabelValues(tenant).Set(v)
}

// SetRatios sets a tenant's uptime ratio series; a window without probes has no ratio series.
func (m *Metrics) SetRatios(tenant string, r Ratios) {
	for window, c := range map[string]Counts{"24h": r.Day, "7d": r.Week, "30d": r.Month} {
		if v, ok := c.Ratio(); ok {
			m.uptimeRatio.WithLabelValues(tenant, window).Set(v)
		} else {
			m.uptimeRatio.DeleteLabelValues(tenant, window)
		}
	}
	m.objectiveRatio.WithLabelValues(tenant).Set(r.Objective)
	if r.Probed {
		m.budgetRemaining.WithLabelValues(tenant).Set(r.BudgetRemaining)
	}
}

// SetCertificateExpiry records when the certificate the tenant's URL served expires.
func (m *Metrics) SetCertificateExpiry(tenant string, notAfter time.Time) {
	m.certificateExpiry.WithLabelValues(tenant).Set(float64(notAfter.Unix()))
}

// DeleteUptime removes a tenant's uptime and probe series: it is no longer probed.
func (m *Metrics) DeleteUptime(tenant string) {
	labels := prometheus.Labels{"tenant": tenant}
	for _, v := range []*prometheus.GaugeVec{m.tenantUp, m.uptimeRatio, m.objectiveRatio, m.budgetRemaining, m.certificateExpiry} {
		v.DeletePartialMatch(labels)
	}
	m.probeDuration.DeletePartialMatch(labels)
}

// ScheduleBackups is what is known of one schedule's backups.
type ScheduleBackups struct {
	Schedule     string
	LastSuccess  time.Time
	AllowedAge   time.Duration
	LastVerified time.Time
	SizeBytes    int64
	// PointInTime is set for a physical schedule only.
	PointInTime *PointInTime
}

// PointInTime is what is known of a physical schedule's WAL archive.
type PointInTime struct {
	ReceiverReady            bool
	LastArchived             time.Time
	EarliestTime, LatestTime time.Time
}

// SetBackups replaces the backup series of a tenant with schedules: series of schedules no longer
// listed disappear, and a time never seen leaves its series out rather than reporting 1970.
func (m *Metrics) SetBackups(tenant string, schedules []ScheduleBackups) {
	m.DeleteBackups(tenant)
	for _, s := range schedules {
		labels := prometheus.Labels{"tenant": tenant, "schedule": s.Schedule}
		m.backupInterval.With(labels).Set(s.AllowedAge.Seconds())
		if !s.LastSuccess.IsZero() {
			m.backupLastSuccess.With(labels).Set(float64(s.LastSuccess.Unix()))
			m.backupSize.With(labels).Set(float64(s.SizeBytes))
		}
		if !s.LastVerified.IsZero() {
			m.backupLastVerified.With(labels).Set(float64(s.LastVerified.Unix()))
		}
		if p := s.PointInTime; p != nil {
			ready := 0.0
			if p.ReceiverReady {
				ready = 1
			}
			m.walReceiverReady.With(labels).Set(ready)
			for g, t := range map[*prometheus.GaugeVec]time.Time{m.walLastArchived: p.LastArchived, m.recoverableFrom: p.EarliestTime, m.recoverableTo: p.LatestTime} {
				if !t.IsZero() {
					g.With(labels).Set(float64(t.Unix()))
				}
			}
		}
	}
}

// DeleteBackups removes every backup series of a tenant.
func (m *Metrics) DeleteBackups(tenant string) {
	for _, v := range []*prometheus.GaugeVec{m.backupLastSuccess, m.backupInterval, m.backupLastVerified, m.backupSize,
		m.walLastArchived, m.walReceiverReady, m.recoverableFrom, m.recoverableTo} {
		v.DeletePartialMatch(prometheus.Labels{"tenant": tenant})
	}
}

// SetConditions keeps one series per condition, labelled with its current status and valued 1,
// so alerts match `{type="Ready",status="False"} == 1` for as long as it holds. A status change
// replaces the series: at a thousand tenants, a series for each status that does not hold (as
// kube-state-metrics keeps) would triple the operator's largest use of memory, and Prometheus'.
func (m *Metrics) SetConditions(tenant string, conditions []metav1.Condition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	current := make(map[string]metav1.ConditionStatus, len(conditions))
	for _, c := range conditions {
		current[c.Type] = c.Status
	}
	for conditionType, status := range m.conditionStatus[tenant] {
		if current[conditionType] != status {
			m.tenantCondition.DeleteLabelValues(tenant, conditionType, string(status))
		}
	}
	for conditionType, status := range current {
		if m.conditionStatus[tenant][conditionType] != status {
			m.tenantCondition.WithLabelValues(tenant, conditionType, string(status)).Set(1)
		}
	}
	if m.conditionStatus == nil {
		m.conditionStatus = map[string]map[string]metav1.ConditionStatus{}
	}
	m.conditionStatus[tenant] = current
}

// DeleteTenant removes every series of a deleted tenant.
func (m *Metrics) DeleteTenant(tenant string) {
	m.mu.Lock()
	delete(m.conditionStatus, tenant)
	m.mu.Unlock()
	m.DeleteBackups(tenant)
	m.DeleteUptime(tenant)
	m.tenantCondition.DeletePartialMatch(prometheus.Labels{"tenant": tenant})
}
