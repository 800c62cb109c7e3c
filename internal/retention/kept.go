package retention

import (
	"time"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// KeptUntil is when the backups of a Tenant deleted with Retain at deletedAt have outlived every
// promise the policy makes: the longest period it names (keepDaily days, keepWeekly weeks,
// keepMonthly months, keepYearly years, maxAge), counted from the deletion: no backup was made
// after it. After that nothing is owed to anyone and the backups are erased. ok is false
// when the policy names no period (keepLast alone): then nothing bounds the keeping, and only an
// explicit erase request ends it.
func KeptUntil(policy v1alpha1.RetentionPolicySpec, deletedAt time.Time) (until time.Time, ok bool, err error) {
	r, err := parsePolicy(policy)
	if err != nil {
		return time.Time{}, false, err
	}
	until = deletedAt
	later := func(t time.Time) {
		if t.After(until) {
			until, ok = t, true
		}
	}
	daily, weekly, monthly, yearly := r.periodic[0], r.periodic[1], r.periodic[2], r.periodic[3]
	later(deletedAt.AddDate(0, 0, daily))
	later(deletedAt.AddDate(0, 0, 7*weekly))
	later(deletedAt.AddDate(0, monthly, 0))
	later(deletedAt.AddDate(yearly, 0, 0))
	if r.maxAge != nil {
		p := *r.maxAge
		later(deletedAt.AddDate(p.Years, p.Months, p.Days).Add(p.Exact))
	}
	return until, ok, nil
}
