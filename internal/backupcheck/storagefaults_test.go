package backupcheck

// The manager's look at backup storage when the storage misbehaves: the local S3 (versitygw)
// behind test/faultproxy, which refuses connections, resets them, answers 500s and 503s, answers
// slower than the look's timeout, or lists only part of what it holds. Each case prints what it
// injected and how long the Inspector took to recover once the storage came back; the figures
// are in docs/reliability.md.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
	"github.com/tenantops/tenant-operator/internal/retention"
	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/faultproxy"
	"github.com/tenantops/tenant-operator/test/stack"
)

// faultPrefix is the storage prefix the tests' schedule writes under.
const faultPrefix = "backups"

// faultyS3 is the local S3 behind a fault proxy, with a BackupPolicy whose schedule "hot" reads
// it through the proxy.
type faultyS3 struct {
	s3    *stack.S3
	proxy *faultproxy.Proxy
	// direct talks to the server itself: what is really stored, and how tests seed it.
	direct storage.Store
	policy *v1alpha1.BackupPolicy
	// secrets holds the pruner's credential as the manager reads it.
	secrets *corev1.Secret
}

func startFaultyS3(t *testing.T) *faultyS3 {
	t.Helper()
	s3 := stack.StartS3(t)
	p := faultproxy.Start(t, s3.Endpoint)
	loc, err := storage.ParseLocation(s3.Location(faultPrefix))
	if err != nil {
		t.Fatal(err)
	}
	direct, err := storage.OpenS3(context.Background(), loc, storage.Credentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		t.Fatalf("open the local S3 directly: %v", err)
	}
	return &faultyS3{s3: s3, proxy: p, direct: direct,
		secrets: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: "ops"},
			Data: map[string][]byte{"AWS_ACCESS_KEY_ID": []byte(s3.AccessKey), "AWS_SECRET_ACCESS_KEY": []byte(s3.SecretKey)}},
		policy: &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "faulty", ResourceVersion: "1"}, Spec: v1alpha1.BackupPolicySpec{
			Schedules: []v1alpha1.BackupSchedule{{Name: "hot", Schedule: "0 */12 * * *", Storage: v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{
				Endpoint: p.Addr(), Bucket: s3.Bucket, Region: s3.Region, Prefix: faultPrefix, Insecure: true,
				CredentialsSecretRef: v1alpha1.SecretReference{Name: "s3"}}}}}}},
	}
}

// looker is an Inspector on the faulty S3 with a count of its finished looks.
type looker struct {
	*Inspector
	looks atomic.Int64

	mu sync.Mutex
	// logged is what the Inspector logged.
	logged []string
}

// log returns the lines logged that contain s.
func (l *looker) log(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.logged {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

func (f *faultyS3) inspector(t *testing.T, clk clock.Clock, interval, timeout time.Duration) *looker {
	t.Helper()
	l := &looker{}
	l.Inspector = New(Options{Secrets: fake.NewClientBuilder().WithObjects(f.secrets.DeepCopy()).Build(), OperatorNamespace: "ops",
		Clock: clk, Interval: interval, Timeout: timeout, Notify: func(string) { l.looks.Add(1) }})
	ctx, cancel := context.WithCancel(ctrl.LoggerInto(context.Background(), funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.logged = append(l.logged, prefix+" "+args)
	}, funcr.Options{})))
	done := make(chan struct{})
	go func() { _ = l.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// lookOnce asks for a look (the interval passed on clk) and waits until it is done.
func (l *looker) lookOnce(t *testing.T, clk *clocktesting.FakeClock, req Request) Listing {
	t.Helper()
	clk.Step(l.Interval())
	before := l.looks.Load()
	l.Observe(req)
	deadline := time.Now().Add(30 * time.Second)
	for l.looks.Load() == before {
		if time.Now().After(deadline) {
			t.Fatalf("no look at %s within 30s", req.Tenant)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return l.Observe(req)["hot"]
}

// seedFromEnv is FAULT_SEED, the base seed of a run to replay; 0 when unset.
func seedFromEnv(t *testing.T) uint64 {
	t.Helper()
	s := os.Getenv("FAULT_SEED")
	if s == "" {
		return 0
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("FAULT_SEED=%q: %v", s, err)
	}
	return v
}

// seed stores complete backups of tenant, taken at the given times, through the direct client;
// the ids are b00, b01, ... in the order of times. verified names the ids with a passed
// verification.
func (f *faultyS3) seed(t *testing.T, tenant string, times []time.Time, verified map[string]bool) []string {
	t.Helper()
	var ids []string
	for i, at := range times {
		id := fmt.Sprintf("b%02d", i)
		catalogtest.Write(t, f.direct, catalogtest.Backup{Tenant: tenant, TenantUID: "uid-" + tenant, Schedule: "hot", ID: id, StartedAt: at})
		if verified[id] {
			if err := catalog.WriteVerification(context.Background(), f.direct, tenant, "hot",
				catalog.Verification{FormatVersion: 1, BackupID: id, CheckedAt: at.Add(time.Hour), Kind: "checksum", OK: true}); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, id)
	}
	return ids
}

// stored is what the server really holds of tenant's schedule: the ids of its complete backups.
// It fails the test on a manifest whose data object is gone: a backup destroyed, not pruned.
func (f *faultyS3) stored(t *testing.T, tenant string) []string {
	t.Helper()
	ctx := context.Background()
	objs, err := f.direct.List(ctx, catalog.Dir(tenant, "hot", ""))
	if err != nil {
		t.Fatalf("list the server directly: %v", err)
	}
	has := map[string]bool{}
	for _, o := range objs {
		has[o.Key] = true
	}
	var ids []string
	for _, o := range objs {
		if path.Base(o.Key) != catalog.ManifestObject {
			continue
		}
		dir := path.Dir(o.Key)
		if !has[path.Join(dir, catalog.DataObject)] {
			t.Errorf("%s has a manifest and no data object any more: a backup was destroyed, not pruned", dir)
		}
		ids = append(ids, path.Base(dir))
	}
	sort.Strings(ids)
	return ids
}

// fullDecision is what retention decides on the complete listing, read straight from the server.
func (f *faultyS3) fullDecision(t *testing.T, tenant string, policy v1alpha1.RetentionPolicySpec, now time.Time) (prune, keep map[string]bool) {
	t.Helper()
	listed, err := catalog.ListEntries(context.Background(), f.direct, tenant, "hot", catalog.WithTenantUIDs("uid-"+tenant))
	if err != nil {
		t.Fatal(err)
	}
	d, err := catalog.Decide(tenant, "hot", catalog.Candidates(listed), policy, now, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	prune, keep = map[string]bool{}, map[string]bool{}
	for _, c := range d.Prune {
		prune[c.ID] = true
	}
	for _, k := range d.Keep {
		keep[k.ID] = true
	}
	return prune, keep
}

func (f *faultyS3) request(tenant string, retain v1alpha1.RetentionPolicySpec) Request {
	return Request{Tenant: tenant, Policy: f.policy, Location: time.UTC, TenantUIDs: []string{"uid-" + tenant},
		Retention: &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "retain", ResourceVersion: "1"}, Spec: retain}}
}

// verdict is the BackupsFresh condition the reconciler would set from what the Inspector last
// found.
func (f *faultyS3) verdict(t *testing.T, in Inspection, now time.Time) metav1.Condition {
	t.Helper()
	e, err := Expect(f.policy, f.policy.Spec.Schedules[0])
	if err != nil {
		t.Fatal(err)
	}
	e.Since = now.Add(-30 * 24 * time.Hour)
	return Judge(Input{Policy: f.policy, Schedules: []Expected{e}, Inspection: in, Now: now}).Fresh
}

func idsOf(set map[string]bool) []string {
	var out []string
	for id := range set {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func without(all []string, gone map[string]bool) []string {
	var out []string
	for _, id := range all {
		if !gone[id] {
			out = append(out, id)
		}
	}
	return out
}

// summary collects one line per case and prints them together when the test ends.
type summary struct {
	mu    sync.Mutex
	lines []string
}

func (s *summary) add(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, fmt.Sprintf(format, args...))
}

func (s *summary) print(t *testing.T, title string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Logf("SUMMARY %s:\n  %s", title, strings.Join(s.lines, "\n  "))
}

// Storage that does not answer, or answers only errors, or answers too slowly: each look says
// the storage is unreachable (BackupsFresh False, StorageUnreachable), nothing is pruned, looks
// stay one per interval however often the tenant is reconciled, and the first look after the
// storage returns finds the backups and prunes what retention says.
func TestStorageOutagesPruneNothingAndRecover(t *testing.T) {
	f := startFaultyS3(t)
	const (
		interval = time.Second
		timeout  = 2 * time.Second
		window   = 5 * time.Second
	)
	keepTwo := v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](2)}
	cases := []struct {
		name  string
		fault faultproxy.Fault
		// unreachable: every look fails to list; otherwise the listing works and pruning fails.
		unreachable bool
	}{
		{"connection refused", faultproxy.Fault{Kind: faultproxy.Refuse}, true},
		{"connection reset", faultproxy.Fault{Kind: faultproxy.Reset}, true},
		{"500 InternalError", faultproxy.Fault{Kind: faultproxy.Error}, true},
		{"503 SlowDown", faultproxy.Fault{Kind: faultproxy.Error, Status: http.StatusServiceUnavailable, Code: "SlowDown"}, true},
		{"3s per request, beyond the 2s timeout", faultproxy.Fault{Kind: faultproxy.Slow, Delay: 3 * time.Second}, true},
		{"500 InternalError on DELETE only", faultproxy.Fault{Kind: faultproxy.Error, Ops: []faultproxy.Op{faultproxy.OpDeleteObject}}, false},
	}
	var sum summary
	defer sum.print(t, "storage outages")
	for n, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tenant := fmt.Sprintf("outage%d", n)
			now := time.Now()
			var times []time.Time
			for i := range 5 {
				times = append(times, now.Add(-time.Duration(5-i)*6*time.Hour))
			}
			ids := f.seed(t, tenant, times, nil)
			prune, _ := f.fullDecision(t, tenant, keepTwo, now)
			if len(prune) != 3 {
				t.Fatalf("retention over the full listing prunes %v, want the 3 oldest", idsOf(prune))
			}
			req := f.request(tenant, keepTwo)

			f.proxy.Set(tc.fault)
			t.Logf("Injected: %s, from before the manager's first look", tc.fault)
			lookTimeout := timeout
			if !tc.unreachable {
				// Room for the client's retries of each refused delete and the listing again
				// that follows a failed pruning, as the default 30s gives.
				lookTimeout = 10 * time.Second
			}
			in := f.inspector(t, clock.RealClock{}, interval, lookTimeout)
			// A reconciler far busier than the real one: Observe every 10ms.
			stop := make(chan struct{})
			var reconciled sync.WaitGroup
			reconciled.Add(1)
			go func() {
				defer reconciled.Done()
				for {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
						in.Observe(req)
					}
				}
			}()
			start := time.Now()
			time.Sleep(window)
			end := time.Now()
			looks := in.looks.Load()
			requests := f.proxy.Count(start, end)
			got := in.Observe(req)["hot"]

			// Paced: one look per interval at most (a look in flight delays the next), and each
			// look's requests bounded by the client's retries.
			if maxLooks := int64(window/interval) + 2; looks > maxLooks {
				t.Errorf("%d looks in %v with an interval of %v: not paced (at most %d)", looks, window, interval, maxLooks)
			}
			if looks == 0 {
				t.Fatalf("no look finished in %v", window)
			}
			// A look that cannot list makes the client's few retries; one that lists reads each
			// manifest (a GET, and a HEAD for its size) and tries each delete a few times.
			perLookMax := 12.0
			if !tc.unreachable {
				perLookMax = float64(8 + 8*len(ids))
			}
			if perLook := float64(requests) / float64(looks); perLook > perLookMax {
				t.Errorf("%d requests for %d looks: %.1f a look, want at most %.0f", requests, looks, perLook, perLookMax)
			}
			if st := f.stored(t, tenant); !slices.Equal(st, ids) {
				t.Errorf("stored during the fault: %v, want all of %v: nothing may be pruned", st, ids)
			}
			if p := in.TakePruned(tenant); p != nil {
				t.Errorf("pruned during the fault: %+v", p)
			}
			cond := f.verdict(t, Inspection{"hot": got}, time.Now())
			if tc.unreachable {
				if got.Err == nil || cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.ReasonStorageUnreachable {
					t.Errorf("during the fault: listing error %v, BackupsFresh %s/%s %q; want False/StorageUnreachable", got.Err, cond.Status, cond.Reason, cond.Message)
				}
			} else {
				if got.Err != nil || got.PruneErr == nil || cond.Status != metav1.ConditionTrue {
					t.Errorf("during the fault: listing error %v, prune error %v, BackupsFresh %s/%s; want the backups listed, fresh, and the pruning failed",
						got.Err, got.PruneErr, cond.Status, cond.Reason)
				}
			}
			t.Logf("During the fault: %d looks and %d requests in %v (%.1f requests/s); BackupsFresh %s/%s: %s",
				looks, requests, window, float64(requests)/window.Seconds(), cond.Status, cond.Reason, cond.Message)

			// The storage returns.
			restored := time.Now()
			f.proxy.Set(faultproxy.Fault{})
			var listedAt, prunedAt time.Duration
			deadline := restored.Add(interval + 2*lookTimeout + 10*time.Second)
			for time.Now().Before(deadline) && (listedAt == 0 || prunedAt == 0) {
				l := in.Observe(req)["hot"]
				if listedAt == 0 && l.Err == nil && l.At.After(restored) {
					listedAt = time.Since(restored)
				}
				if prunedAt == 0 && l.At.After(restored) && l.PruneErr == nil && l.Err == nil && len(l.Entries) == 2 {
					prunedAt = time.Since(restored)
				}
				time.Sleep(10 * time.Millisecond)
			}
			close(stop)
			reconciled.Wait()
			if listedAt == 0 || prunedAt == 0 {
				t.Fatalf("not recovered within %v of the storage's return: %+v", time.Since(restored), in.Observe(req)["hot"])
			}
			if st, want := f.stored(t, tenant), without(ids, prune); !slices.Equal(st, want) {
				t.Errorf("stored after recovery: %v, want %v", st, want)
			}
			if p := in.TakePruned(tenant); len(p) != 1 || !slices.Equal(p[0].IDs, idsOf(prune)) {
				t.Errorf("pruned after recovery: %+v, want %v told once", p, idsOf(prune))
			}
			if cond := f.verdict(t, in.Observe(req), time.Now()); cond.Status != metav1.ConditionTrue || cond.Reason != v1alpha1.ReasonFresh {
				t.Errorf("after recovery BackupsFresh %s/%s %q, want True/Fresh", cond.Status, cond.Reason, cond.Message)
			}
			t.Logf("Recovered: listed %v and pruned %v after the storage returned (interval %v)", listedAt.Round(time.Millisecond), prunedAt.Round(time.Millisecond), interval)
			sum.add("%-40s looks %2d, requests %3d in %v; nothing pruned; listed again after %v, pruned after %v",
				tc.name+":", looks, requests, window, listedAt.Round(time.Millisecond), prunedAt.Round(time.Millisecond))
		})
	}
}

