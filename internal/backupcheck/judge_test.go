package backupcheck

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/freshness"
)

func TestJudge(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	policy := &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "standard"},
		Spec: v1alpha1.BackupPolicySpec{Verification: &v1alpha1.BackupVerification{Schedule: "@weekly"}}}
	unverified := &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}
	suspended := &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "paused"}, Spec: v1alpha1.BackupPolicySpec{Suspend: true}}
	hot := Expected{Schedule: freshness.Schedule{Name: "hot", ExpectedInterval: 12 * time.Hour, Since: now.Add(-30 * 24 * time.Hour)},
		VerifyInterval: 7 * 24 * time.Hour, VerifySince: now.Add(-30 * 24 * time.Hour)}
	newHot := hot
	newHot.Since, newHot.VerifySince = now.Add(-time.Hour), now.Add(-time.Hour)
	entry := func(id string, age time.Duration, v *catalog.Verification) catalog.Entry {
		return catalog.Entry{ID: id, Tenant: "acme", Schedule: "hot", StartedAt: now.Add(-age - time.Minute), FinishedAt: now.Add(-age), Size: 1000, Verification: v}
	}
	passed := &catalog.Verification{BackupID: "b1", CheckedAt: now.Add(-24 * time.Hour), OK: true}
	failed := &catalog.Verification{BackupID: "b1", CheckedAt: now.Add(-24 * time.Hour), Problems: []string{"RestoreFailed: pg_restore exited with status 1"}}

	tests := []struct {
		name                       string
		policy                     *v1alpha1.BackupPolicy
		schedules                  []Expected
		jobs                       map[string]*freshness.Job
		inspection                 Inspection
		fresh                      metav1.ConditionStatus
		freshReason, freshContains string
		verified                   metav1.ConditionStatus
		verifiedReason             string
		count                      int32
		lastID                     string
	}{
		{name: "not looked at yet", policy: policy, schedules: []Expected{hot}, inspection: Inspection{},
			fresh: metav1.ConditionUnknown, freshReason: v1alpha1.ReasonProgressing, freshContains: "Looking at the storage of schedules hot",
			verified: metav1.ConditionUnknown, verifiedReason: v1alpha1.ReasonNotVerified},
		{name: "fresh and verified", policy: policy, schedules: []Expected{hot},
			inspection: Inspection{"hot": {Entries: []catalog.Entry{entry("b1", 3*time.Hour, passed)}}},
			fresh:      metav1.ConditionTrue, freshReason: v1alpha1.ReasonFresh, freshContains: "newest backup b1 finished 2026-12-02T09:00:00Z",
			verified: metav1.ConditionTrue, verifiedReason: v1alpha1.ReasonVerified, count: 1, lastID: "b1"},
		{name: "stale", policy: policy, schedules: []Expected{hot},
			inspection: Inspection{"hot": {Entries: []catalog.Entry{entry("b1", 20*time.Hour, passed)}}},
			fresh:      metav1.ConditionFalse, freshReason: v1alpha1.ReasonStale, freshContains: "longer ago than",
			verified: metav1.ConditionTrue, verifiedReason: v1alpha1.ReasonVerified, count: 1, lastID: "b1"},
		{name: "verification failed", policy: policy, schedules: []Expected{hot},
			inspection: Inspection{"hot": {Entries: []catalog.Entry{entry("b1", time.Hour, failed)}}},
			fresh:      metav1.ConditionTrue, freshReason: v1alpha1.ReasonFresh,
			verified: metav1.ConditionFalse, verifiedReason: v1alpha1.ReasonVerificationFailed, count: 1, lastID: "b1"},
		{name: "no verification asked", policy: unverified, schedules: []Expected{hot},
			inspection: Inspection{"hot": {Entries: []catalog.Entry{entry("b1", time.Hour, nil)}}},
			fresh:      metav1.ConditionTrue, freshReason: v1alpha1.ReasonFresh,
			verified: metav1.ConditionUnknown, verifiedReason: v1alpha1.ReasonNotVerified, count: 1, lastID: "b1"},
		{name: "storage unreachable", policy: policy, schedules: []Expected{hot},
			inspection: Inspection{"hot": {Err: errors.New("storage unreachable: dial tcp: connection refused")}},
			fresh:      metav1.ConditionFalse, freshReason: v1alpha1.ReasonStorageUnreachable, freshContains: "connection refused",
			verified: metav1.ConditionUnknown, verifiedReason: v1alpha1.ReasonNotVerified},
		{name: "backups gone are missing, with the last one seen", policy: policy, schedules: []Expected{hot},
			inspection: Inspection{"hot": {LastSeen: &catalog.Entry{ID: "b0", FinishedAt: now.Add(-2 * time.Hour)}}},
			fresh:      metav1.ConditionFalse, freshReason: v1alpha1.ReasonMissing, freshContains: "backup b0",
			verified: metav1.ConditionFalse, verifiedReason: v1alpha1.ReasonNotVerified, lastID: "b0"},
		{name: "first backup pending on a new schedule", policy: policy, schedules: []Expected{newHot},
			inspection: Inspection{"hot": {}},
			fresh:      metav1.ConditionTrue, freshReason: v1alpha1.ReasonFirstBackupPending, freshContains: "first backup due by",
			verified: metav1.ConditionUnknown, verifiedReason: v1alpha1.ReasonProgressing},
		{name: "a failed job says why", policy: policy, schedules: []Expected{hot},
			jobs:       map[string]*freshness.Job{"hot": {Name: "acme-hot-1", StartedAt: now.Add(-time.Hour), Failed: true, FailureReason: "BackoffLimitExceeded"}},
			inspection: Inspection{"hot": {Entries: []catalog.Entry{entry("b1", 3*time.Hour, passed)}}},
			fresh:      metav1.ConditionFalse, freshReason: v1alpha1.ReasonJobFailing, freshContains: "job acme-hot-1 failed (BackoffLimitExceeded)",
			verified: metav1.ConditionTrue, verifiedReason: v1alpha1.ReasonVerified, count: 1, lastID: "b1"},
		{name: "a backup whose signature does not check is ignored and named", policy: policy, schedules: []Expected{hot},
			inspection: Inspection{"hot": {Entries: []catalog.Entry{
				{ID: "forged", Tenant: "acme", Schedule: "hot", FinishedAt: now.Add(-time.Minute), Signature: catalog.SignatureInvalid,
					Verification: &catalog.Verification{BackupID: "forged", CheckedAt: now, OK: true}},
				entry("b1", 3*time.Hour, passed)}}},
			fresh: metav1.ConditionFalse, freshReason: v1alpha1.ReasonUntrustedBackups, freshContains: "hot/forged",
			verified: metav1.ConditionTrue, verifiedReason: v1alpha1.ReasonVerified, count: 1, lastID: "b1"},
		{name: "suspended and stale", policy: suspended, schedules: []Expected{hot},
			inspection: Inspection{"hot": {Entries: []catalog.Entry{entry("b1", 20*time.Hour, nil)}}},
			fresh:      metav1.ConditionFalse, freshReason: v1alpha1.ReasonSuspended, freshContains: "suspended by BackupPolicy paused",
			verified: metav1.ConditionUnknown, verifiedReason: v1alpha1.ReasonNotVerified, count: 1, lastID: "b1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Judge(Input{Policy: tt.policy, Schedules: tt.schedules, Jobs: tt.jobs, Inspection: tt.inspection, Now: now})
			if v.Fresh.Status != tt.fresh || v.Fresh.Reason != tt.freshReason || !strings.Contains(v.Fresh.Message, tt.freshContains) {
				t.Errorf("BackupsFresh = %s %s %q, want %s %s containing %q", v.Fresh.Status, v.Fresh.Reason, v.Fresh.Message, tt.fresh, tt.freshReason, tt.freshContains)
			}
			if v.Verified.Status != tt.verified || v.Verified.Reason != tt.verifiedReason {
				t.Errorf("BackupVerified = %s %s %q, want %s %s", v.Verified.Status, v.Verified.Reason, v.Verified.Message, tt.verified, tt.verifiedReason)
			}
			st := v.Status.Schedules[0]
			if st.Count != tt.count || st.LastBackupID != tt.lastID {
				t.Errorf("schedule status = count %d last %q, want %d %q", st.Count, st.LastBackupID, tt.count, tt.lastID)
			}
			again := Judge(Input{Policy: tt.policy, Schedules: tt.schedules, Jobs: tt.jobs, Inspection: tt.inspection, Now: now.Add(time.Minute)})
			if again.Fresh.Message != v.Fresh.Message || again.Verified.Message != v.Verified.Message {
				t.Errorf("a minute later the messages changed, which would be a status write per pass:\n%q\n%q", v.Fresh.Message, again.Fresh.Message)
			}
		})
	}
}

