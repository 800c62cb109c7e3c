package backupcheck

import (
	"fmt"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/freshness"
	"github.com/tenantops/tenant-operator/internal/metrics"
	"github.com/tenantops/tenant-operator/internal/schedule"
)

// Expected is one schedule of a BackupPolicy with what freshness and verification expect of it.
type Expected struct {
	freshness.Schedule
	// VerifyInterval is the verification schedule's longest gap; zero without verification.
	VerifyInterval time.Duration
	// VerifySince is when the verification CronJob was created; zero without one.
	VerifySince time.Time
	// Physical says the schedule takes base backups and has a WAL archive.
	Physical bool
}

// Expect is what is expected of one schedule of policy, before its CronJobs' creation times are
// known. A cron expression that does not parse is an error: admission refuses it, and the
// policy's own condition reports one that slipped by.
func Expect(policy *v1alpha1.BackupPolicy, spec v1alpha1.BackupSchedule) (Expected, error) {
	interval, err := LongestGap(spec.Schedule)
	if err != nil {
		return Expected{}, fmt.Errorf("schedule %s: %w", spec.Name, err)
	}
	e := Expected{Schedule: freshness.Schedule{Name: spec.Name, ExpectedInterval: interval}, Physical: spec.IsPhysical()}
	if spec.MaxAge != "" {
		if p, err := schedule.ParsePeriod(spec.MaxAge); err == nil {
			e.MaxAge = p.Approximate()
		}
	}
	if v := policy.Spec.Verification; v != nil {
		if e.VerifyInterval, err = LongestGap(v.Schedule); err != nil {
			return Expected{}, fmt.Errorf("verification schedule: %w", err)
		}
	}
	return e, nil
}

// LongestGap is the longest time between two runs of a cron schedule, from a fixed point in time
// so that it does not change between passes (a changing expected interval would be a status write
// every time). Results are kept: a thousand tenants share a handful of schedules.
func LongestGap(expr string) (time.Duration, error) {
	gaps.Lock()
	defer gaps.Unlock()
	if d, ok := gaps.m[expr]; ok {
		return d, nil
	}
	s, err := schedule.ParseCron(expr)
	if err != nil {
		return 0, err
	}
	d := schedule.LongestGap(s, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if gaps.m == nil {
		gaps.m = map[string]time.Duration{}
	}
	gaps.m[expr] = d
	return d, nil
}

var gaps struct {
	sync.Mutex
	m map[string]time.Duration
}

// stamp is a time as status holds it: to the second, as the API server stores it, so that the
// status a pass computes equals the one it read back and is not written again.
func stamp(t time.Time) *metav1.Time {
	return &metav1.Time{Time: t.Truncate(time.Second)}
}

// Input is what one pass observed of a tenant's backups.
type Input struct {
	Policy    *v1alpha1.BackupPolicy
	Schedules []Expected
	// Jobs is the newest backup Job of each schedule.
	Jobs       map[string]*freshness.Job
	Inspection Inspection
	// Receivers are the WAL receivers of the physical schedules, by schedule.
	Receivers map[string]Receiver
	Now       time.Time
}

// Receiver is what the Deployment of a physical schedule's WAL receiver shows.
type Receiver struct {
	// Name of the Deployment; empty when it does not exist (yet).
	Name string
	// Ready says its pod is available: connected, and storing what it receives (its probe).
	Ready bool
	// Since is when it last turned ready or unready, or was created.
	Since time.Time
}

// Verdict is what the Tenant shows of its backups, judged from one Input.
type Verdict struct {
	Status *v1alpha1.BackupsStatus
	// Fresh and Verified are the BackupsFresh and BackupVerified conditions, without
	// observedGeneration, which the caller sets.
	Fresh, Verified metav1.Condition
	// WAL is the WALArchiving condition; nil when no schedule is physical.
	WAL     *metav1.Condition
	Metrics []metrics.ScheduleBackups
	// StaleAt is when a schedule turns stale if no new backup arrives; zero when none will.
	StaleAt time.Time
}

// Judge decides a tenant's backup status and conditions from the policy, what storage was found to
// hold (its listing, pruned by retention) and the time. It reads nothing else: a pass that saw the
// same gives the same verdict.
func Judge(in Input) Verdict {
	out := Verdict{Status: &v1alpha1.BackupsStatus{}}
	var wal walSummary
	var verdicts []freshness.Verdict
	verification := verificationSummary{enabled: in.Policy.Spec.Verification != nil}
	var newest, newestVerified time.Time
	var unlooked []string
	var untrusted []string
	for _, e := range in.Schedules {
		l, looked := in.Inspection[e.Name]
		if !looked {
			unlooked = append(unlooked, e.Name)
		}
		// A backup whose signature does not check was made or changed without the key: it must not
		// count as fresh or verified. It is named, so a person looks at it.
		var ignored []string
		l.Entries, ignored = trustedOnly(l.Entries)
		for _, id := range ignored {
			untrusted = append(untrusted, e.Name+"/"+id)
		}
		st := v1alpha1.ScheduleBackupStatus{Name: e.Name, ExpectedInterval: &metav1.Duration{Duration: e.AllowedAge()},
			Count: int32(len(l.Entries)), NextPrune: l.NextPrune}
		m := metrics.ScheduleBackups{Schedule: e.Name, AllowedAge: e.AllowedAge()}
		obs := freshness.Observation{ListError: l.Err, LastJob: in.Jobs[e.Name]}
		if len(l.Entries) > 0 {
			b := l.Entries[0]
			obs.Newest = &freshness.Backup{ID: b.ID, FinishedAt: b.FinishedAt}
			st.LastSuccessTime, st.LastBackupID, st.LastBackupSizeBytes = stamp(b.FinishedAt), b.ID, b.Size
			m.LastSuccess, m.SizeBytes = b.FinishedAt, b.Size
			if b.FinishedAt.After(newest) {
				newest = b.FinishedAt
			}
		} else if s := l.LastSeen; s != nil && l.Err == nil {
			// Backups that were there are gone: keep telling when the last one was seen, and
			// call them Missing rather than waiting for a first one.
			obs.LastSeen = &freshness.Backup{ID: s.ID, FinishedAt: s.FinishedAt}
			st.LastSuccessTime, st.LastBackupID = stamp(s.FinishedAt), s.ID
		}
		if v := newestVerification(l.Entries); v != nil {
			st.LastVerificationTime = stamp(v.CheckedAt)
			if v.OK {
				m.LastVerified = v.CheckedAt
				if v.CheckedAt.After(newestVerified) {
					newestVerified = v.CheckedAt
				}
			}
			verification.add(e, v, in.Now)
		} else if looked && l.Err == nil {
			verification.add(e, nil, in.Now)
		}
		if looked {
			verdicts = append(verdicts, freshness.Judge(e.Schedule, obs, in.Now))
		}
		if e.Physical {
			var p *metrics.PointInTime
			st.PointInTime, p = pointInTime(l.WAL, in.Receivers[e.Name])
			m.PointInTime = p
			wal.add(e.Name, l, looked, in.Receivers[e.Name], in.Now)
		}
		out.Status.Schedules = append(out.Status.Schedules, st)
		out.Metrics = append(out.Metrics, m)
	}
	if !newest.IsZero() {
		out.Status.LastSuccessTime = stamp(newest)
	}
	if !newestVerified.IsZero() {
		out.Status.LastVerificationTime = stamp(newestVerified)
	}
	sum := freshness.Summarize(verdicts)
	out.StaleAt = sum.StaleAt
	out.Fresh = freshCondition(in.Policy, sum, unlooked)
	if len(untrusted) > 0 && out.Fresh.Status != metav1.ConditionFalse {
		out.Fresh.Status, out.Fresh.Reason = metav1.ConditionFalse, v1alpha1.ReasonUntrustedBackups
		out.Fresh.Message = fmt.Sprintf("%d backups in storage are not signed by this policy's keys and are ignored: %s; %s",
			len(untrusted), strings.Join(untrusted[:min(len(untrusted), 5)], ", "), out.Fresh.Message)
	}
	out.Verified = verification.condition(in.Policy)
	out.WAL = wal.condition()
	return out
}

// trustedOnly splits entries into those whose signature checks and the ids of the others.
func trustedOnly(entries []catalog.Entry) ([]catalog.Entry, []string) {
	var ignored []string
	kept := entries[:0:0]
	for _, e := range entries {
		if e.Signature.Trusted() {
			kept = append(kept, e)
		} else {
			ignored = append(ignored, e.ID)
		}
	}
	return kept, ignored
}

// freshCondition is BackupsFresh for the schedules' verdicts. Schedules whose storage has not been
// looked at yet make it Unknown, unless a looked-at one is already in trouble.
func freshCondition(policy *v1alpha1.BackupPolicy, sum freshness.Summary, unlooked []string) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionBackupsFresh}
	message := sum.Message
	if policy.Spec.Suspend {
		message = fmt.Sprintf("Backups are suspended by BackupPolicy %s; %s", policy.Name, message)
	}
	switch {
	case len(unlooked) > 0 && sum.State.OK():
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonProgressing
		c.Message = "Looking at the storage of schedules " + strings.Join(unlooked, ", ")
		return c
	case sum.State == freshness.Fresh:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonFresh
	case sum.State == freshness.Pending:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonFirstBackupPending
	case policy.Spec.Suspend:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonSuspended
	default:
		c.Status, c.Reason = metav1.ConditionFalse, freshnessReason(sum.State)
	}
	c.Message = message
	return c
}

