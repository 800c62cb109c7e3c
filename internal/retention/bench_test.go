package retention_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/retention"
)

// BenchmarkDecide measures one decision with every rule, maxAge (so that Next is computed too) and
// a time zone, on two years of backups (400, as in the issue) and on hourly backups for over a
// year (10000).
func BenchmarkDecide(b *testing.B) {
	policy := v1alpha1.RetentionPolicySpec{
		KeepLast: ptr.To[int32](10), KeepDaily: ptr.To[int32](60), KeepWeekly: ptr.To[int32](12),
		KeepMonthly: ptr.To[int32](12), KeepYearly: ptr.To[int32](3), MaxAge: "5d", MinKeep: ptr.To[int32](2),
	}
	loc := amsterdam(b)
	for _, n := range []int{400, 10000} {
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
		step := 2 * 365 * 24 * time.Hour / 400
		if n > 400 {
			step = time.Hour
		}
		backups := make([]retention.Candidate, n)
		for i := range backups {
			t := start.Add(time.Duration(i)*step + time.Duration(rng.Int64N(int64(step/2))))
			backups[i] = retention.Candidate{ID: fmt.Sprintf("%06d", i), Time: t, Verified: rng.IntN(8) == 0}
		}
		now := backups[n-1].Time.Add(time.Hour)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := retention.Decide(policy, backups, now, loc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
