package bench

import (
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/internal/uptime"
)

// TestSlotSince checks how the restart's writes are told apart: a steady-down tenant's status
// write counts as its figures' refresh only when the tenant's slot came after the restart.
func TestSlotSince(t *testing.T) {
	restart := time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC)
	const tenant = "tenant-8037"
	slot := uptime.NextSlot(tenant, uptime.DefaultRefreshInterval, restart)
	cases := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"just after the slot", slot.Add(2 * time.Second), true},
		{"a minute after the slot", slot.Add(time.Minute), true},
		{"at the slot", slot, true},
		{"before the slot", slot.Add(-time.Second), false},
		{"right after the restart, the slot not yet come", restart.Add(time.Second), slot.Equal(restart.Add(time.Second))},
	}
	for _, c := range cases {
		q := operatorRequest{at: c.at, verb: "patch", resource: "tenants/status", tenant: tenant}
		if got := slotSince(q, restart); got != c.want {
			t.Errorf("%s (%s, slot %s): slotSince = %v, want %v", c.name, c.at.Format(time.TimeOnly), slot.Format(time.TimeOnly), got, c.want)
		}
	}
}
