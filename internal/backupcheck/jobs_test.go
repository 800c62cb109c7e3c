package backupcheck

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/tenantops/tenant-operator/internal/builders"
)

func TestJobsOf(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	job := func(name, component, schedule string, started time.Time, conditions ...batchv1.JobCondition) batchv1.Job {
		return batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(started.Add(-time.Second)),
				Labels: map[string]string{builders.LabelComponent: component, builders.LabelSchedule: schedule}},
			Spec:   batchv1.JobSpec{ActiveDeadlineSeconds: ptr.To[int64](3600)},
			Status: batchv1.JobStatus{StartTime: &metav1.Time{Time: started}, Conditions: conditions},
		}
	}
	failed := batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}
	complete := batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}
	got := JobsOf([]batchv1.Job{
		job("hot-1", builders.ComponentBackup, "hot", t0, complete),
		job("hot-2", builders.ComponentBackup, "hot", t0.Add(12*time.Hour), failed),
		job("cold-1", builders.ComponentBackup, "cold", t0.Add(time.Hour)),
		job("verify-1", builders.ComponentVerify, "hot", t0.Add(20*time.Hour), complete),
	})
	hot, cold := got.NewestBackup["hot"], got.NewestBackup["cold"]
	if hot == nil || hot.Name != "hot-2" || !hot.Failed || hot.FailureReason != "BackoffLimitExceeded" {
		t.Errorf("newest hot job = %+v, want the failed hot-2", hot)
	}
	if cold == nil || !cold.Active || !cold.Deadline.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("newest cold job = %+v, want active with its deadline an hour after its start", cold)
	}
	if len(got.Finished) != 3 || !got.Finished["verify-1"] || got.Finished["cold-1"] {
		t.Errorf("finished = %v, want hot-1, hot-2 and verify-1", got.Finished)
	}
}
