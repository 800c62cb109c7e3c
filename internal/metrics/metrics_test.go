package metrics

import (
	"strings"
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
	if n := testutil.CollectAndCount(m.backupLastSuccess); n != 0 {
		t.Errorf("%d last-success series after the hot schedule went, want 0", n)
	}
	m.DeleteTenant("acme")
	if n := testutil.CollectAndCount(m.backupInterval); n != 0 {
		t.Errorf("%d series left after the tenant was deleted", n)
	}
}

func TestConditionSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.SetConditions("acme", []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse}, {Type: "BackupsFresh", Status: metav1.ConditionTrue}})
	if got := testutil.ToFloat64(m.tenantCondition.WithLabelValues("acme", "Ready", "False")); got != 1 {
		t.Errorf("Ready False = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.tenantCondition); n != 2 {
		t.Errorf("%d series, want one for each of the 2 conditions", n)
	}
	// A status change replaces its series; a condition that went (Reconciling once provisioned)
	// takes its series with it; another tenant's stay.
	m.SetConditions("globex", []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}})
	m.SetConditions("acme", []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}})
	want := `
# HELP tenantops_tenant_condition 1 for each condition of a tenant, labelled with its current status.
# TYPE tenantops_tenant_condition gauge
tenantops_tenant_condition{status="True",tenant="acme",type="Ready"} 1
tenantops_tenant_condition{status="True",tenant="globex",type="Ready"} 1
`
	if err := testutil.CollectAndCompare(m.tenantCondition, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	m.DeleteTenant("acme")
	if n := testutil.CollectAndCount(m.tenantCondition); n != 1 {
		t.Errorf("%d series after acme was deleted, want globex's 1", n)
	}
}
