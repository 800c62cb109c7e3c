package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestParsePeriod(t *testing.T) {
	tests := []struct {
		in      string
		want    Period
		wantErr string
	}{
		{in: "5d", want: Period{Days: 5}},
		{in: "2mo", want: Period{Months: 2}},
		{in: "1y", want: Period{Years: 1}},
		{in: "1w", want: Period{Days: 7}},
		{in: "36h", want: Period{Exact: 36 * time.Hour}},
		{in: "1y6mo", want: Period{Years: 1, Months: 6}},
		{in: "1d12h30m", want: Period{Days: 1, Exact: 12*time.Hour + 30*time.Minute}},
		{in: "", wantErr: "empty period"},
		{in: "5", wantErr: "unknown unit"},
		{in: "d", wantErr: "expected a number"},
		{in: "5days", wantErr: "expected a number at \"ays\""},
		{in: "0d", wantErr: "longer than zero"},
		{in: "-1d", wantErr: "expected a number"},
		{in: "1.5d", wantErr: "unknown unit"},
		{in: "999999999d", wantErr: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePeriod(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePeriod(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePeriod(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParsePeriod(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if again, err := ParsePeriod(got.String()); err != nil || again != got {
				t.Fatalf("String() %q does not parse back to %+v: %+v, %v", got.String(), got, again, err)
			}
		})
	}
}

func TestPeriodBeforeCountsOnTheCalendar(t *testing.T) {
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	// 5 days back across the start of summer time is 5 calendar days, i.e. 119 hours.
	now := time.Date(2026, 3, 31, 12, 0, 0, 0, ams)
	got := Period{Days: 5}.Before(now)
	if want := time.Date(2026, 3, 26, 12, 0, 0, 0, ams); !got.Equal(want) {
		t.Fatalf("5d before %v = %v, want %v", now, got, want)
	}
	if now.Sub(got) != 119*time.Hour {
		t.Fatalf("5 calendar days across DST = %v, want 119h", now.Sub(got))
	}
	if got := (Period{Months: 2}).Before(time.Date(2026, 5, 15, 0, 0, 0, 0, time.UTC)); !got.Equal(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("2mo before 15 May = %v, want 15 March", got)
	}
}

func TestParseCron(t *testing.T) {
	valid := []string{"0 */12 * * *", "@daily", "@weekly", "30 2 * * 1-5", "0 0 1 * *"}
	for _, expr := range valid {
		if _, err := ParseCron(expr); err != nil {
			t.Errorf("ParseCron(%q): %v", expr, err)
		}
	}
	invalid := map[string]string{
		"* * *":                      "not a valid cron schedule",
		"61 * * * *":                 "not a valid cron schedule",
		"@every 5m":                  "@every is not supported",
		"TZ=Europe/Amsterdam @daily": "time zone prefixes",
		"@fortnightly":               "not a valid cron schedule",
	}
	for expr, want := range invalid {
		if _, err := ParseCron(expr); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCron(%q) error = %v, want it to contain %q", expr, err, want)
		}
	}
}

func TestLongestGap(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"0 */12 * * *": 12 * time.Hour,
		"@daily":       24 * time.Hour,
		"0 2 * * 1-5":  72 * time.Hour, // Friday 02:00 to Monday 02:00
		"@weekly":      7 * 24 * time.Hour,
		"@monthly":     31 * 24 * time.Hour,
	}
	for expr, want := range tests {
		s, err := ParseCron(expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := LongestGap(s, from); got != want {
			t.Errorf("LongestGap(%q) = %v, want %v", expr, got, want)
		}
	}
}
