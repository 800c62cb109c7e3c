// Package metrics defines the Prometheus metrics of tenant-operator. Names are a contract with the
// alert rules and dashboard in config/prometheus: change them together.
package metrics

import (
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
	tenantCondition    *prometheus.GaugeVec
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
		tenantCondition: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantops_tenant_condition",
			Help: "1 for the current status of each condition of a tenant, 0 for the other statuses.",
		}, []string{"tenant", "type", "status"}),
	}
	reg.MustRegister(m.backupLastSuccess, m.backupInterval, m.backupLastVerified, m.backupSize, m.tenantCondition)
	return m
}

// ScheduleBackups is what is known of one schedule's backups.
type ScheduleBackups struct {
	Schedule     string
	LastSuccess  time.Time
	AllowedAge   time.Duration
	LastVerified time.Time
	SizeBytes    int64
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
	}
}

// DeleteBackups removes every backup series of a tenant.
func (m *Metrics) DeleteBackups(tenant string) {
	for _, v := range []*prometheus.GaugeVec{m.backupLastSuccess, m.backupInterval, m.backupLastVerified, m.backupSize} {
		v.DeletePartialMatch(prometheus.Labels{"tenant": tenant})
	}
}

var conditionStatuses = []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown}

// SetConditions sets one series per condition type and status, 1 for the current status, so
// alerts can match `{type="Ready",status="False"} == 1` for as long as it holds.
func (m *Metrics) SetConditions(tenant string, conditions []metav1.Condition) {
	m.tenantCondition.DeletePartialMatch(prometheus.Labels{"tenant": tenant})
	for _, c := range conditions {
		for _, s := range conditionStatuses {
			value := 0.0
			if c.Status == s {
				value = 1
			}
			m.tenantCondition.WithLabelValues(tenant, c.Type, string(s)).Set(value)
		}
	}
}

// DeleteTenant removes every series of a deleted tenant.
func (m *Metrics) DeleteTenant(tenant string) {
	m.DeleteBackups(tenant)
	m.tenantCondition.DeletePartialMatch(prometheus.Labels{"tenant": tenant})
}