// randomPolicy is a retention policy with a random mix of rules.
func randomPolicy(rng *rand.Rand) v1alpha1.RetentionPolicySpec {
	var p v1alpha1.RetentionPolicySpec
	if rng.IntN(2) == 0 {
		p.KeepLast = ptr.To(int32(rng.IntN(4)))
	}
	if rng.IntN(2) == 0 {
		p.KeepDaily = ptr.To(int32(rng.IntN(4)))
	}
	if rng.IntN(2) == 0 {
		p.KeepWeekly = ptr.To(int32(rng.IntN(3)))
	}
	if rng.IntN(3) == 0 {
		p.MaxAge = "3d"
	}
	if rng.IntN(2) == 0 {
		p.MinKeep = ptr.To(int32(1 + rng.IntN(5)))
	}
	if p.KeepLast == nil && p.KeepDaily == nil && p.KeepWeekly == nil && p.MaxAge == "" {
		p.KeepLast = ptr.To[int32](1)
	}
	return p
}

// Storage that lists only some of what it holds and says the listing is complete: whatever the
// manager deletes while it does is something retention over the complete listing deletes too,
// no backup loses its data, and once the storage lists everything again the manager prunes
// exactly what retention over the complete listing prunes. Seeded: each round's seed is printed,
// and FAULT_SEED replays one.
//
// What no look can know is a manifest left out of both of a manager's first two listings: retention
// over the rest is what it prunes by, which deletes what the complete listing keeps only in rare
// combinations of minKeep and the protections (TestRetentionAloneIsNotSafeOnAPartialListing). A
// failure here that names a backup whose manifest the proxy's log shows dropped from every listing
// of the round is that limit, not a regression; any other is a bug.
func TestPartialListingsNeverPruneWhatTheFullListingKeeps(t *testing.T) {
	f := startFaultyS3(t)
	base := uint64(time.Now().UnixNano())
	if s := seedFromEnv(t); s != 0 {
		base = s
	}
	rounds := 20
	const looksPerRound = 4
	var sum summary
	defer sum.print(t, "partial listings")
	var heldLooks, lookCount, droppedEntries, deletedUnderLies, violations int
	for r := range rounds {
		seed := base + uint64(r)
		rng := rand.New(rand.NewPCG(seed, 1))
		tenant := fmt.Sprintf("part%02d", r)
		// The manager's clock a day ahead of the objects' times in storage, so that a data object
		// whose manifest the listing hides looks like the leftover of a killed backup (older than
		// orphanAge) and is removed if the manager believes the listing.
		now := time.Now().Add(orphanAge + time.Hour).Truncate(time.Second)
		clk := clocktesting.NewFakeClock(now)
		var times []time.Time
		verified := map[string]bool{}
		for i := range 6 + rng.IntN(7) {
			times = append(times, now.Add(-time.Duration(1+rng.IntN(20*24))*time.Hour))
			if rng.IntN(4) == 0 {
				verified[fmt.Sprintf("b%02d", i)] = true
			}
		}
		sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
		ids := f.seed(t, tenant, times, verified)
		policy := randomPolicy(rng)
		prune, keep := f.fullDecision(t, tenant, policy, now)
		req := f.request(tenant, policy)
		// From a rare lie, when many listings are complete and pruning goes on, to one entry in
		// two.
		drop := 0.01 + 0.49*rng.Float64()*rng.Float64()
		f.proxy.Set(faultproxy.Fault{Kind: faultproxy.PartialList, Drop: faultproxy.DropRandomly(seed, drop)})
		t.Logf("Round %d, seed %d: %d backups, policy %s; full listing prunes %v; injected: listings drop each entry with p=%.2f",
			r, seed, len(ids), describePolicy(policy), idsOf(prune), drop)

		// A manager that starts while the storage lies, and looks several times.
		in := f.inspector(t, clk, time.Minute, 20*time.Second)
		before := len(f.proxy.Requests())
		roundViolations, held := 0, 0
		for look := range looksPerRound {
			l := in.lookOnce(t, clk, req)
			lookCount++
			if l.Err != nil {
				held++
			}
			deleted := map[string]bool{}
			for _, id := range without(ids, setOf(f.stored(t, tenant))) {
				deleted[id] = true
			}
			for id := range deleted {
				if !prune[id] {
					roundViolations++
					t.Errorf("seed %d, look %d: %s was deleted on a partial listing, but retention over the full listing keeps it (%v)",
						seed, look, id, keep)
				}
			}
			if l.Err != nil {
				cond := f.verdict(t, Inspection{"hot": l}, now)
				if cond.Reason != v1alpha1.ReasonStorageUnreachable {
					t.Errorf("seed %d, look %d: a listing found incomplete gives BackupsFresh %s/%s, want StorageUnreachable", seed, look, cond.Status, cond.Reason)
				}
			}
		}
		dropped := 0
		for _, req := range f.proxy.Requests()[before:] {
			dropped += req.Dropped
		}
		deletedBefore := len(ids) - len(f.stored(t, tenant))

		// The storage lists everything again: retention's own decision, all of it.
		f.proxy.Set(faultproxy.Fault{})
		start := time.Now()
		l := in.lookOnce(t, clk, req)
		if l.Err != nil || l.PruneErr != nil {
			t.Errorf("seed %d: the first complete listing: %v, %v", seed, l.Err, l.PruneErr)
		}
		if st, want := f.stored(t, tenant), without(ids, prune); !slices.Equal(st, want) {
			t.Errorf("seed %d: stored after the storage lists everything again: %v, want %v (what the full listing keeps)", seed, st, want)
		}
		took := time.Since(start).Round(time.Millisecond)
		outcome := "none deleted that the full listing keeps"
		if roundViolations > 0 {
			outcome = fmt.Sprintf("%d DELETED THAT THE FULL LISTING KEEPS", roundViolations)
		}
		sum.add("seed %d: %2d backups, %s; p=%.2f, %d entries dropped, %d of %d looks held, %d of %d pruned under the lie, %s; all of retention's pruning done by the first complete look (%v)",
			seed, len(ids), describePolicy(policy), drop, dropped, held, looksPerRound, deletedBefore, len(prune), outcome, took)
		heldLooks, droppedEntries, deletedUnderLies, violations = heldLooks+held, droppedEntries+dropped, deletedUnderLies+deletedBefore, violations+roundViolations
	}
	sum.add("%d rounds: %d looks under partial listings (%d listed entries dropped), %d held as incomplete, %d backups pruned under the lie, %d of them kept by retention over the full listing",
		rounds, lookCount, droppedEntries, heldLooks, deletedUnderLies, violations)
}

