package uptime

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	tenancyv1alpha1 "github.com/tenantops/tenant-operator/api/v1alpha1"
)

// ObjectiveWindow is the window the objective and its error budget are measured over.
const ObjectiveWindow = Retention

// DefaultObjective is spec.monitoring.objective's default, used when the field is empty.
const DefaultObjective = "99.5"

// Objective is an availability target, measured over business hours only when Hours is set.
type Objective struct {
	// target is in thousandths of a percent (99.5 % is 99500), the API's precision, so that
	// comparing it with counted probes is exact integer arithmetic.
	target int64
	// Hours limits the measurement; nil means around the clock.
	Hours *BusinessHours
}

const fullTarget = 100_000 // 100 % in thousandths of a percent

// ObjectiveFor reads a tenant's objective and business hours. A nil spec or an empty objective
// means the API's default of 99.5 % around the clock.
func ObjectiveFor(spec *tenancyv1alpha1.MonitoringSpec) (Objective, error) {
	percent := DefaultObjective
	var hours *tenancyv1alpha1.BusinessHours
	if spec != nil {
		if spec.Objective != "" {
			percent = spec.Objective
		}
		hours = spec.BusinessHours
	}
	o, err := ParseObjective(percent)
	if err != nil {
		return Objective{}, fmt.Errorf("spec.monitoring.objective: %w", err)
	}
	if hours != nil {
		if o.Hours, err = ParseBusinessHours(*hours); err != nil {
			return Objective{}, fmt.Errorf("spec.monitoring.businessHours: %w", err)
		}
	}
	return o, nil
}

// ParseObjective reads a percentage such as "99.5" or "99.95" (at most three decimals, above 0,
// at most 100), around the clock.
func ParseObjective(percent string) (Objective, error) {
	whole, frac, _ := strings.Cut(percent, ".")
	if whole == "" || len(whole) > 3 || len(frac) > 3 || !digits(whole) || !digits(frac) {
		return Objective{}, fmt.Errorf("%q is not a percentage such as 99.5", percent)
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	f, _ := strconv.ParseInt((frac + "000")[:3], 10, 64)
	target := w*1000 + f
	if target <= 0 || target > fullTarget {
		return Objective{}, fmt.Errorf("%q is not above 0 and at most 100", percent)
	}
	return Objective{target: target}, nil
}

// Ratio is the target as a fraction, 0.995 for 99.5 %, for metrics.
func (o Objective) Ratio() float64 { return float64(o.target) / fullTarget }

// Percent is the target as the API writes it, e.g. "99.5".
func (o Objective) Percent() string { return formatThousandths(o.target) }

// Evaluation is the objective measured at one moment.
type Evaluation struct {
	// Counts are the probes in the ObjectiveWindow, within business hours when the objective has
	// them.
	Counts
	// Met is true when the share of successful probes reaches the target. Without probes it is
	// false; check Total.
	Met bool
	// BudgetRemaining is the share of the error budget left: the failures the target allows
	// over the probes counted, minus those that happened, over those allowed. 1 is untouched,
	// 0 spent, negative overspent. An objective of 100 % allows no failure, so its budget is 1
	// until the first and 0 after it. Without probes it is 1.
	BudgetRemaining float64
}

// Evaluate measures the objective over the ObjectiveWindow ending at now.
func (o Objective) Evaluate(h *History, now time.Time) Evaluation {
	var e Evaluation
	first, last := h.span(ObjectiveWindow, now)
	if o.Hours == nil {
		e.Counts = h.sum(first, last)
	} else {
		r := h.reader()
		o.Hours.eachBucket(first, last, func(n int64) { e.add(r.at(n)) })
	}
	up, total := int64(e.Up), int64(e.Total)
	e.Met = total > 0 && up*fullTarget >= o.target*total
	failed := total - up
	allowed := total * (fullTarget - o.target) // in thousandths of a percent of a probe
	switch {
	case failed == 0:
		e.BudgetRemaining = 1
	case allowed == 0:
		e.BudgetRemaining = 0
	default:
		e.BudgetRemaining = 1 - float64(failed*fullTarget)/float64(allowed)
	}
	return e
}

// BusinessHours are the local times of the week during which an objective is measured.
type BusinessHours struct {
	loc  *time.Location
	days [7]bool // by time.Weekday
	// start and end are minutes after local midnight; end may be 24*60.
	start, end int64
}

// defaultDays is the API's default for businessHours.days.
var defaultDays = []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}

