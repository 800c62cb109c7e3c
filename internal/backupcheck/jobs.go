package backupcheck

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/freshness"
)

// Jobs is what a tenant's backup and verification Jobs tell.
type Jobs struct {
	// NewestBackup is the newest backup Job of each schedule.
	NewestBackup map[string]*freshness.Job
	// Finished are the names of the Jobs that have finished, either way: a new one is a reason
	// to look into storage again.
	Finished map[string]bool
}

// JobsOf reads a tenant's Jobs.
func JobsOf(jobs []batchv1.Job) Jobs {
	out := Jobs{NewestBackup: map[string]*freshness.Job{}, Finished: map[string]bool{}}
	newest := map[string]time.Time{}
	for i := range jobs {
		j := &jobs[i]
		failed, complete := JobFinished(j)
		if failed != nil || complete {
			out.Finished[j.Name] = true
		}
		if j.Labels[builders.LabelComponent] != builders.ComponentBackup {
			continue
		}
		schedule := j.Labels[builders.LabelSchedule]
		started := j.CreationTimestamp.Time
		if j.Status.StartTime != nil {
			started = j.Status.StartTime.Time
		}
		if !started.After(newest[schedule]) {
			continue
		}
		newest[schedule] = started
		job := &freshness.Job{Name: j.Name, StartedAt: started, Active: failed == nil && !complete}
		if failed != nil {
			job.Failed, job.FailureReason, job.FailureMessage = true, failed.Reason, failed.Message
		}
		if j.Spec.ActiveDeadlineSeconds != nil {
			job.Deadline = started.Add(time.Duration(*j.Spec.ActiveDeadlineSeconds) * time.Second)
		}
		out.NewestBackup[schedule] = job
	}
	return out
}

// JobFinished returns the Failed condition of a failed Job, and whether it completed.
func JobFinished(j *batchv1.Job) (*batchv1.JobCondition, bool) {
	for i, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobFailed:
			return &j.Status.Conditions[i], false
		case batchv1.JobComplete:
			return nil, true
		}
	}
	return nil, false
}
