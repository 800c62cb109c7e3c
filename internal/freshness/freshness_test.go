package freshness

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func TestJudge(t *testing.T) {
	twelveHours := Schedule{Name: "hot", ExpectedInterval: 12 * time.Hour, Since: t0.Add(-30 * 24 * time.Hour)}
	fresh := &Backup{ID: "b1", FinishedAt: t0.Add(-3 * time.Hour)}
	tests := []struct {
		name        string
		schedule    Schedule
		obs         Observation
		now         time.Time
		want        State
		wantMessage string
		wantStaleAt time.Time
	}{
		{"fresh", twelveHours, Observation{Newest: fresh}, t0, Fresh, "newest backup b1 finished " + stamp(fresh.FinishedAt), fresh.FinishedAt.Add(12*time.Hour + 72*time.Minute)},
		{"within grace", twelveHours, Observation{Newest: &Backup{ID: "b", FinishedAt: t0.Add(-13 * time.Hour)}}, t0, Fresh, "finished " + stamp(t0.Add(-13*time.Hour)), time.Time{}},
		{"stale after interval plus grace", twelveHours, Observation{Newest: &Backup{ID: "b", FinishedAt: t0.Add(-13*time.Hour - 13*time.Minute)}}, t0, Stale, "longer ago than the 13h12m allowed", time.Time{}},
		{"maxAge replaces interval and grace", Schedule{Name: "cold", ExpectedInterval: 24 * time.Hour, MaxAge: 26 * time.Hour},
			Observation{Newest: &Backup{ID: "b", FinishedAt: t0.Add(-26*time.Hour - time.Second)}}, t0, Stale, "longer ago than the 26h0m allowed", time.Time{}},
		{"194 days old", twelveHours, Observation{Newest: &Backup{ID: "old", FinishedAt: t0.Add(-194 * 24 * time.Hour)}}, t0, Stale, "longer ago than the 13h12m allowed", time.Time{}},
		{"none yet, not due", Schedule{Name: "hot", ExpectedInterval: 12 * time.Hour, Since: t0.Add(-time.Hour)}, Observation{}, t0, Pending, "first backup due by 2026-11-21T00:12:00Z", t0.Add(11*time.Hour + 72*time.Minute)},
		{"gone from storage before the first was due", Schedule{Name: "hot", ExpectedInterval: 12 * time.Hour, Since: t0.Add(-time.Hour)},
			Observation{LastSeen: &Backup{ID: "b0", FinishedAt: t0.Add(-30 * time.Minute)}}, t0, Missing, "no backup in storage; backup b0 (finished 2026-11-20T11:30:00Z) was there before", time.Time{}},
		{"none, due long ago", twelveHours, Observation{}, t0, Missing, "no backup in storage", time.Time{}},
		{"none, since unknown", Schedule{Name: "hot", ExpectedInterval: 12 * time.Hour}, Observation{}, t0, Missing, "no backup in storage", time.Time{}},
		{"unreachable wins", twelveHours, Observation{ListError: errors.New("connection refused"), Newest: fresh}, t0, StorageUnreachable, "connection refused", time.Time{}},
		{"failed job after newest backup", twelveHours, Observation{Newest: fresh, LastJob: &Job{Name: "backup-acme-hot-1", StartedAt: t0.Add(-time.Hour), Failed: true, FailureReason: "BackoffLimitExceeded", FailureMessage: "Job has reached the specified backoff limit"}},
			t0, JobFailing, "job backup-acme-hot-1 failed (BackoffLimitExceeded: Job has reached the specified backoff limit); newest backup b1 finished " + stamp(fresh.FinishedAt), time.Time{}},
		{"failed job before newest backup is history", twelveHours, Observation{Newest: fresh, LastJob: &Job{Name: "j", StartedAt: t0.Add(-5 * time.Hour), Failed: true}}, t0, Fresh, "b1", time.Time{}},
		{"failed job and nothing stored", twelveHours, Observation{LastJob: &Job{Name: "j", StartedAt: t0.Add(-time.Hour), Failed: true}}, t0, JobFailing, "no backup stored yet", time.Time{}},
		{"running job within deadline", twelveHours, Observation{Newest: fresh, LastJob: &Job{Name: "j", StartedAt: t0.Add(-time.Hour), Active: true, Deadline: t0.Add(5 * time.Hour)}}, t0, Fresh, "b1", time.Time{}},
		{"stuck job past deadline", twelveHours, Observation{Newest: fresh, LastJob: &Job{Name: "j", StartedAt: t0.Add(-2 * time.Hour), Active: true, Deadline: t0.Add(-time.Hour)}}, t0, JobFailing, "running since " + stamp(t0.Add(-2*time.Hour)) + ", past its deadline " + stamp(t0.Add(-time.Hour)), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Judge(tt.schedule, tt.obs, tt.now)
			if got.State != tt.want {
				t.Fatalf("state = %s (%s), want %s", got.State, got.Message, tt.want)
			}
			if !strings.Contains(got.Message, tt.wantMessage) || !strings.HasPrefix(got.Message, tt.schedule.Name+": ") {
				t.Errorf("message = %q, want it to start with the schedule and contain %q", got.Message, tt.wantMessage)
			}
			if !tt.wantStaleAt.IsZero() && !got.StaleAt.Equal(tt.wantStaleAt) {
				t.Errorf("staleAt = %s, want %s", got.StaleAt, tt.wantStaleAt)
			}
			if !got.State.OK() && !got.StaleAt.IsZero() {
				t.Errorf("a %s schedule has staleAt %s", got.State, got.StaleAt)
			}
		})
	}
}

