package faults

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
)

// The manager SIGKILLed while it prunes: tenants' storage holds backups that retention prunes,
// more arrive between kills, and each kill comes either 0 to 150 ms after the pruning of a batch
// was seen to begin or at a random moment, and at least one must land with deletions under way.
// At every kill and afterwards: no backup retention keeps is pruned; once the manager runs
// again, pruning completes; no half-deleted
// backup counts; every backup pruned is in exactly one prune record, and records name only
// backups that retention prunes and that are gone (a pruning killed before its record is recorded
// by the next manager, from the intent it wrote first). The backups are manifest-complete and
// signed with the policy's key, written as the agent writes them (kwok runs no agent); retention
// does not read their data.
func TestPruningManagerKilled(t *testing.T) {
	rng := requireCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const policyName = "prune-killed"
	n := 4
	kills := envInt(t, "FAULTS_PRUNE_KILLS", 8)
	b := startBackupStorage(ctx, t, policyName)
	args := []string{"--backup-check-interval", "5s"}
	k := &killer{t: t, rng: rng, name: "operator-pruning", op: startOperator(t, "operator-pruning-first", args...), args: args}
	t.Cleanup(func() { _ = k.op.Stop() })
	rules := v1alpha1.RetentionPolicySpec{KeepLast: new(int32(3)), KeepDaily: new(int32(3))}
	key := b.policies(ctx, t, policyName, "0 */12 * * *", rules)

	var names []string
	uids := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("prune-%d", i)
		names = append(names, name)
		if err := create(ctx, backupTenant(name, policyName, v1alpha1.DeletionPolicyDelete)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		uids[name] = tenantUID(ctx, t, name)
	}
	// No backup yet: the first is pending, and the tenants are Ready.
	converge(ctx, t, expectation{live: names}, 3*time.Minute)
	pw := newPasswordWatch()
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := pw.every(watchCtx, 2*time.Second, func() []string { return names })

	// Every tenant: backups every 3 hours, the newest 30 minutes old; each batch older than the
	// last, so what retention keeps (the 3 newest, the newest of each of the 3 newest days) is
	// the same whatever batches come.
	start := time.Now().UTC().Truncate(time.Second).Add(-30 * time.Minute)
	times := map[string]map[string]time.Time{}
	next := 0
	seed := func(count int) {
		for _, name := range names {
			if times[name] == nil {
				times[name] = map[string]time.Time{}
			}
			for i := range count {
				at := start.Add(-time.Duration(next+i) * 3 * time.Hour)
				id := catalog.NewID(at)
				b.storeBackup(ctx, t, key, name, uids[name], id, at)
				times[name][id] = at
			}
		}
		next += count
	}
	seed(30)
	keep, _, err := retentionKeeps(rules, times[names[0]])
	if err != nil {
		t.Fatal(err)
	}
	newest := map[string]string{}
	for _, name := range names {
		for id, at := range times[name] {
			if at.Equal(start) {
				newest[name] = id
			}
		}
	}
	t.Logf("retention keeps %d of each tenant's backups", len(keep))

	// prunable counts what each tenant stores that retention prunes, and checks that nothing it
	// keeps is gone.
	prunable := func(when string) (map[string]int, int) {
		t.Helper()
		out := map[string]int{}
		halfDeleted := 0
		for _, name := range names {
			dirs, err := b.stored(ctx, name)
			if err != nil {
				t.Fatalf("%s: list %s's backups: %v", when, name, err)
			}
			kept, _, err := retentionKeeps(rules, times[name])
			if err != nil {
				t.Fatal(err)
			}
			for id, objs := range dirs {
				switch {
				case !slices.Contains(objs, catalog.ManifestObject):
					halfDeleted++
				case !kept[id]:
					out[name]++
				}
			}
			for id := range kept {
				objs := dirs[id]
				if !slices.Contains(objs, catalog.ManifestObject) || !slices.Contains(objs, catalog.DataObject) || !slices.Contains(objs, catalog.SignatureObject) {
					t.Errorf("%s: backup %s of %s, which retention keeps, is not whole: %v", when, id, name, objs)
				}
			}
		}
		return out, halfDeleted
	}

	began := time.Now()
	midPruning, seenDeleting := 0, 0
	for i := range kills {
		if i > 0 {
			seed(12)
		}
		seeded, halfBefore := prunable("after seeding")
		mode := "a random moment"
		if rng.IntN(3) > 0 {
			// A random moment once the pruning of this batch was seen to begin.
			mode = "pruning"
			for deadline := time.Now().Add(15 * time.Second); ; {
				now, _ := prunable("waiting for pruning")
				if !maps.Equal(now, seeded) {
					seenDeleting++
					break
				}
				if time.Now().After(deadline) {
					mode = "no pruning seen in 15s"
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		} else {
			time.Sleep(time.Duration(200+rng.IntN(2800)) * time.Millisecond)
		}
		k.op.Kill()
		left, halfDeleted := prunable(fmt.Sprintf("at kill %d", i+1))
		started := 0
		for _, name := range names {
			if left[name] < seeded[name] && left[name] > 0 {
				started++
			}
		}
		// Under way: a tenant's batch part-deleted, or a backup half-deleted by this kill (those
		// of earlier kills stay until they are a day old).
		if started > 0 || halfDeleted > halfBefore {
			midPruning++
		}
		t.Logf("kill %d at %s: %d tenants part-pruned, %d half-deleted backups, %v left to prune", i+1, mode, started, halfDeleted, left)
		k.killNow("pruning")
	}
	stopWatch()
	if err := <-watched; err != nil {
		t.Error(err)
	}
	if midPruning == 0 {
		t.Errorf("none of %d kills landed with deletions under way: the case showed nothing of a kill mid-pruning", kills)
	}

	// Pruning completes: each tenant stores exactly what retention keeps and says so.
	complete := func(tenant *v1alpha1.Tenant) (bool, string) {
		if ok, why := backupsSay(v1alpha1.ReasonFresh, newest[tenant.Name], len(keep))(tenant); !ok {
			return false, why
		}
		stored, err := b.backups(ctx, tenant.Name)
		if err != nil {
			return false, err.Error()
		}
		kept, _, err := retentionKeeps(rules, times[tenant.Name])
		if err != nil {
			return false, err.Error()
		}
		if !maps.Equal(stored, kept) {
			return false, fmt.Sprintf("stores %d backups, retention keeps %d", len(stored), len(kept))
		}
		return true, ""
	}
	recovery := converge(ctx, t, expectation{live: names, passwords: pw, ready: complete}, 3*time.Minute)
	left, halfDeleted := prunable("after recovery")
	if len(left) > 0 {
		t.Errorf("after recovery, still to prune: %v", left)
	}

	// The prune records: only backups retention prunes and that are gone, none twice.
	recorded, due, interrupted := 0, 0, 0
	for _, name := range names {
		records, _, err := catalog.ReadPruneRecords(ctx, b.store, name, uids[name], 0)
		if err != nil {
			t.Fatalf("prune records of %s: %v", name, err)
		}
		_, pruned, err := retentionKeeps(rules, times[name])
		if err != nil {
			t.Fatal(err)
		}
		stored, err := b.backups(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]string{}
		for _, r := range records {
			if r.RetentionPolicy != policyName || r.Schedule != backupSchedule || r.TenantUID != uids[name] || len(r.Pruned) > r.Due {
				t.Errorf("prune record %s: policy %s, schedule %s, tenant UID %s, %d pruned of %d due", r.Key, r.RetentionPolicy, r.Schedule, r.TenantUID, len(r.Pruned), r.Due)
			}
			for _, p := range r.Pruned {
				switch {
				case seen[p.ID] != "":
					t.Errorf("backup %s of %s is in two prune records: %s and %s", p.ID, name, seen[p.ID], r.Key)
				case !pruned[p.ID]:
					t.Errorf("prune record %s names backup %s of %s, which retention keeps", r.Key, p.ID, name)
				case stored[p.ID]:
					t.Errorf("prune record %s names backup %s of %s, which is still stored", r.Key, p.ID, name)
				case len(p.Why) == 0:
					t.Errorf("prune record %s gives no reason for backup %s", r.Key, p.ID)
				}
				seen[p.ID] = r.Key
			}
		}
		recorded += len(seen)
		due += len(pruned)
		if missing := len(pruned) - len(seen); missing > 0 {
			var ids []string
			for id := range pruned {
				if seen[id] == "" {
					ids = append(ids, id)
				}
			}
			slices.Sort(ids)
			t.Errorf("tenant %s: %d pruned backups in no prune record: %s", name, missing, strings.Join(ids, ", "))
		}
		for _, r := range records {
			if r.Interrupted {
				interrupted++
			}
		}
	}
	record("manager SIGKILLed %d times while it pruned %d tenants' backups (%d pruned, %d kept; %d kills with a pruning under way, %d a moment after a deletion was seen): nothing retention keeps lost; pruning complete %s after the last restart (%s in all); %d half-deleted backups left uncounted; %d of %d pruned backups in prune records, each once (%d records completed after a kill)",
		kills, n, due, len(keep)*n, midPruning, seenDeleting, recovery.Round(100*time.Millisecond), time.Since(began).Round(time.Second),
		halfDeleted, recorded, due, interrupted)
	cleanup(ctx, t, names)
}