// ParseBusinessHours reads the API's business hours: an IANA time zone, days of the week (Monday
// to Friday when empty), and a start before an end, both HH:MM (end may be 24:00).
func ParseBusinessHours(spec tenancyv1alpha1.BusinessHours) (*BusinessHours, error) {
	loc, err := time.LoadLocation(spec.TimeZone)
	if err != nil || spec.TimeZone == "" || spec.TimeZone == "Local" {
		return nil, fmt.Errorf("timeZone %q is not an IANA time zone such as Europe/Amsterdam", spec.TimeZone)
	}
	bh := &BusinessHours{loc: loc}
	days := spec.Days
	if len(days) == 0 {
		days = defaultDays
	}
	for _, d := range days {
		wd, ok := weekdays[d]
		if !ok {
			return nil, fmt.Errorf("days: %q is not a day of the week such as Monday", d)
		}
		bh.days[wd] = true
	}
	if bh.start, err = parseClock(spec.Start, false); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	if bh.end, err = parseClock(spec.End, true); err != nil {
		return nil, fmt.Errorf("end: %w", err)
	}
	if bh.start >= bh.end {
		return nil, fmt.Errorf("start %s is not before end %s", spec.Start, spec.End)
	}
	return bh, nil
}

var weekdays = map[string]time.Weekday{
	"Sunday": time.Sunday, "Monday": time.Monday, "Tuesday": time.Tuesday, "Wednesday": time.Wednesday,
	"Thursday": time.Thursday, "Friday": time.Friday, "Saturday": time.Saturday,
}

// Contains reports whether the instant t falls in business hours: whether the wall clock in the
// time zone then shows one of the days, at or after start and before end. On the day summer time
// starts, the skipped hour contains no instant; on the day it ends, the repeated hour contains
// two hours of instants, both counted once each.
func (bh *BusinessHours) Contains(t time.Time) bool {
	_, offset := t.In(bh.loc).Zone()
	return bh.containsLocal(t.Unix() + int64(offset))
}

// containsLocal answers Contains for the local wall-clock time written as seconds since
// 1970-01-01 00:00 local.
func (bh *BusinessHours) containsLocal(local int64) bool {
	const day = 24 * 60 * 60
	days := floorDiv(local, day)
	weekday := (days + int64(time.Thursday)) % 7 // 1970-01-01 was a Thursday
	if weekday < 0 {
		weekday += 7
	}
	minute := (local - days*day) / 60
	return bh.days[weekday] && minute >= bh.start && minute < bh.end
}

// eachBucket calls f with the number of every bucket in [first, last] whose start lies in
// business hours. It converts to local time arithmetically and asks the time zone database only
// where the offset changes, because the objective of every tenant is evaluated about once a minute
// and a month is 8640 buckets.
func (bh *BusinessHours) eachBucket(first, last int64, f func(n int64)) {
	for n := first; n <= last; {
		at := time.Unix(n*bucketSeconds, 0).In(bh.loc)
		_, offset := at.Zone()
		_, zoneEnd := at.ZoneBounds()
		// The offset holds until zoneEnd; the zero time means it holds for ever (fixed zones).
		until := last
		if !zoneEnd.IsZero() {
			until = min(last, ceilDiv(zoneEnd.Unix(), bucketSeconds)-1)
		}
		for ; n <= until; n++ {
			if bh.containsLocal(n*bucketSeconds + int64(offset)) {
				f(n)
			}
		}
	}
}

func parseClock(s string, allow24 bool) (int64, error) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) != 2 || len(mm) != 2 || !digits(hh) || !digits(mm) {
		return 0, fmt.Errorf("%q is not a time such as 09:00", s)
	}
	h, _ := strconv.ParseInt(hh, 10, 64)
	m, _ := strconv.ParseInt(mm, 10, 64)
	if allow24 && h == 24 && m == 0 {
		return 24 * 60, nil
	}
	if h > 23 || m > 59 {
		return 0, fmt.Errorf("%q is not a time such as 09:00", s)
	}
	return h*60 + m, nil
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }
