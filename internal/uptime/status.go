package uptime

import (
	"fmt"
	"math"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/tenantops/tenant-operator/api/v1alpha1"
)

// Summary is what a tenant's status shows of its uptime at one moment.
type Summary struct {
	Day, Week, Month Counts
	Objective        Objective
	Evaluation       Evaluation
}

// Summarize measures the History at now for the tenant's status.
func Summarize(h *History, o Objective, now time.Time) Summary {
	return Summary{
		Day:        h.Counts(24*time.Hour, now),
		Week:       h.Counts(7*24*time.Hour, now),
		Month:      h.Counts(30*24*time.Hour, now),
		Objective:  o,
		Evaluation: o.Evaluate(h, now),
	}
}

// ObjectiveCondition is the UptimeObjectiveMet condition for the summary. The caller sets
// ObservedGeneration and lets meta.SetStatusCondition keep LastTransitionTime. Its message holds
// the figures status shows, at their precision, and no probe counts (those are in metrics), so it
// changes only when they do.
func (s Summary) ObjectiveCondition() metav1.Condition {
	c := metav1.Condition{Type: tenancyv1alpha1.ConditionUptimeObjectiveMet}
	scope := "over 30 days"
	if s.Objective.Hours != nil {
		scope = "over the business hours of 30 days"
	}
	e := s.Evaluation
	switch {
	case e.Total == 0:
		c.Status = metav1.ConditionUnknown
		c.Reason = tenancyv1alpha1.ReasonProgressing
		c.Message = fmt.Sprintf("No probes yet %s; the objective is %s %%", scope, s.Objective.Percent())
	case e.Met:
		c.Status = metav1.ConditionTrue
		c.Reason = tenancyv1alpha1.ReasonObjectiveMet
		c.Message = fmt.Sprintf("Availability %s %% %s meets the objective of %s %%; %s %% of the error budget is left",
			FormatRatio(e.Counts), scope, s.Objective.Percent(), FormatBudget(e.BudgetRemaining))
	default:
		c.Status = metav1.ConditionFalse
		c.Reason = tenancyv1alpha1.ReasonObjectiveMissed
		c.Message = fmt.Sprintf("Availability %s %% %s is below the objective of %s %%; the error budget is spent (%s %% left)",
			FormatRatio(e.Counts), scope, s.Objective.Percent(), FormatBudget(e.BudgetRemaining))
	}
	return c
}

// AvailableCondition is the Available condition the report says, for a tenant probed at url. The
// caller sets ObservedGeneration. It names times, not ages, and only the probe that found the
// tenant down, so it changes when the tenant goes down or comes back, not with every probe.
func (r Report) AvailableCondition(url string) metav1.Condition {
	c := metav1.Condition{Type: tenancyv1alpha1.ConditionAvailable}
	switch r.State {
	case Up:
		c.Status, c.Reason = metav1.ConditionTrue, tenancyv1alpha1.ReasonProbeSucceeded
		c.Message = fmt.Sprintf("%s answers", url)
		if r.LastOutage > 0 {
			c.Message += fmt.Sprintf(" again since %s, after %s down", stamp(r.Since), r.LastOutage.Round(time.Second))
		}
	case Down:
		c.Status, c.Reason = metav1.ConditionFalse, tenancyv1alpha1.ReasonDown
		c.Message = fmt.Sprintf("%s has not answered since %s", url, stamp(r.Since))
		if r.Reason != "" {
			c.Message += ": " + r.Reason
			if r.Message != "" {
				c.Message += ": " + r.Message
			}
		}
	default:
		c.Status, c.Reason = metav1.ConditionUnknown, tenancyv1alpha1.ReasonProgressing
		c.Message = fmt.Sprintf("Waiting for the first probes of %s", url)
	}
	return c
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// FormatRatio writes the share of successful probes in percent, rounded down to three decimals
// (so 99.9996 % shows as 99.999, not as a perfect 100) and without trailing zeros, e.g. "99.95".
// It is empty when there were no probes.
func FormatRatio(c Counts) string {
	if c.Total == 0 {
		return ""
	}
	return formatThousandths(int64(c.Up) * fullTarget / int64(c.Total))
}

// FormatBudget writes a budget share in percent with one decimal, rounded toward zero, e.g. "87.3"
// or "-12.5" when overspent.
func FormatBudget(remaining float64) string {
	tenths := math.Trunc(remaining * 1000)
	if tenths == 0 {
		tenths = 0 // no "-0.0"
	}
	return strconv.FormatFloat(tenths/10, 'f', 1, 64)
}

// formatThousandths writes a percentage held in thousandths, e.g. 99500 as "99.5".
func formatThousandths(v int64) string {
	s := strconv.FormatInt(v/1000, 10)
	if frac := v % 1000; frac != 0 {
		f := fmt.Sprintf("%03d", frac)
		for f[len(f)-1] == '0' {
			f = f[:len(f)-1]
		}
		s += "." + f
	}
	return s
}
