// Package freshness judges whether a tenant's backups are recent enough, from what the storage
// listing and the backup jobs say. It is pure: the caller lists storage and reads jobs, and passes
// the time in, so the judgement is tested with any clock.
//
// A schedule's newest backup may be as old as its expected interval (the longest gap between two
// runs of its cron schedule) plus a grace period that leaves room for the dump itself, unless the
// schedule sets maxAge, which replaces both. A schedule with no backup yet is Pending until its
// first backup is due, measured from when the schedule was set up, and Missing after that.
package freshness

import (
	"fmt"
	"strings"
	"time"
)

// State is the verdict on one schedule. The order is the order of precedence when schedules are
// summarized: the first that applies to any schedule names the whole.
type State int

const (
	Fresh State = iota
	// Pending: no backup yet, and the first one is not due yet.
	Pending
	Stale
	Missing
	// JobFailing: the newest backup job failed or is stuck, and no backup has been stored since.
	JobFailing
	// StorageUnreachable: the storage could not be listed, so nothing is known.
	StorageUnreachable
)

func (s State) String() string {
	return [...]string{"Fresh", "Pending", "Stale", "Missing", "JobFailing", "StorageUnreachable"}[s]
}

// OK tells whether the state is no reason for alarm.
func (s State) OK() bool { return s == Fresh || s == Pending }

// Schedule is what is expected of one backup schedule.
type Schedule struct {
	Name string
	// ExpectedInterval is the longest gap between two runs of the cron schedule.
	ExpectedInterval time.Duration
	// MaxAge, when set, is how old the newest backup may be, replacing interval plus grace.
	MaxAge time.Duration
	// Since is when backups became expected (the schedule's CronJob was created).
	Since time.Time
}

// AllowedAge is how old the newest backup may be before it is stale.
func (s Schedule) AllowedAge() time.Duration {
	if s.MaxAge > 0 {
		return s.MaxAge
	}
	return s.ExpectedInterval + Grace(s.ExpectedInterval)
}

// Grace is the time a backup may take beyond its interval: a tenth of the interval, at least 30
// minutes, at most 6 hours.
func Grace(interval time.Duration) time.Duration {
	return min(max(interval/10, 30*time.Minute), 6*time.Hour)
}

// Backup is the newest complete backup of a schedule, as listed from storage.
type Backup struct {
	ID         string
	FinishedAt time.Time
}

// Job is the newest backup job of a schedule.
type Job struct {
	Name      string
	StartedAt time.Time
	// Failed with its reason and message from the Job's Failed condition.
	Failed         bool
	FailureReason  string
	FailureMessage string
	// Active: still running; Deadline is when it should have finished at the latest.
	Active   bool
	Deadline time.Time
}

// Observation is what was seen of one schedule.
type Observation struct {
	// ListError, when set, means the storage could not be listed.
	ListError error
	// Newest is the newest complete backup, nil when there is none.
	Newest *Backup
	// LastJob is the newest job, nil when none has run.
	LastJob *Job
	// LastSeen is the newest backup an earlier check found, when Newest is nil because it has
	// since gone from storage: then backups are Missing at once, not Pending a first one.
	LastSeen *Backup
}

// Verdict is the judgement on one schedule.
type Verdict struct {
	Schedule string
	State    State
	// Message says what was found, for a person.
	Message string
	// StaleAt is when the schedule turns stale if no new backup arrives; zero when it already is
	// or when nothing is known.
	StaleAt time.Time
}

