package rules_test

import (
	"fmt"
	"time"

	"github.com/tenantops/tenant-operator/test/rules"
)

// A gauge timeline as a test of the real probe loop measures it: the tenant stops answering at
// 0, and tenantops_tenant_up drops to 0 at the second failed probe, here at 40 s, the operator's
// worst case. Sweep evaluates TenantDown on it at every phase of 30 s scrapes and evaluations.
func ExampleSweep() {
	measured := rules.Gauge{
		{At: -time.Minute, Up: true},
		{At: 40 * time.Second, Up: false},
	}
	r, err := rules.Sweep(measured, rules.Schedule{}, 5*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("fired in %d of %d phases, %s to %s after the outage\n", r.Fired, r.Runs, r.Earliest, r.Latest)
	// Output: fired in 36 of 36 phases, 50s to 1m40s after the outage
}