func describePolicy(p v1alpha1.RetentionPolicySpec) string {
	var parts []string
	for _, r := range []struct {
		name string
		v    *int32
	}{{"keepLast", p.KeepLast}, {"keepDaily", p.KeepDaily}, {"keepWeekly", p.KeepWeekly}, {"minKeep", p.MinKeep}} {
		if r.v != nil {
			parts = append(parts, fmt.Sprintf("%s %d", r.name, *r.v))
		}
	}
	if p.MaxAge != "" {
		parts = append(parts, "maxAge "+p.MaxAge)
	}
	return strings.Join(parts, ", ")
}

// Retention alone cannot be trusted with a partial listing, which is why the Inspector checks
// each listing against the last (checkListing): with keepDaily 2 and minKeep 3, hiding the newest
// backup promotes the 16th's backups into the rules, which then satisfy minKeep, and a backup of
// the 27th that the complete listing keeps (by minKeep) is pruned.
func TestRetentionAloneIsNotSafeOnAPartialListing(t *testing.T) {
	day := func(d, h int) time.Time { return time.Date(2026, 5, d, h, 0, 0, 0, time.UTC) }
	all := []retention.Candidate{
		{ID: "0516a", Time: day(16, 10), Verified: true}, {ID: "0516b", Time: day(16, 12)},
		{ID: "0527a", Time: day(27, 10)}, {ID: "0527b", Time: day(27, 12)},
		{ID: "0529", Time: day(29, 12), Verified: true},
	}
	policy := v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](2), MinKeep: ptr.To[int32](3)}
	now := day(30, 0)
	full, err := retention.Decide(policy, all, now, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	partial, err := retention.Decide(policy, all[:4], now, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(cs []retention.Candidate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	if got := ids(full.Prune); !slices.Equal(got, []string{"0516a", "0516b"}) {
		t.Fatalf("the complete listing prunes %v, want 0516a and 0516b", got)
	}
	if got := ids(partial.Prune); !slices.Equal(got, []string{"0527a"}) {
		t.Fatalf("the listing without 0529 prunes %v; this test expected 0527a (if retention changed, find another example)", got)
	}
}

// The same example on the local S3: the manager has listed everything once (under a policy that
// keeps everything); the policy then changes while the storage leaves the newest backup out of
// its listings. The look finds 0529 missing though stored, prunes nothing and says the storage
// could not be listed; when the storage lists it again, the look prunes what the complete
// listing prunes.
func TestAHiddenBackupKeepsRetentionFromPruningOnAPartialListing(t *testing.T) {
	f := startFaultyS3(t)
	now := time.Now().Truncate(time.Second)
	clk := clocktesting.NewFakeClock(now)
	const tenant = "hidden"
	names := []string{"0516a", "0516b", "0527a", "0527b", "0529"}
	offsets := []time.Duration{-14*24*time.Hour - 2*time.Hour, -14 * 24 * time.Hour, -3*24*time.Hour - 2*time.Hour, -3 * 24 * time.Hour, -24 * time.Hour}
	for i, id := range names {
		catalogtest.Write(t, f.direct, catalogtest.Backup{Tenant: tenant, TenantUID: "uid-" + tenant, Schedule: "hot", ID: id, StartedAt: now.Add(offsets[i])})
	}
	for _, id := range []string{"0516a", "0529"} {
		if err := catalog.WriteVerification(context.Background(), f.direct, tenant, "hot",
			catalog.Verification{FormatVersion: 1, BackupID: id, CheckedAt: now.Add(-time.Hour), Kind: "checksum", OK: true}); err != nil {
			t.Fatal(err)
		}
	}
	policy := v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](2), MinKeep: ptr.To[int32](3)}
	prune, _ := f.fullDecision(t, tenant, policy, now)
	if got := idsOf(prune); !slices.Equal(got, []string{"0516a", "0516b"}) {
		t.Fatalf("retention over the complete listing prunes %v, want 0516a and 0516b", got)
	}

	in := f.inspector(t, clk, time.Minute, 20*time.Second)
	req := f.request(tenant, v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](10)})
	if l := in.lookOnce(t, clk, req); l.Err != nil || len(l.Entries) != 5 {
		t.Fatalf("first look: %v, %d backups; want all five", l.Err, len(l.Entries))
	}

	hidden := path.Join(faultPrefix, catalog.Dir(tenant, "hot", "0529"))
	f.proxy.Set(faultproxy.Fault{Kind: faultproxy.PartialList, Drop: func(key string) bool { return strings.HasPrefix(key, hidden+"/") }})
	t.Logf("Injected: every listing leaves out %s/*; the retention policy changes to %s", hidden, describePolicy(policy))
	req = f.request(tenant, policy)
	req.Retention.ResourceVersion = "2"
	l := in.lookOnce(t, clk, req)
	if st := f.stored(t, tenant); !slices.Equal(st, names) {
		t.Fatalf("stored after a look at a partial listing: %v, want all of %v", st, names)
	}
	cond := f.verdict(t, Inspection{"hot": l}, now)
	if l.Err == nil || !strings.Contains(l.Err.Error(), "0529/manifest.json out of its listing") ||
		cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.ReasonStorageUnreachable {
		t.Fatalf("the look at a partial listing: error %v, BackupsFresh %s/%s; want the hidden manifest named and StorageUnreachable", l.Err, cond.Status, cond.Reason)
	}
	t.Logf("During the fault: BackupsFresh %s/%s: %s", cond.Status, cond.Reason, cond.Message)

	f.proxy.Set(faultproxy.Fault{})
	start := time.Now()
	l = in.lookOnce(t, clk, req)
	if l.Err != nil || l.PruneErr != nil {
		t.Fatalf("the look after the storage lists everything again: %v, %v", l.Err, l.PruneErr)
	}
	if st, want := f.stored(t, tenant), without(names, prune); !slices.Equal(st, want) {
		t.Errorf("stored after recovery: %v, want %v", st, want)
	}
	if !t.Failed() {
		t.Logf("SUMMARY hidden newest backup: nothing pruned while 0529 was hidden (the listing alone would have pruned 0527a); 0516a and 0516b pruned by the first complete look, %v after the storage returned", time.Since(start).Round(time.Millisecond))
	}
}

