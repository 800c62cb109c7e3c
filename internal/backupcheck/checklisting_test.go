package backupcheck

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// hidingStore is a volume whose listings leave out the keys a test chooses, and whose Stat fails
// when the test says so.
type hidingStore struct {
	storage.Store
	mu      sync.Mutex
	hidden  map[string]bool
	statErr error
	// passing is how many listings to answer completely before hiding.
	passing int
}

func (s *hidingStore) List(ctx context.Context, dir string) ([]storage.Object, error) {
	objs, err := s.Store.List(ctx, dir)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.passing > 0 {
		s.passing--
		return objs, err
	}
	out := objs[:0:0]
	for _, o := range objs {
		if !s.hidden[o.Key] {
			out = append(out, o)
		}
	}
	return out, err
}

func (s *hidingStore) Stat(ctx context.Context, key string) (storage.Object, error) {
	s.mu.Lock()
	err := s.statErr
	s.mu.Unlock()
	if err != nil {
		return storage.Object{}, err
	}
	return s.Store.Stat(ctx, key)
}

func (s *hidingStore) set(hidden []string, statErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hidden = map[string]bool{}
	for _, k := range hidden {
		s.hidden[k] = true
	}
	s.statErr = statErr
}

// Each look's listing is checked against the last: a verification or manifest left out though
// stored, or one that cannot be asked about, holds the look; backups deleted by hand do not. (A
// key left out of every listing from the first on cannot be caught this way; see
// TestAManifestHiddenFromEveryListingDoesNotMakeItsBackupALeftover.)
func TestListingsAreCheckedAgainstTheLast(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	v, err := storage.OpenVolume(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &hidingStore{Store: v}
	for i, id := range []string{"b1", "b2", "b3", "b4"} {
		catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: "uid-acme", Schedule: "hot", ID: id, StartedAt: now.Add(time.Duration(i-4) * 24 * time.Hour)})
	}
	// b1, the oldest, is the only verified one: "newest verified" keeps it.
	if err := catalog.WriteVerification(context.Background(), store, "acme", "hot", catalog.Verification{BackupID: "b1", CheckedAt: now, OK: true}); err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(now)
	notify, notices := notified()
	in := New(Options{Clock: clk, Notify: notify, Interval: time.Minute})
	in.openStore = func(context.Context, v1alpha1.BackupStorage) (storage.Store, error) { return store, nil }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = in.Start(ctx) }()
	req := Request{Tenant: "acme", Policy: volumePolicy("standard", "backups"), Location: time.UTC, TenantUIDs: []string{"uid-acme"},
		Retention: &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "one", ResourceVersion: "1"},
			Spec: v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)}}}
	look := func() Listing {
		t.Helper()
		clk.Step(time.Minute)
		in.Observe(req)
		waitFor(t, notices, "acme", 10*time.Second)
		return in.Observe(req)["hot"]
	}
	ids := func(l Listing) string {
		var out []string
		for _, e := range l.Entries {
			out = append(out, e.ID)
		}
		return strings.Join(out, ",")
	}

	if l := look(); l.Err != nil || ids(l) != "b4,b1" {
		t.Fatalf("complete listing: %v, entries %s; want b4 (newest) and b1 (newest verified)", l.Err, ids(l))
	}
	// b1's verification left out: judged by that listing, b1 would go as unverified.
	store.set([]string{"acme/hot/b1/verification.json"}, nil)
	if l := look(); l.Err == nil || !strings.Contains(l.Err.Error(), "acme/hot/b1/verification.json out of its listing") {
		t.Fatalf("b1's verification left out: %v (entries %s); want the listing held, naming it", l.Err, ids(l))
	}
	// b1's manifest left out: held, not pruned, however often.
	store.set([]string{"acme/hot/b1/manifest.json"}, nil)
	for range 2 {
		if l := look(); l.Err == nil {
			t.Fatalf("b1's manifest left out: %+v; want the listing held", l)
		}
	}
	// Left out, and the storage does not answer about it either.
	store.set([]string{"acme/hot/b1/manifest.json"}, errors.New("503 SlowDown"))
	if l := look(); l.Err == nil || !strings.Contains(l.Err.Error(), "asking for it failed") {
		t.Fatalf("b1 left out and Stat failing: %v; want the listing held", l.Err)
	}
	// Deleted by hand: gone for good, the next look judges without it.
	store.set(nil, nil)
	if err := catalog.Delete(context.Background(), v, "acme", "hot", "b1"); err != nil {
		t.Fatal(err)
	}
	if l := look(); l.Err != nil || ids(l) != "b4" {
		t.Fatalf("after b1 was deleted by hand: %v, entries %s; want b4 alone and no error", l.Err, ids(l))
	}
	if l := look(); l.Err != nil {
		t.Fatalf("the look after: %v", l.Err)
	}

	// A manager that starts (nothing known) while the listing it judges leaves out the newest
	// backup's manifest: the listing of its own it checks against, made first, has it.
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: "uid-acme", Schedule: "hot", ID: "b5", StartedAt: now})
	fresh := New(Options{Clock: clk, Notify: notify, Interval: time.Minute})
	fresh.openStore = in.openStore
	go func() { _ = fresh.Start(ctx) }()
	store.mu.Lock()
	store.hidden, store.passing = map[string]bool{"acme/hot/b5/manifest.json": true}, 1
	store.mu.Unlock()
	fresh.Observe(req)
	waitFor(t, notices, "acme", 10*time.Second)
	if l := fresh.Observe(req)["hot"]; l.Err == nil || !strings.Contains(l.Err.Error(), "b5/manifest.json") {
		t.Fatalf("a new manager's first look at a listing without b5: %v (entries %s); want it held", l.Err, ids(l))
	}
}