// Judge decides the state of one schedule at now.
func Judge(s Schedule, o Observation, now time.Time) Verdict {
	v := Verdict{Schedule: s.Name}
	allowed := s.AllowedAge()
	if o.ListError != nil {
		v.State = StorageUnreachable
		v.Message = fmt.Sprintf("%s: storage could not be listed: %v", s.Name, o.ListError)
		return v
	}
	// Messages name times, never ages: an age changes on every pass, and every change of a
	// condition's message is a status write.
	newest := ""
	if o.Newest != nil {
		newest = fmt.Sprintf("newest backup %s finished %s", o.Newest.ID, stamp(o.Newest.FinishedAt))
	}
	if j := o.LastJob; j != nil && (o.Newest == nil || o.Newest.FinishedAt.Before(j.StartedAt)) {
		problem := ""
		switch {
		case j.Failed:
			problem = fmt.Sprintf("job %s failed", j.Name)
			if j.FailureReason != "" {
				problem += " (" + j.FailureReason
				if j.FailureMessage != "" {
					problem += ": " + j.FailureMessage
				}
				problem += ")"
			}
		case j.Active && !j.Deadline.IsZero() && now.After(j.Deadline):
			problem = fmt.Sprintf("job %s running since %s, past its deadline %s", j.Name, stamp(j.StartedAt), stamp(j.Deadline))
		}
		if problem != "" {
			v.State = JobFailing
			if newest == "" {
				newest = "no backup stored yet"
			}
			v.Message = fmt.Sprintf("%s: %s; %s", s.Name, problem, newest)
			return v
		}
	}
	if o.Newest == nil {
		due := s.Since.Add(allowed)
		if o.LastSeen != nil {
			v.State = Missing
			v.Message = fmt.Sprintf("%s: no backup in storage; backup %s (finished %s) was there before", s.Name, o.LastSeen.ID,
				stamp(o.LastSeen.FinishedAt))
			return v
		}
		if !s.Since.IsZero() && now.Before(due) {
			v.State = Pending
			v.StaleAt = due
			v.Message = fmt.Sprintf("%s: first backup due by %s", s.Name, stamp(due))
			return v
		}
		v.State = Missing
		v.Message = fmt.Sprintf("%s: no backup in storage", s.Name)
		return v
	}
	staleAt := o.Newest.FinishedAt.Add(allowed)
	if now.After(staleAt) {
		v.State = Stale
		v.Message = fmt.Sprintf("%s: %s, longer ago than the %s allowed", s.Name, newest, roundAge(allowed))
		return v
	}
	v.State = Fresh
	v.StaleAt = staleAt
	v.Message = fmt.Sprintf("%s: %s", s.Name, newest)
	return v
}

// Summary is the verdict on all schedules of a tenant together.
type Summary struct {
	// State is the worst state of any schedule (Fresh when there are none).
	State State
	// Message lists the schedules that are not fresh, or all of them when all are.
	Message string
	// StaleAt is the earliest time a schedule turns stale; zero when none will.
	StaleAt time.Time
}

// Summarize combines the verdicts: the worst state wins, and the message names every schedule
// that needs attention.
func Summarize(verdicts []Verdict) Summary {
	var sum Summary
	var bad, good []string
	for _, v := range verdicts {
		if v.State > sum.State {
			sum.State = v.State
		}
		if v.State.OK() {
			good = append(good, v.Message)
		} else {
			bad = append(bad, v.Message)
		}
		if !v.StaleAt.IsZero() && (sum.StaleAt.IsZero() || v.StaleAt.Before(sum.StaleAt)) {
			sum.StaleAt = v.StaleAt
		}
	}
	if len(bad) > 0 {
		sum.Message = strings.Join(bad, "; ")
	} else {
		sum.Message = strings.Join(good, "; ")
	}
	return sum
}

// stamp writes a time as messages show it: UTC, to the second.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// roundAge renders an age at a precision a person reads at a glance.
func roundAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

// Verification is the newest verification of a schedule's backups.
type Verification struct {
	BackupID  string
	CheckedAt time.Time
	OK        bool
	Problems  []string
}

// VerificationState is the verdict on a schedule's verification.
type VerificationState int

const (
	Verified VerificationState = iota
	// VerificationPending: none yet, and the first is not due yet.
	VerificationPending
	// NotVerified: none, or the newest is older than the verification interval allows.
	NotVerified
	VerificationFailed
)

func (s VerificationState) String() string {
	return [...]string{"Verified", "VerificationPending", "NotVerified", "VerificationFailed"}[s]
}

// JudgeVerification decides whether a schedule's backups are verified: the newest verification
// passed and is no older than the verification interval plus grace.
func JudgeVerification(schedule string, interval time.Duration, since time.Time, newest *Verification, now time.Time) (VerificationState, string) {
	allowed := interval + Grace(interval)
	switch {
	case newest == nil && !since.IsZero() && now.Before(since.Add(allowed)):
		return VerificationPending, fmt.Sprintf("%s: first verification due by %s", schedule, stamp(since.Add(allowed)))
	case newest == nil:
		return NotVerified, fmt.Sprintf("%s: no backup has been verified", schedule)
	case !newest.OK:
		return VerificationFailed, fmt.Sprintf("%s: verification of backup %s at %s failed: %s", schedule, newest.BackupID,
			stamp(newest.CheckedAt), strings.Join(newest.Problems, "; "))
	case now.Sub(newest.CheckedAt) > allowed:
		return NotVerified, fmt.Sprintf("%s: newest verification (backup %s at %s) is older than the %s allowed", schedule, newest.BackupID,
			stamp(newest.CheckedAt), roundAge(allowed))
	}
	return Verified, fmt.Sprintf("%s: backup %s verified at %s", schedule, newest.BackupID, stamp(newest.CheckedAt))
}
