package backupcheck

import (
	"fmt"
	"slices"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
)

// The manager's clock hours away from the storage's. Retention's rules of counts and periods
// judge the backups by their own times (the agent's clock, when the snapshot was taken) and do not
// read a clock; maxAge counts back from now, and the leftovers' age is the storage's time of
// writing against now. So a look prunes by the earlier of the manager's clock and the storage's
// (the Date of its answers): a manager 3 hours ahead does not prune a backup 3 hours early, and
// one 3 hours behind prunes up to 3 hours late, which loses nothing.
func TestManagerClockSkewDoesNotPruneEarly(t *testing.T) {
	f := startFaultyS3(t)
	maxAge := v1alpha1.RetentionPolicySpec{MaxAge: "2d"}
	var sum summary
	defer sum.print(t, "clock skew")
	for n, skew := range []time.Duration{3 * time.Hour, -3 * time.Hour} {
		t.Run(fmt.Sprintf("manager %+v", skew), func(t *testing.T) {
			tenant := fmt.Sprintf("skew%d", n)
			// The manager's clock is this process's; the storage's, as the proxy shows it, is
			// skew behind it. The agent's clock agrees with the storage's.
			managerNow := time.Now().Truncate(time.Second)
			storageNow := managerNow.Add(-skew)
			f.proxy.SkewDate(-skew)
			defer f.proxy.SkewDate(0)
			// b00 is past maxAge by 5 days, b01 by an hour, b02 an hour short of it, b03 new.
			times := []time.Time{storageNow.Add(-5 * 24 * time.Hour), storageNow.Add(-49 * time.Hour), storageNow.Add(-47 * time.Hour), storageNow.Add(-time.Hour)}
			ids := f.seed(t, tenant, times, nil)
			prune, keep := f.fullDecision(t, tenant, maxAge, storageNow)
			if !slices.Equal(idsOf(prune), []string{"b00", "b01"}) {
				t.Fatalf("retention at the storage's time prunes %v, want b00 and b01", idsOf(prune))
			}
			byManager, _ := f.fullDecision(t, tenant, maxAge, managerNow)
			t.Logf("Injected: the manager's clock %v from the storage's; by the manager's clock alone maxAge 2d prunes %v, by the storage's %v",
				skew, idsOf(byManager), idsOf(prune))

			clk := clocktesting.NewFakeClock(managerNow)
			in := f.inspector(t, clk, time.Minute, 20*time.Second)
			req := f.request(tenant, maxAge)
			// The first look opens the store and learns the storage's clock from its answers.
			if l := in.lookOnce(t, clk, req); l.Err != nil || l.PruneErr != nil {
				t.Fatalf("look: %v, %v", l.Err, l.PruneErr)
			}
			stored := f.stored(t, tenant)
			for id := range keep {
				if !slices.Contains(stored, id) {
					t.Errorf("%s was pruned, but maxAge 2d keeps it by the storage's time (stored: %v)", id, stored)
				}
			}
			if skew > 0 {
				if !slices.Equal(stored, without(ids, prune)) {
					t.Errorf("stored: %v, want %v: the storage's time decides", stored, without(ids, prune))
				}
				sum.add("manager %+v: pruned %v (maxAge 2d by the storage's clock); by the manager's alone it would have pruned %v", skew, without(ids, setOf(stored)), idsOf(byManager))
				return
			}
			// Behind: b01 goes once the manager's clock passes its cutoff, up to the skew late.
			if !slices.Contains(stored, "b01") {
				t.Fatalf("b01 pruned by a manager whose clock is behind: %v", stored)
			}
			const step = 30 * time.Minute
			moved := time.Duration(0)
			for slices.Contains(f.stored(t, tenant), "b01") {
				if moved > -skew {
					t.Fatalf("b01 still stored after the manager's clock moved %v", moved)
				}
				clk.Step(step - time.Minute) // lookOnce steps the interval
				moved += step
				if l := in.lookOnce(t, clk, req); l.Err != nil || l.PruneErr != nil {
					t.Fatalf("look: %v, %v", l.Err, l.PruneErr)
				}
			}
			if st := f.stored(t, tenant); !slices.Equal(st, without(ids, prune)) {
				t.Errorf("stored: %v, want %v", st, without(ids, prune))
			}
			// b01 was an hour past maxAge by the storage's clock at the first look: by the
			// manager's it is due once its clock moves the skew less that hour.
			if moved != -skew-time.Hour {
				t.Errorf("b01 pruned after the manager's clock moved %v, want %v", moved, -skew-time.Hour)
			}
			sum.add("manager %+v: nothing retention keeps pruned; b01, an hour past maxAge by the storage's clock, pruned once the manager's clock moved %v: %v late, the skew", skew, moved, moved+time.Hour)
		})
	}
}