func TestJudgeStaleAtIsWhenTheNewestBackupAgesOut(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	e := Expected{Schedule: freshness.Schedule{Name: "hot", ExpectedInterval: 12 * time.Hour, Since: now.Add(-48 * time.Hour)}}
	finished := now.Add(-time.Hour)
	v := Judge(Input{Policy: &v1alpha1.BackupPolicy{}, Schedules: []Expected{e}, Now: now,
		Inspection: Inspection{"hot": {Entries: []catalog.Entry{{ID: "b", FinishedAt: finished}}}}})
	if want := finished.Add(e.AllowedAge()); !v.StaleAt.Equal(want) {
		t.Errorf("StaleAt = %v, want %v", v.StaleAt, want)
	}
}

func TestExpect(t *testing.T) {
	policy := &v1alpha1.BackupPolicy{Spec: v1alpha1.BackupPolicySpec{Verification: &v1alpha1.BackupVerification{Schedule: "@daily"}}}
	e, err := Expect(policy, v1alpha1.BackupSchedule{Name: "hot", Schedule: "0 */12 * * *", MaxAge: "13h"})
	if err != nil {
		t.Fatal(err)
	}
	if e.ExpectedInterval != 12*time.Hour || e.MaxAge != 13*time.Hour || e.VerifyInterval != 24*time.Hour {
		t.Errorf("Expect = %+v, want 12h interval, 13h maxAge, 24h verification", e)
	}
	if _, err := Expect(policy, v1alpha1.BackupSchedule{Name: "bad", Schedule: "every day"}); err == nil || !strings.Contains(err.Error(), "schedule bad") {
		t.Errorf("a bad cron gave %v, want an error naming the schedule", err)
	}
}
