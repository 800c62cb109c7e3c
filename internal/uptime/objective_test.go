package uptime

import (
	"strings"
	"testing"
	"time"

	tenancyv1alpha1 "github.com/tenantops/tenant-operator/api/v1alpha1"
)

func TestParseObjective(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "99.5", want: "99.5"},
		{in: "99.95", want: "99.95"},
		{in: "99.999", want: "99.999"},
		{in: "100", want: "100"},
		{in: "100.0", want: "100"},
		{in: "0.001", want: "0.001"},
		{in: "7", want: "7"},
		{in: "0", wantErr: "above 0"},
		{in: "100.001", wantErr: "at most 100"},
		{in: "99.9999", wantErr: "not a percentage"},
		{in: "", wantErr: "not a percentage"},
		{in: ".5", wantErr: "not a percentage"},
		{in: "99.", want: "99"},
		{in: "-1", wantErr: "not a percentage"},
		{in: "9a", wantErr: "not a percentage"},
		{in: "1000", wantErr: "not a percentage"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			o, err := ParseObjective(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseObjective(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseObjective(%q): %v", tt.in, err)
			}
			if got := o.Percent(); got != tt.want {
				t.Fatalf("ParseObjective(%q).Percent() = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestObjectiveFor(t *testing.T) {
	hours := &tenancyv1alpha1.BusinessHours{TimeZone: "Europe/Amsterdam", Start: "09:00", End: "17:00"}
	tests := []struct {
		name      string
		spec      *tenancyv1alpha1.MonitoringSpec
		want      string
		wantHours bool
		wantErr   string
	}{
		{name: "no monitoring spec is the default objective", spec: nil, want: "99.5"},
		{name: "empty objective is the default", spec: &tenancyv1alpha1.MonitoringSpec{}, want: "99.5"},
		{name: "objective", spec: &tenancyv1alpha1.MonitoringSpec{Objective: "99.9"}, want: "99.9"},
		{name: "with business hours", spec: &tenancyv1alpha1.MonitoringSpec{Objective: "99", BusinessHours: hours}, want: "99", wantHours: true},
		{name: "bad objective names the field", spec: &tenancyv1alpha1.MonitoringSpec{Objective: "high"}, wantErr: "spec.monitoring.objective"},
		{
			name:    "bad business hours name the field",
			spec:    &tenancyv1alpha1.MonitoringSpec{BusinessHours: &tenancyv1alpha1.BusinessHours{TimeZone: "Mars/Olympus", Start: "09:00", End: "17:00"}},
			wantErr: "spec.monitoring.businessHours: timeZone \"Mars/Olympus\"",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ObjectiveFor(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Percent() != tt.want || (o.Hours != nil) != tt.wantHours {
				t.Fatalf("objective %s with hours %v, want %s with hours %v", o.Percent(), o.Hours != nil, tt.want, tt.wantHours)
			}
		})
	}
}

func TestParseBusinessHours(t *testing.T) {
	tests := []struct {
		name    string
		spec    tenancyv1alpha1.BusinessHours
		wantErr string
	}{
		{name: "office hours", spec: tenancyv1alpha1.BusinessHours{TimeZone: "Europe/Amsterdam", Days: []string{"Monday"}, Start: "09:00", End: "17:30"}},
		{name: "until midnight", spec: tenancyv1alpha1.BusinessHours{TimeZone: "UTC", Start: "00:00", End: "24:00"}},
		{name: "empty zone", spec: tenancyv1alpha1.BusinessHours{Start: "09:00", End: "17:00"}, wantErr: "not an IANA time zone"},
		{name: "the manager's local zone is not the tenant's", spec: tenancyv1alpha1.BusinessHours{TimeZone: "Local", Start: "09:00", End: "17:00"}, wantErr: "not an IANA time zone"},
		{name: "unknown zone", spec: tenancyv1alpha1.BusinessHours{TimeZone: "Europe/Atlantis", Start: "09:00", End: "17:00"}, wantErr: "not an IANA time zone"},
		{name: "unknown day", spec: tenancyv1alpha1.BusinessHours{TimeZone: "UTC", Days: []string{"Funday"}, Start: "09:00", End: "17:00"}, wantErr: "days: \"Funday\""},
		{name: "start after end", spec: tenancyv1alpha1.BusinessHours{TimeZone: "UTC", Start: "17:00", End: "09:00"}, wantErr: "not before end"},
		{name: "start equal to end", spec: tenancyv1alpha1.BusinessHours{TimeZone: "UTC", Start: "09:00", End: "09:00"}, wantErr: "not before end"},
		{name: "start at 24:00", spec: tenancyv1alpha1.BusinessHours{TimeZone: "UTC", Start: "24:00", End: "24:00"}, wantErr: "start: \"24:00\""},
		{name: "end past midnight", spec: tenancyv1alpha1.BusinessHours{TimeZone: "UTC", Start: "09:00", End: "24:01"}, wantErr: "end: \"24:01\""},
		{name: "no leading zero", spec: tenancyv1alpha1.BusinessHours{TimeZone: "UTC", Start: "9:00", End: "17:00"}, wantErr: "start: \"9:00\""},
		{name: "minutes out of range", spec: tenancyv1alpha1.BusinessHours{TimeZone: "UTC", Start: "09:60", End: "17:00"}, wantErr: "start: \"09:60\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBusinessHours(tt.spec)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func mustHours(t *testing.T, zone, start, end string, days ...string) *BusinessHours {
	t.Helper()
	bh, err := ParseBusinessHours(tenancyv1alpha1.BusinessHours{TimeZone: zone, Days: days, Start: start, End: end})
	if err != nil {
		t.Fatal(err)
	}
	return bh
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// In 2026 summer time in Europe/Amsterdam starts on Sunday 29 March at 02:00 CET (01:00 UTC),
// when clocks jump to 03:00 CEST, and ends on Sunday 25 October at 03:00 CEST (01:00 UTC), when
// clocks go back to 02:00 CET.
var (
	springForward = time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)
	fallBack      = time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC)
)

func TestBusinessHoursContains(t *testing.T) {
	office := mustHours(t, "Europe/Amsterdam", "09:00", "17:00", "Sunday", "Monday")
	night := mustHours(t, "Europe/Amsterdam", "01:00", "04:00", "Sunday")
	ams := mustZone(t, "Europe/Amsterdam")
	tests := []struct {
		name string
		bh   *BusinessHours
		at   time.Time
		want bool
	}{
		{name: "09:00 CEST on the spring-forward day is in", bh: office, at: springForward.Add(7 * time.Hour), want: true},
		{name: "08:59 CEST on the spring-forward day is out", bh: office, at: springForward.Add(7*time.Hour - time.Minute), want: false},
		{name: "16:59 CEST on the spring-forward day is in", bh: office, at: springForward.Add(15*time.Hour - time.Minute), want: true},
		{name: "17:00 CEST on the spring-forward day is out", bh: office, at: springForward.Add(15 * time.Hour), want: false},
		{name: "09:00 CET on the fall-back day is in", bh: office, at: fallBack.Add(8 * time.Hour), want: true},
		{name: "08:00 CET on the fall-back day is out", bh: office, at: fallBack.Add(7 * time.Hour), want: false},
		{name: "16:59 CET on the fall-back day is in", bh: office, at: fallBack.Add(16*time.Hour - time.Minute), want: true},
		{name: "Saturday is not a business day", bh: office, at: time.Date(2026, 3, 28, 12, 0, 0, 0, ams), want: false},
		{name: "Monday is", bh: office, at: time.Date(2026, 3, 30, 12, 0, 0, 0, ams), want: true},
		{name: "01:59 CET just before the jump is in", bh: night, at: springForward.Add(59 * time.Minute), want: true},
		{name: "03:00 CEST just after the jump is in", bh: night, at: springForward.Add(time.Hour), want: true},
		{name: "the first 02:30 (CEST) of the fall-back day is in", bh: night, at: fallBack.Add(30 * time.Minute), want: true},
		{name: "the second 02:30 (CET) of the fall-back day is in", bh: night, at: fallBack.Add(90 * time.Minute), want: true},
		{name: "04:00 CET of the fall-back day is out", bh: night, at: fallBack.Add(3 * time.Hour), want: false},
		{name: "00:59 CEST of the fall-back day (22:59 UTC on Saturday) is out", bh: night, at: fallBack.Add(-61 * time.Minute), want: false},
		{name: "01:00 CEST of the fall-back day (23:00 UTC on Saturday) is in", bh: night, at: fallBack.Add(-time.Hour), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.bh.Contains(tt.at); got != tt.want {
				t.Fatalf("Contains(%v, local %v) = %v, want %v", tt.at, tt.at.In(ams), got, tt.want)
			}
		})
	}
}

// TestEvaluateOverBusinessHours probes every 30 s around the clock for a week, failing in chosen
// real (UTC) hours, and checks which probes the objective counts. Hours that move with summer
// time are counted where the wall clock puts them, each real hour once: an office day is 8 hours
// on both DST days, a night that spans the jump is 2 hours in spring and 4 in autumn.
func TestEvaluateOverBusinessHours(t *testing.T) {
	const perHour = 120 // probes at 30 s
	tests := []struct {
		name string
		// The week probed starts here, a Monday 00:00 UTC.
		week  time.Time
		hours *BusinessHours
		// Probes in these UTC spans fail.
		down      [][2]time.Duration
		wantUp    int
		wantTotal int
	}{
		{
			// 09:00–17:00 CEST is 07:00–15:00 UTC. Failures at 15:00–16:00 UTC are 17:00–18:00
			// local, after hours; a fixed offset taken from the night before (CET) would have
			// counted them and missed 07:00–08:00 UTC.
			name:  "office hours on the spring-forward Sunday are 8 hours of CEST",
			week:  springForward.Add(-6 * day),
			hours: mustHours(t, "Europe/Amsterdam", "09:00", "17:00", "Sunday"),
			down: [][2]time.Duration{
				{6*day + 15*time.Hour, 6*day + 16*time.Hour},
				{6*day + 7*time.Hour, 6*day + 7*time.Hour + 30*time.Minute},
			},
			wantUp: 8*perHour - perHour/2, wantTotal: 8 * perHour,
		},
		{
			// 09:00–17:00 CET is 08:00–16:00 UTC.
			name:  "office hours on the fall-back Sunday are 8 hours of CET",
			week:  fallBack.Add(-6 * day),
			hours: mustHours(t, "Europe/Amsterdam", "09:00", "17:00", "Sunday"),
			down: [][2]time.Duration{
				{6*day + 7*time.Hour, 6*day + 8*time.Hour},
				{6*day + 15*time.Hour, 6*day + 16*time.Hour},
			},
			wantUp: 7 * perHour, wantTotal: 8 * perHour,
		},
		{
			// 01:00–02:00 CET is 00:00–01:00 UTC, then 03:00–04:00 CEST is 01:00–02:00 UTC.
			name:      "a night across the spring-forward jump has 2 real hours",
			week:      springForward.Add(-6 * day),
			hours:     mustHours(t, "Europe/Amsterdam", "01:00", "04:00", "Sunday"),
			down:      [][2]time.Duration{{6*day + 2*time.Hour, 6*day + 3*time.Hour}},
			wantUp:    2 * perHour,
			wantTotal: 2 * perHour,
		},
		{
			// 01:00 CEST is 23:00 UTC on Saturday; 04:00 CET is 03:00 UTC. The repeated hour
			// 02:00–03:00 is two real hours, each counted once.
			name:      "a night across the fall-back repeat has 4 real hours",
			week:      fallBack.Add(-6 * day),
			hours:     mustHours(t, "Europe/Amsterdam", "01:00", "04:00", "Sunday"),
			down:      [][2]time.Duration{{6*day + time.Hour, 6*day + 90*time.Minute}},
			wantUp:    4*perHour - perHour/2,
			wantTotal: 4 * perHour,
		},
		{
			name:      "the whole spring-forward Sunday is 23 hours",
			week:      springForward.Add(-6 * day),
			hours:     mustHours(t, "Europe/Amsterdam", "00:00", "24:00", "Sunday"),
			wantUp:    23 * perHour,
			wantTotal: 23 * perHour,
		},
		{
			name:      "the whole fall-back Sunday is 25 hours",
			week:      fallBack.Add(-6 * day),
			hours:     mustHours(t, "Europe/Amsterdam", "00:00", "24:00", "Sunday"),
			wantUp:    25 * perHour,
			wantTotal: 25 * perHour,
		},
		{
			// Monday to Friday by default; the week after the jump is all CEST, 07:00–15:00 UTC.
			name:      "a working week after the change",
			week:      springForward.Add(day),
			hours:     mustHours(t, "Europe/Amsterdam", "09:00", "17:00"),
			down:      [][2]time.Duration{{4*day + 14*time.Hour, 4*day + 16*time.Hour}},
			wantUp:    5*8*perHour - perHour,
			wantTotal: 5 * 8 * perHour,
		},
		{
			// UTC+05:45: 09:00–17:00 is 03:15–11:15 UTC, whole buckets of five minutes.
			name:      "a zone three quarters of an hour off",
			week:      springForward.Add(day),
			hours:     mustHours(t, "Asia/Kathmandu", "09:00", "17:00", "Tuesday"),
			down:      [][2]time.Duration{{day + 3*time.Hour, day + 3*time.Hour + 15*time.Minute}},
			wantUp:    8 * perHour,
			wantTotal: 8 * perHour,
		},
		{
			// Buckets are matched by their start: 09:07–09:22 counts the buckets of 09:10, 09:15
			// and 09:20, so 09:10–09:25.
			name:      "minutes that are not a multiple of five round up to the next bucket",
			week:      springForward.Add(day),
			hours:     mustHours(t, "UTC", "09:07", "09:22", "Tuesday"),
			wantUp:    3 * 10,
			wantTotal: 3 * 10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &History{}
			probeEvery(h, tt.week, tt.week.Add(7*day), 30*time.Second, func(at time.Time) bool {
				for _, d := range tt.down {
					if !at.Before(tt.week.Add(d[0])) && at.Before(tt.week.Add(d[1])) {
						return true
					}
				}
				return false
			})
			o, err := ParseObjective("99")
			if err != nil {
				t.Fatal(err)
			}
			o.Hours = tt.hours
			e := o.Evaluate(h, tt.week.Add(7*day))
			if e.Up != tt.wantUp || e.Total != tt.wantTotal {
				t.Fatalf("counted %d up of %d, want %d of %d", e.Up, e.Total, tt.wantUp, tt.wantTotal)
			}
			// The fast walk over buckets must agree with Contains, instant by instant.
			var slow Counts
			first, last := h.span(ObjectiveWindow, tt.week.Add(7*day))
			for n := first; n <= last; n++ {
				if tt.hours.Contains(time.Unix(n*bucketSeconds, 0)) {
					slow.add(h.at(n))
				}
			}
			if slow != e.Counts {
				t.Fatalf("bucket walk counted %+v, Contains %+v", e.Counts, slow)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		objective  string
		up, total  int
		wantMet    bool
		wantBudget float64
	}{
		{objective: "99.5", up: 0, total: 0, wantMet: false, wantBudget: 1},
		{objective: "99.5", up: 1000, total: 1000, wantMet: true, wantBudget: 1},
		{objective: "99.5", up: 998, total: 1000, wantMet: true, wantBudget: 0.6},
		{objective: "99.5", up: 995, total: 1000, wantMet: true, wantBudget: 0},
		{objective: "99.5", up: 993, total: 1000, wantMet: false, wantBudget: -0.4},
		{objective: "99.95", up: 19990, total: 20000, wantMet: true, wantBudget: 0},
		{objective: "99.95", up: 19989, total: 20000, wantMet: false, wantBudget: -0.1},
		{objective: "100", up: 500, total: 500, wantMet: true, wantBudget: 1},
		{objective: "100", up: 499, total: 500, wantMet: false, wantBudget: 0},
		{objective: "90", up: 0, total: 10, wantMet: false, wantBudget: -9},
	}
	for _, tt := range tests {
		t.Run(tt.objective+"/"+FormatRatio(Counts{Up: tt.up, Total: tt.total}), func(t *testing.T) {
			h := &History{}
			n := 0
			probeEvery(h, base, base.Add(time.Duration(tt.total)*time.Minute), time.Minute, func(time.Time) bool {
				n++
				return n > tt.up
			})
			o, err := ParseObjective(tt.objective)
			if err != nil {
				t.Fatal(err)
			}
			e := o.Evaluate(h, base.Add(time.Duration(tt.total)*time.Minute))
			if e.Up != tt.up || e.Total != tt.total {
				t.Fatalf("counted %d of %d, want %d of %d", e.Up, e.Total, tt.up, tt.total)
			}
			if e.Met != tt.wantMet {
				t.Errorf("Met = %v, want %v", e.Met, tt.wantMet)
			}
			if diff := e.BudgetRemaining - tt.wantBudget; diff > 1e-9 || diff < -1e-9 {
				t.Errorf("BudgetRemaining = %v, want %v", e.BudgetRemaining, tt.wantBudget)
			}
		})
	}
}

func TestEvaluateForgetsFailuresOlderThan30Days(t *testing.T) {
	h := &History{}
	outage := between(base, base.Add(time.Hour))
	probeEvery(h, base, base.Add(30*day), time.Minute, outage)
	o, _ := ParseObjective("99.9")
	// The window starts with the second bucket: 55 of the 60 failures are in it.
	if e := o.Evaluate(h, base.Add(30*day)); e.Total-e.Up != 55 || e.Met {
		t.Fatalf("an outage less than 30 days ago: %+v, want 55 failures and the objective missed", e)
	}
	probeEvery(h, base.Add(30*day), base.Add(30*day+time.Hour), time.Minute, nil)
	if e := o.Evaluate(h, base.Add(30*day+time.Hour)); !e.Met || e.BudgetRemaining != 1 {
		t.Fatalf("an outage more than 30 days ago still counts: %+v", e)
	}
}

// BenchmarkEvaluate is the cost of one objective evaluation over a full month, which the manager
// does for every tenant about once a minute.
func BenchmarkEvaluate(b *testing.B) {
	h := &History{}
	probeEvery(h, base, base.Add(30*day), 30*time.Second, nil)
	now := base.Add(30 * day)
	around, _ := ParseObjective("99.5")
	office := around
	office.Hours = mustHours(&testing.T{}, "Europe/Amsterdam", "09:00", "17:00")
	b.Run("around the clock", func(b *testing.B) {
		for b.Loop() {
			around.Evaluate(h, now)
		}
	})
	b.Run("business hours", func(b *testing.B) {
		for b.Loop() {
			office.Evaluate(h, now)
		}
	})
	b.Run("summarize", func(b *testing.B) {
		for b.Loop() {
			Summarize(h, office, now)
		}
	})
}
