package uptime

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/tenantops/tenant-operator/api/v1alpha1"
)

func TestFormatRatio(t *testing.T) {
	tests := []struct {
		c    Counts
		want string
	}{
		{Counts{}, ""},
		{Counts{Up: 0, Total: 5}, "0"},
		{Counts{Up: 1, Total: 1}, "100"},
		{Counts{Up: 199, Total: 200}, "99.5"},
		{Counts{Up: 2, Total: 3}, "66.666"},
		{Counts{Up: 1999, Total: 2000}, "99.95"},
		// 99.99960 % must not show as a perfect 100.
		{Counts{Up: 249999, Total: 250000}, "99.999"},
		{Counts{Up: 1, Total: 200000}, "0"},
	}
	for _, tt := range tests {
		if got := FormatRatio(tt.c); got != tt.want {
			t.Errorf("FormatRatio(%+v) = %q, want %q", tt.c, got, tt.want)
		}
	}
}

func TestFormatBudget(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{1, "100.0"},
		{0.8734, "87.3"},
		{0.99999, "99.9"},
		{0, "0.0"},
		{-0.00001, "0.0"},
		{-0.125, "-12.5"},
		{-9, "-900.0"},
	}
	for _, tt := range tests {
		if got := FormatBudget(tt.in); got != tt.want {
			t.Errorf("FormatBudget(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSummary(t *testing.T) {
	office := mustHours(t, "Europe/Amsterdam", "09:00", "17:00")
	// A week of probes at 30 s from Monday 2 March; on Thursday 5 March 20 minutes down at 10:00
	// local (09:00 UTC) and 40 minutes down at 20:00 local, after hours.
	h := &History{}
	probeEvery(h, base, base.Add(7*day), 30*time.Second, func(at time.Time) bool {
		return between(base.Add(3*day+9*time.Hour), base.Add(3*day+9*time.Hour+20*time.Minute))(at) ||
			between(base.Add(3*day+19*time.Hour), base.Add(3*day+19*time.Hour+40*time.Minute))(at)
	})
	now := base.Add(7 * day)
	tests := []struct {
		name       string
		objective  string
		hours      *BusinessHours
		history    *History
		wantStatus tenancyv1alpha1.UptimeStatus
		wantCond   metav1.Condition
	}{
		{
			name:      "around the clock the evening outage misses 99.9",
			objective: "99.9", history: h,
			wantStatus: tenancyv1alpha1.UptimeStatus{Ratio24h: "100", Ratio7d: "99.404", Ratio30d: "99.404", ErrorBudgetRemaining: "-495.2"},
			wantCond: metav1.Condition{
				Type: tenancyv1alpha1.ConditionUptimeObjectiveMet, Status: metav1.ConditionFalse, Reason: tenancyv1alpha1.ReasonObjectiveMissed,
				Message: "Availability 99.404 % over 30 days is below the objective of 99.9 %; the error budget is spent (-495.2 % left)",
			},
		},
		{
			name:      "over business hours only the morning outage counts and 99 is met",
			objective: "99", hours: office, history: h,
			wantStatus: tenancyv1alpha1.UptimeStatus{Ratio24h: "100", Ratio7d: "99.404", Ratio30d: "99.404", ErrorBudgetRemaining: "16.6"},
			wantCond: metav1.Condition{
				Type: tenancyv1alpha1.ConditionUptimeObjectiveMet, Status: metav1.ConditionTrue, Reason: tenancyv1alpha1.ReasonObjectiveMet,
				Message: "Availability 99.166 % over the business hours of 30 days meets the objective of 99 %; 16.6 % of the error budget is left",
			},
		},
		{
			name:      "no probes yet",
			objective: "99.5", history: &History{},
			wantStatus: tenancyv1alpha1.UptimeStatus{},
			wantCond: metav1.Condition{
				Type: tenancyv1alpha1.ConditionUptimeObjectiveMet, Status: metav1.ConditionUnknown, Reason: tenancyv1alpha1.ReasonProgressing,
				Message: "No probes yet over 30 days; the objective is 99.5 %",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseObjective(tt.objective)
			if err != nil {
				t.Fatal(err)
			}
			o.Hours = tt.hours
			s := Summarize(tt.history, o, now)
			// Fields the caller owns are left alone.
			st := tenancyv1alpha1.UptimeStatus{DetectionSeconds: 100, Ratio24h: "stale", ErrorBudgetRemaining: "stale"}
			s.Figures().ApplyTo(&st)
			tt.wantStatus.DetectionSeconds = 100
			if st != tt.wantStatus {
				t.Errorf("status = %+v, want %+v", st, tt.wantStatus)
			}
			if got := s.ObjectiveCondition(); got != tt.wantCond {
				t.Errorf("condition = %+v\nwant        %+v", got, tt.wantCond)
			}
		})
	}
}

func TestAvailableCondition(t *testing.T) {
	since := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	url := "https://app.example.com/"
	tests := []struct {
		name   string
		report Report
		want   metav1.Condition
	}{
		{
			name: "not probed yet", report: Report{},
			want: metav1.Condition{Type: tenancyv1alpha1.ConditionAvailable, Status: metav1.ConditionUnknown, Reason: tenancyv1alpha1.ReasonProgressing,
				Message: "Waiting for the first probes of https://app.example.com/"},
		},
		{
			name: "up", report: Report{State: Up, Since: since},
			want: metav1.Condition{Type: tenancyv1alpha1.ConditionAvailable, Status: metav1.ConditionTrue, Reason: tenancyv1alpha1.ReasonProbeSucceeded,
				Message: "https://app.example.com/ answers"},
		},
		{
			name: "up again after an outage", report: Report{State: Up, Since: since, LastOutage: 3*time.Minute + 15*time.Second},
			want: metav1.Condition{Type: tenancyv1alpha1.ConditionAvailable, Status: metav1.ConditionTrue, Reason: tenancyv1alpha1.ReasonProbeSucceeded,
				Message: "https://app.example.com/ answers again since 2026-12-02T10:00:00Z, after 3m15s down"},
		},
		{
			name: "down with the probe's reason", report: Report{State: Down, Since: since, Reason: "CertificateExpired", Message: "certificate for app.example.com expired at 2026-01-02T00:00:00Z"},
			want: metav1.Condition{Type: tenancyv1alpha1.ConditionAvailable, Status: metav1.ConditionFalse, Reason: tenancyv1alpha1.ReasonDown,
				Message: "https://app.example.com/ has not answered since 2026-12-02T10:00:00Z: CertificateExpired: certificate for app.example.com expired at 2026-01-02T00:00:00Z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.report.AvailableCondition(url); got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