// A storage that hides the same manifest from every listing from the start cannot be caught by
// comparing listings; the cleanup of killed backups' leftovers then sees that backup's data as a
// leftover. It asks for the manifest by key before deleting anything, so the backup keeps its data.
func TestAManifestHiddenFromEveryListingDoesNotMakeItsBackupALeftover(t *testing.T) {
	f := startFaultyS3(t)
	// A day ahead of the objects' times: everything stored is older than orphanAge.
	now := time.Now().Add(orphanAge + time.Hour).Truncate(time.Second)
	clk := clocktesting.NewFakeClock(now)
	const tenant = "alwayshidden"
	ids := f.seed(t, tenant, []time.Time{now.Add(-50 * time.Hour), now.Add(-26 * time.Hour), now.Add(-2 * time.Hour)}, map[string]bool{"b00": true})
	hidden := path.Join(faultPrefix, catalog.Dir(tenant, "hot", "b00"), catalog.ManifestObject)
	f.proxy.Set(faultproxy.Fault{Kind: faultproxy.PartialList, Drop: func(key string) bool { return key == hidden }})
	t.Logf("Injected: every listing leaves out %s, from before the manager's first look", hidden)

	in := f.inspector(t, clk, time.Minute, 20*time.Second)
	req := f.request(tenant, v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](10)})
	for range 2 {
		l := in.lookOnce(t, clk, req)
		if l.Err != nil || len(l.Entries) != 2 {
			t.Fatalf("look: %v, %d backups; want b01 and b02 (b00 is hidden and cannot be known)", l.Err, len(l.Entries))
		}
	}
	ctx := context.Background()
	for _, name := range []string{catalog.DataObject, catalog.VerificationObject} {
		if _, err := f.direct.Stat(ctx, storage.Join(catalog.Dir(tenant, "hot", "b00"), name)); err != nil {
			t.Errorf("b00's %s after two looks: %v; the backup was taken for a leftover", name, err)
		}
	}
	if st := f.stored(t, tenant); !slices.Equal(st, ids) {
		t.Errorf("stored: %v, want %v", st, ids)
	}
	if removed := in.log("Removed unfinished backups"); len(removed) > 0 {
		t.Errorf("the looks removed leftovers: %v", removed)
	}
	if !t.Failed() {
		t.Logf("SUMMARY manifest hidden from every listing: b00's data and verification kept through 2 looks with the manager's clock %v past their upload", orphanAge+time.Hour)
	}
}