// What the agent's clock does, which the manager cannot correct: a backup's times are the agent's
// (when the snapshot was taken; restores and point-in-time recovery go by them), so an agent 3
// hours behind makes its backups look 3 hours older, and maxAge prunes them up to 3 hours early
// by the storage's time; keep rules of counts and periods move their day boundaries by as much.
// The storage's time of writing (Last-Modified) is no substitute: it is not the snapshot's time and
// changes when a bucket is copied or replicated. The agent's pods take the node's clock, which
// must be synchronised. Freshness judges the newest backup's finish (the agent's clock) against
// the manager's clock: either running ahead or behind moves BackupsFresh's Stale by the skew, an
// alarm early or late, never a deletion.
func TestAgentClockSkewShiftsMaxAgeByTheSkew(t *testing.T) {
	f := startFaultyS3(t)
	const tenant = "agentskew"
	now := time.Now().Truncate(time.Second)
	skew := -3 * time.Hour
	// Taken 47 hours ago by the storage's clock, written by an agent whose clock said 50.
	catalogtest.Write(t, f.direct, catalogtest.Backup{Tenant: tenant, TenantUID: "uid-" + tenant, Schedule: "hot", ID: "b00", StartedAt: now.Add(-47*time.Hour + skew)})
	catalogtest.Write(t, f.direct, catalogtest.Backup{Tenant: tenant, TenantUID: "uid-" + tenant, Schedule: "hot", ID: "b01", StartedAt: now.Add(-time.Hour + skew)})
	clk := clocktesting.NewFakeClock(now)
	in := f.inspector(t, clk, time.Minute, 20*time.Second)
	if l := in.lookOnce(t, clk, f.request(tenant, v1alpha1.RetentionPolicySpec{MaxAge: "2d"})); l.Err != nil {
		t.Fatal(l.Err)
	}
	st := f.stored(t, tenant)
	if !slices.Equal(st, []string{"b01"}) {
		t.Fatalf("stored %v; this test documents that b00, 47h old by the storage's clock and 50h by the agent's, goes under maxAge 2d", st)
	}
	// Freshness: the newest backup finished an hour ago (plus its minute) by the storage's clock;
	// by the agent's it is 3 hours older, so Stale comes 3 hours early.
	e, err := Expect(f.policy, f.policy.Spec.Schedules[0])
	if err != nil {
		t.Fatal(err)
	}
	e.Since = now.Add(-30 * 24 * time.Hour)
	l := in.Observe(f.request(tenant, v1alpha1.RetentionPolicySpec{MaxAge: "2d"}))
	v := Judge(Input{Policy: f.policy, Schedules: []Expected{e}, Inspection: l, Now: now})
	trueStaleAt := now.Add(-time.Hour + time.Minute).Add(e.AllowedAge())
	if early := trueStaleAt.Sub(v.StaleAt); early != -skew {
		t.Errorf("BackupsFresh turns Stale %v before the storage's time says, want %v", early, -skew)
	}
	t.Logf("SUMMARY agent clock %v: maxAge 2d pruned b00, 47h old by the storage's clock and 50h by the agent's; BackupsFresh turns Stale %v early. Not corrected: see the test's doc", skew, -skew)
}
