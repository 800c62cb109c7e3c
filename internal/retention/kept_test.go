package retention

import (
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

func TestKeptUntil(t *testing.T) {
	deleted := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	n := func(v int32) *int32 { return &v }
	cases := []struct {
		name   string
		policy v1alpha1.RetentionPolicySpec
		want   time.Time
		ok     bool
	}{
		{"the customer pages' 5 days, 2 months, 1 year", v1alpha1.RetentionPolicySpec{KeepDaily: n(5), KeepMonthly: n(2), KeepYearly: n(1)},
			time.Date(2027, 12, 2, 10, 0, 0, 0, time.UTC), true},
		{"weeks", v1alpha1.RetentionPolicySpec{KeepDaily: n(3), KeepWeekly: n(4)}, deleted.AddDate(0, 0, 28), true},
		{"maxAge longer than the counts", v1alpha1.RetentionPolicySpec{KeepDaily: n(7), MaxAge: "3mo"}, deleted.AddDate(0, 3, 0), true},
		{"maxAge in hours", v1alpha1.RetentionPolicySpec{MaxAge: "36h"}, deleted.Add(36 * time.Hour), true},
		{"keepLast alone names no period", v1alpha1.RetentionPolicySpec{KeepLast: n(10)}, deleted, false},
		{"zero counts name no period", v1alpha1.RetentionPolicySpec{KeepLast: n(3), KeepDaily: n(0)}, deleted, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := KeptUntil(tc.policy, deleted)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tc.want) || ok != tc.ok {
				t.Errorf("KeptUntil = %s, %v; want %s, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, _, err := KeptUntil(v1alpha1.RetentionPolicySpec{}, deleted); err == nil {
		t.Error("a policy with no rule gave no error")
	}
}