// Writes that never finished: a data object whose manifest PUT failed (through the proxy, which
// answered 500 to it), an abandoned multipart upload, and, under a policy that signs, a manifest
// without its signature. None counts as a backup; the unsigned one is reported (UntrustedBackups)
// and neither kept nor pruned; the others go once older than orphanAge (by the manager's clock
// against the storage's times), never before, and the log says so; none of them keeps retention
// from pruning the complete backups.
func TestHalfWrittenBackupsAreNotCountedAndDoNotBlockPruning(t *testing.T) {
	f := startFaultyS3(t)
	ctx := context.Background()
	start := time.Now().Truncate(time.Second)
	clk := clocktesting.NewFakeClock(start)
	const tenant = "halfway"
	key := signingKey(t)
	f.policy.Status.Signing = &v1alpha1.BackupSigningStatus{PublicKey: catalog.FormatPublicKey(key.Public().(ed25519.PublicKey))}

	// Four complete, signed backups, twelve hours apart.
	var complete []string
	for i := range 4 {
		id := fmt.Sprintf("b%02d", i)
		m := catalogtest.Write(t, f.direct, catalogtest.Backup{Tenant: tenant, TenantUID: "uid-" + tenant, Schedule: "hot", ID: id,
			StartedAt: start.Add(-time.Duration(4-i) * 12 * time.Hour)})
		if err := catalog.WriteSignedManifest(ctx, f.direct, m, key); err != nil {
			t.Fatal(err)
		}
		complete = append(complete, id)
	}
	// A manifest without a signature (newer than all: it would be the newest backup).
	catalogtest.Write(t, f.direct, catalogtest.Backup{Tenant: tenant, TenantUID: "uid-" + tenant, Schedule: "hot", ID: "unsigned", StartedAt: start.Add(-time.Hour)})
	// A backup whose manifest could not be stored: the storage answered 500 to the PUT.
	loc, err := storage.ParseLocation(strings.Replace(f.s3.Location(faultPrefix), f.s3.Endpoint, f.proxy.Addr(), 1))
	if err != nil {
		t.Fatal(err)
	}
	agent, err := storage.OpenS3(ctx, loc, storage.Credentials{AccessKeyID: f.s3.AccessKey, SecretAccessKey: f.s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("encrypted dump of nomanifest")
	if _, err := agent.Put(ctx, storage.Join(catalog.Dir(tenant, "hot", "nomanifest"), catalog.DataObject), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	f.proxy.Set(faultproxy.Fault{Kind: faultproxy.Error, Ops: []faultproxy.Op{faultproxy.OpPutObject}})
	sum := sha256.Sum256(data)
	err = catalog.WriteSignedManifest(ctx, agent, catalog.Manifest{FormatVersion: catalog.FormatVersion, ID: "nomanifest", Tenant: tenant, TenantUID: "uid-" + tenant,
		Schedule: "hot", StartedAt: start.Add(-30 * time.Minute), FinishedAt: start.Add(-29 * time.Minute), Database: "app",
		Object: catalog.ObjectInfo{Name: catalog.DataObject, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Format: "pg_dump-custom", Compression: "zstd", Encryption: "age"}}, key)
	if err == nil {
		t.Fatal("the manifest's PUT succeeded through a proxy answering 500 to PUTs")
	}
	f.proxy.Set(faultproxy.Fault{})
	t.Logf("Injected: PUT answered 500 after the data object of nomanifest was stored (%v)", err)
	// A multipart upload a killed agent left.
	core := minio.Core{Client: f.s3.Client}
	uploadKey := path.Join(faultPrefix, catalog.Dir(tenant, "hot", "killed"), catalog.DataObject)
	uploadID, err := core.NewMultipartUpload(ctx, f.s3.Bucket, uploadKey, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.PutObjectPart(ctx, f.s3.Bucket, uploadKey, uploadID, 1, bytes.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{}); err != nil {
		t.Fatal(err)
	}
	uploads := func() int {
		n := 0
		for u := range f.s3.Client.ListIncompleteUploads(ctx, f.s3.Bucket, path.Join(faultPrefix, tenant)+"/", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			n++
		}
		return n
	}
	if uploads() != 1 {
		t.Fatal("the abandoned upload is not there")
	}
	objectsOf := func(id string) int {
		objs, err := f.direct.List(ctx, catalog.Dir(tenant, "hot", id))
		if err != nil {
			t.Fatal(err)
		}
		return len(objs)
	}

	keepTwo := v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](2)}
	in := f.inspector(t, clk, time.Minute, 20*time.Second)
	req := f.request(tenant, keepTwo)
	l := in.lookOnce(t, clk, req)
	if l.Err != nil || l.PruneErr != nil {
		t.Fatalf("look: %v, %v", l.Err, l.PruneErr)
	}
	verdict := func(l Listing, now time.Time) Verdict {
		e, err := Expect(f.policy, f.policy.Spec.Schedules[0])
		if err != nil {
			t.Fatal(err)
		}
		e.Since = now.Add(-30 * 24 * time.Hour)
		return Judge(Input{Policy: f.policy, Schedules: []Expected{e}, Inspection: Inspection{"hot": l}, Now: now})
	}
	v := verdict(l, start)
	if got := v.Status.Schedules[0]; got.Count != 2 || got.LastBackupID != "b03" {
		t.Errorf("status counts %d backups, newest %q; want 2 (b02, b03), newest b03: nothing half-written counts", got.Count, got.LastBackupID)
	}
	if v.Fresh.Reason != v1alpha1.ReasonUntrustedBackups || !strings.Contains(v.Fresh.Message, "hot/unsigned") {
		t.Errorf("BackupsFresh %s/%s %q; want UntrustedBackups naming hot/unsigned", v.Fresh.Status, v.Fresh.Reason, v.Fresh.Message)
	}
	if st, want := f.stored(t, tenant), []string{"b02", "b03", "unsigned"}; !slices.Equal(st, want) {
		t.Errorf("stored after pruning with keepLast 2: %v, want %v: the complete ones beyond two pruned, the unsigned one left for a person", st, want)
	}
	if objectsOf("nomanifest") != 1 || uploads() != 1 {
		t.Errorf("young leftovers removed at once: %d objects of nomanifest, %d uploads; want both kept while a backup may still be writing", objectsOf("nomanifest"), uploads())
	}
	t.Logf("First look: BackupsFresh %s/%s: %s", v.Fresh.Status, v.Fresh.Reason, v.Fresh.Message)

	// A day later by the manager's clock (the storage's times have not moved): leftovers go.
	clk.SetTime(start.Add(orphanAge + time.Minute))
	l = in.lookOnce(t, clk, req)
	if l.Err != nil || l.PruneErr != nil {
		t.Fatalf("look a day later: %v, %v", l.Err, l.PruneErr)
	}
	if n, u := objectsOf("nomanifest"), uploads(); n != 0 || u != 0 {
		t.Errorf("a day later: %d objects of nomanifest and %d uploads left; want the leftovers removed", n, u)
	}
	if objectsOf("unsigned") == 0 {
		t.Error("the unsigned backup was removed; it is not a leftover, it waits for a person")
	}
	if st, want := f.stored(t, tenant), []string{"b02", "b03", "unsigned"}; !slices.Equal(st, want) {
		t.Errorf("stored a day later: %v, want %v", st, want)
	}
	removed := in.log("Removed unfinished backups")
	if len(removed) != 1 || !strings.Contains(removed[0], "nomanifest") || !strings.Contains(removed[0], "killed") {
		t.Errorf("logged removals: %v; want one line naming nomanifest and killed", removed)
	}
	if !t.Failed() {
		t.Logf("SUMMARY half-written backups: not counted (2 of 5 manifests count), the unsigned one reported as UntrustedBackups and left; keepLast 2 pruned b00 and b01 past them; leftovers kept at the first look and removed at the first look past %v: %v", orphanAge, removed)
	}
}

func signingKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}