// A backup's verification left out of every listing from the start is asked for by key when the
// backup is first seen: judged unverified, the oldest backup would lose the "newest verified"
// protection and go. And a first look whose two listings disagree prunes nothing.
func TestAFirstLookAsksForWhatItCannotSee(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	v, err := storage.OpenVolume(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &hidingStore{Store: v}
	for i, id := range []string{"b1", "b2", "b3"} {
		catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: "uid-acme", Schedule: "hot", ID: id, StartedAt: now.Add(time.Duration(i-3) * 24 * time.Hour)})
	}
	if err := catalog.WriteVerification(context.Background(), store, "acme", "hot", catalog.Verification{BackupID: "b1", CheckedAt: now, OK: true}); err != nil {
		t.Fatal(err)
	}
	req := Request{Tenant: "acme", Policy: volumePolicy("standard", "backups"), Location: time.UTC, TenantUIDs: []string{"uid-acme"},
		Retention: &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "one", ResourceVersion: "1"},
			Spec: v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)}}}
	firstLook := func() Listing {
		t.Helper()
		notify, notices := notified()
		in := New(Options{Clock: clocktesting.NewFakeClock(now), Notify: notify, Interval: time.Minute})
		in.openStore = func(context.Context, v1alpha1.BackupStorage) (storage.Store, error) { return store, nil }
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go func() { _ = in.Start(ctx) }()
		in.Observe(req)
		waitFor(t, notices, "acme", 10*time.Second)
		return in.Observe(req)["hot"]
	}
	stored := func() int {
		n := 0
		for _, id := range []string{"b1", "b2", "b3"} {
			if _, err := v.Stat(context.Background(), "acme/hot/"+id+"/manifest.json"); err == nil {
				n++
			}
		}
		return n
	}

	store.set([]string{"acme/hot/b1/verification.json"}, nil)
	if l := firstLook(); l.Err == nil || !strings.Contains(l.Err.Error(), "b1/verification.json out of its listing") || stored() != 3 {
		t.Fatalf("first look, b1's verification hidden from every listing: %v, %d stored; want it held and all three kept", l.Err, stored())
	}
	// The listing made first lacks b3; the judged one has it.
	store.mu.Lock()
	store.hidden, store.passing, store.statErr = map[string]bool{"acme/hot/b3/manifest.json": true}, 0, nil
	store.mu.Unlock()
	notify, notices := notified()
	in := New(Options{Clock: clocktesting.NewFakeClock(now), Notify: notify, Interval: time.Minute})
	once := &sync.Once{}
	in.openStore = func(context.Context, v1alpha1.BackupStorage) (storage.Store, error) {
		return &unhideAfterFirstList{hidingStore: store, once: once}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = in.Start(ctx) }()
	in.Observe(req)
	waitFor(t, notices, "acme", 10*time.Second)
	if l := in.Observe(req)["hot"]; l.Err != nil || l.PruneErr == nil || !strings.Contains(l.PruneErr.Error(), "pruning waits for the next look") || stored() != 3 {
		t.Fatalf("first look whose listings disagree: %v, %v, %d stored; want the backups listed and nothing pruned", l.Err, l.PruneErr, stored())
	}
}

// unhideAfterFirstList shows everything from its second listing on.
type unhideAfterFirstList struct {
	*hidingStore
	once *sync.Once
}

func (s *unhideAfterFirstList) List(ctx context.Context, dir string) ([]storage.Object, error) {
	objs, err := s.hidingStore.List(ctx, dir)
	s.once.Do(func() { s.set(nil, nil) })
	return objs, err
}