// TestJudgeBoundary pins the exact edge: stale one nanosecond after the allowed age, not at it.
func TestJudgeBoundary(t *testing.T) {
	s := Schedule{Name: "daily", ExpectedInterval: 24 * time.Hour}
	allowed := s.AllowedAge()
	if allowed != 24*time.Hour+144*time.Minute {
		t.Fatalf("allowed age of a daily schedule = %s, want 26h24m (a tenth of the interval as grace)", allowed)
	}
	b := &Backup{ID: "b", FinishedAt: t0}
	if got := Judge(s, Observation{Newest: b}, t0.Add(allowed)).State; got != Fresh {
		t.Errorf("at exactly the allowed age: %s, want Fresh", got)
	}
	if got := Judge(s, Observation{Newest: b}, t0.Add(allowed+time.Nanosecond)).State; got != Stale {
		t.Errorf("just past the allowed age: %s, want Stale", got)
	}
}

func TestGrace(t *testing.T) {
	for _, tt := range []struct{ interval, want time.Duration }{
		{time.Hour, 30 * time.Minute},
		{12 * time.Hour, 72 * time.Minute},
		{7 * 24 * time.Hour, 6 * time.Hour},
	} {
		if got := Grace(tt.interval); got != tt.want {
			t.Errorf("Grace(%s) = %s, want %s", tt.interval, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	soon, later := t0.Add(time.Hour), t0.Add(2*time.Hour)
	got := Summarize([]Verdict{
		{Schedule: "hot", State: Fresh, Message: "hot: ok", StaleAt: later},
		{Schedule: "cold", State: Stale, Message: "cold: old"},
		{Schedule: "weekly", State: Pending, Message: "weekly: due", StaleAt: soon},
		{Schedule: "offsite", State: Missing, Message: "offsite: none"},
	})
	if got.State != Missing || got.Message != "cold: old; offsite: none" || !got.StaleAt.Equal(soon) {
		t.Errorf("Summarize = %+v, want Missing naming cold and offsite, staleAt the soonest", got)
	}
	all := Summarize([]Verdict{{State: Fresh, Message: "hot: ok"}, {State: Pending, Message: "cold: due"}})
	if all.State != Pending || !all.State.OK() || all.Message != "hot: ok; cold: due" {
		t.Errorf("Summarize of good schedules = %+v", all)
	}
	if none := Summarize(nil); none.State != Fresh || none.Message != "" {
		t.Errorf("Summarize(nil) = %+v", none)
	}
}

func TestJudgeVerification(t *testing.T) {
	week := 7 * 24 * time.Hour
	since := t0.Add(-30 * 24 * time.Hour)
	tests := []struct {
		name   string
		since  time.Time
		newest *Verification
		want   VerificationState
		msg    string
	}{
		{"recent pass", since, &Verification{BackupID: "b", CheckedAt: t0.Add(-24 * time.Hour), OK: true}, Verified, "backup b verified at " + stamp(t0.Add(-24*time.Hour))},
		{"failed", since, &Verification{BackupID: "b", CheckedAt: t0.Add(-time.Hour), Problems: []string{"checksum mismatch", "table public.x: 3 rows, manifest says 4"}}, VerificationFailed, "failed: checksum mismatch; table public.x"},
		{"too old", since, &Verification{BackupID: "b", CheckedAt: t0.Add(-8 * 24 * time.Hour), OK: true}, NotVerified, "is older than the"},
		{"never, not due", t0.Add(-time.Hour), nil, VerificationPending, "first verification due"},
		{"never, overdue", since, nil, NotVerified, "no backup has been verified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg := JudgeVerification("hot", week, tt.since, tt.newest, t0)
			if got != tt.want || !strings.Contains(msg, tt.msg) {
				t.Errorf("got %s %q, want %s containing %q", got, msg, tt.want, tt.msg)
			}
		})
	}
}
