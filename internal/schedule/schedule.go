// Package schedule parses the time expressions of the API: cron schedules (as CronJobs read them)
// and calendar periods such as "5d", "2mo" or "1y".
package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// ParseCron parses a schedule the way the Kubernetes CronJob controller does (robfig/cron's
// standard parser: five fields or a descriptor such as @daily), so that whatever we accept a
// CronJob accepts too. Time zone prefixes are refused: the CronJob's timeZone field is the place.
func ParseCron(expr string) (cron.Schedule, error) {
	trimmed := strings.TrimSpace(expr)
	if strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ=") {
		return nil, fmt.Errorf("time zone prefixes are not supported in %q", expr)
	}
	if strings.HasPrefix(trimmed, "@every") {
		// CronJobs do not support @every; they would be refused when we create them.
		return nil, fmt.Errorf("@every is not supported by CronJobs; use five cron fields or @hourly, @daily, @weekly, @monthly, @yearly")
	}
	s, err := cron.ParseStandard(trimmed)
	if err != nil {
		return nil, fmt.Errorf("%q is not a valid cron schedule: %w", expr, err)
	}
	return s, nil
}

// LongestGap returns the longest time between two consecutive runs of the schedule in the year
// after from. Freshness checks compare a backup's age against it: for "0 2 * * 1-5" it is the
// weekend gap of three days, not one day.
func LongestGap(s cron.Schedule, from time.Time) time.Duration {
	const maxRuns = 2000 // enough for an hourly schedule over 83 days; a cap keeps it cheap
	end := from.AddDate(1, 0, 0)
	prev := s.Next(from)
	var longest time.Duration
	for i := 0; i < maxRuns && !prev.IsZero() && prev.Before(end); i++ {
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		if gap := next.Sub(prev); gap > longest {
			longest = gap
		}
		prev = next
	}
	return longest
}

// Period is a calendar period: years, months and days count on the calendar (a month back from
// 31 March is 3 March or 29 February's neighbour, as time.AddDate says), the rest is exact.
type Period struct {
	Years, Months, Days int
	Exact               time.Duration
}

// Before returns the instant one period before t.
func (p Period) Before(t time.Time) time.Time {
	return t.AddDate(-p.Years, -p.Months, -p.Days).Add(-p.Exact)
}

// Approximate returns the period's length with months of 30 days and years of 365 days, for
// comparisons where a day either way does not matter.
func (p Period) Approximate() time.Duration {
	const day = 24 * time.Hour
	return time.Duration(p.Years)*365*day + time.Duration(p.Months)*30*day + time.Duration(p.Days)*day + p.Exact
}

// String formats the period the way ParsePeriod reads it.
func (p Period) String() string {
	var b strings.Builder
	for _, part := range []struct {
		n    int
		unit string
	}{{p.Years, "y"}, {p.Months, "mo"}, {p.Days, "d"}} {
		if part.n != 0 {
			fmt.Fprintf(&b, "%d%s", part.n, part.unit)
		}
	}
	if p.Exact != 0 {
		b.WriteString(p.Exact.String())
	}
	return b.String()
}

// ParsePeriod reads periods such as "5d", "2mo", "1y", "36h", "1w" or "1y6mo": whole numbers, each
// followed by a unit y, mo, w, d, h, m or s. The result must be longer than zero.
func ParsePeriod(s string) (Period, error) {
	var p Period
	rest := s
	if rest == "" {
		return p, fmt.Errorf("empty period; use e.g. 5d, 2mo or 1y")
	}
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return Period{}, fmt.Errorf("%q is not a period: expected a number at %q; use e.g. 5d, 2mo or 1y", s, rest)
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n > 100000 {
			return Period{}, fmt.Errorf("%q is not a period: %q is too large", s, rest[:i])
		}
		rest = rest[i:]
		unit := ""
		switch {
		case strings.HasPrefix(rest, "mo"):
			unit = "mo"
		case rest != "" && strings.ContainsRune("ywdhms", rune(rest[0])):
			unit = rest[:1]
		default:
			return Period{}, fmt.Errorf("%q is not a period: unknown unit at %q; units are y, mo, w, d, h, m, s", s, rest)
		}
		rest = rest[len(unit):]
		switch unit {
		case "y":
			p.Years += n
		case "mo":
			p.Months += n
		case "w":
			p.Days += 7 * n
		case "d":
			p.Days += n
		case "h":
			p.Exact += time.Duration(n) * time.Hour
		case "m":
			p.Exact += time.Duration(n) * time.Minute
		case "s":
			p.Exact += time.Duration(n) * time.Second
		}
	}
	if p.Approximate() <= 0 {
		return Period{}, fmt.Errorf("%q is not a period: it must be longer than zero", s)
	}
	return p, nil
}