func freshnessReason(s freshness.State) string {
	switch s {
	case freshness.Stale:
		return v1alpha1.ReasonStale
	case freshness.Missing:
		return v1alpha1.ReasonMissing
	case freshness.JobFailing:
		return v1alpha1.ReasonJobFailing
	case freshness.StorageUnreachable:
		return v1alpha1.ReasonStorageUnreachable
	}
	return v1alpha1.ReasonFresh
}

// newestVerification is the most recent verification among a schedule's backups.
func newestVerification(entries []catalog.Entry) *freshness.Verification {
	var out *freshness.Verification
	for _, e := range entries {
		v := e.Verification
		if v == nil || (out != nil && !v.CheckedAt.After(out.CheckedAt)) {
			continue
		}
		out = &freshness.Verification{BackupID: v.BackupID, CheckedAt: v.CheckedAt, OK: v.OK, Problems: v.Problems}
	}
	return out
}

// verificationSummary gathers the schedules' verification verdicts into BackupVerified.
type verificationSummary struct {
	enabled  bool
	worst    freshness.VerificationState
	messages map[freshness.VerificationState][]string
}

func (v *verificationSummary) add(e Expected, newest *freshness.Verification, now time.Time) {
	if !v.enabled {
		return
	}
	state, msg := freshness.JudgeVerification(e.Name, e.VerifyInterval, e.VerifySince, newest, now)
	if v.messages == nil {
		v.messages = map[freshness.VerificationState][]string{}
	}
	v.messages[state] = append(v.messages[state], msg)
	if state > v.worst {
		v.worst = state
	}
}

func (v *verificationSummary) condition(policy *v1alpha1.BackupPolicy) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionBackupVerified}
	if !v.enabled {
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonNotVerified
		c.Message = fmt.Sprintf("BackupPolicy %s asks for no verification", policy.Name)
		return c
	}
	c.Message = strings.Join(v.messages[v.worst], "; ")
	switch v.worst {
	case freshness.Verified:
		if c.Message == "" {
			c.Status, c.Reason, c.Message = metav1.ConditionUnknown, v1alpha1.ReasonNotVerified, "No schedule's storage could be read yet"
			return c
		}
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonVerified
	case freshness.VerificationPending:
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonProgressing
	case freshness.NotVerified:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonNotVerified
	case freshness.VerificationFailed:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonVerificationFailed
	}
	return c
}
