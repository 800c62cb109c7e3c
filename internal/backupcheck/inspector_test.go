package backupcheck

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// writeBackup lays out a complete backup in a volume directory.
func writeBackup(t *testing.T, dir, tenant, schedule, id string, started time.Time) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	store, err := storage.OpenVolume(dir)
	if err != nil {
		t.Fatal(err)
	}
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: tenant, Schedule: schedule, ID: id, StartedAt: started})
}

func volumePolicy(name, claim string) *v1alpha1.BackupPolicy {
	return &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"}, Spec: v1alpha1.BackupPolicySpec{
		Schedules: []v1alpha1.BackupSchedule{{Name: "hot", Schedule: "0 */12 * * *",
			Storage: v1alpha1.BackupStorage{Volume: &v1alpha1.VolumeStorage{ClaimName: claim}}}}}}
}

// notified collects the tenants the Inspector tells about.
func notified() (func(string), <-chan string) {
	ch := make(chan string, 100)
	return func(tenant string) { ch <- tenant }, ch
}

func waitFor(t *testing.T, ch <-chan string, tenant string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case got := <-ch:
			if got == tenant {
				return
			}
		case <-deadline:
			t.Fatalf("no notice for tenant %s within %v", tenant, within)
		}
	}
}

func TestInspectorLooksOutsideThePassAndPrunesOnce(t *testing.T) {
	root := t.TempDir()
	claim := filepath.Join(root, "backups")
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for i, id := range []string{"b1", "b2", "b3"} {
		writeBackup(t, claim, "acme", "hot", id, now.Add(time.Duration(i-3)*time.Hour))
	}
	clk := clocktesting.NewFakeClock(now)
	notify, notices := notified()
	in := New(Options{VolumeRoot: root, Clock: clk, Notify: notify, Interval: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = in.Start(ctx) }()

	// A record of a pruning two years ago, which the next pruning finds expired.
	store, err := storage.OpenVolume(claim)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.WritePruneRecord(context.Background(), store, catalog.PruneRecord{Tenant: "acme", TenantUID: "uid-acme", Schedule: "hot",
		PrunedAt: now.AddDate(-2, 0, 0), Pruned: []catalog.PrunedBackup{{ID: "ancient"}}}); err != nil {
		t.Fatal(err)
	}
	req := Request{Tenant: "acme", Policy: volumePolicy("standard", "backups"), Location: time.UTC, TenantUIDs: []string{"uid-acme"},
		Retention: &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "short", ResourceVersion: "1", Generation: 4},
			Spec: v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)}}}
	if got := in.Observe(req); len(got) != 0 {
		t.Fatalf("the first Observe returned %v; it must not wait for storage", got)
	}
	waitFor(t, notices, "acme", 10*time.Second)
	got := in.Observe(req)["hot"]
	if got.Err != nil || len(got.Entries) != 1 || got.Entries[0].ID != "b3" {
		t.Fatalf("listing after pruning = %+v, want only b3", got)
	}
	if got.LastSeen == nil || got.LastSeen.ID != "b3" {
		t.Errorf("LastSeen = %+v, want b3", got.LastSeen)
	}
	pruned := in.TakePruned("acme")
	if len(pruned) != 1 || !slices.Equal(pruned[0].IDs, []string{"b1", "b2"}) || pruned[0].Policy != "short" || pruned[0].Schedule != "hot" {
		t.Errorf("TakePruned = %+v, want b1 and b2 of hot by short", pruned)
	}
	if again := in.TakePruned("acme"); again != nil {
		t.Errorf("TakePruned a second time = %+v, want nothing: each deletion is told once", again)
	}
	// The pruning is recorded in the storage, with the rules and why each backup went; the
	// expired record is gone.
	records, total, err := catalog.ReadPruneRecords(context.Background(), store, "acme", "uid-acme", 0)
	if err != nil || total != 1 {
		t.Fatalf("prune records: %d, %v; want this pruning's only", total, err)
	}
	want := catalog.PruneRecord{FormatVersion: catalog.PruneRecordFormatVersion, Tenant: "acme", TenantUID: "uid-acme", Schedule: "hot",
		RetentionPolicy: "short", RetentionPolicyGeneration: 4, Rules: req.Retention.Spec, TimeZone: "UTC", DecidedAt: now, PrunedAt: now, Due: 2,
		Pruned: []catalog.PrunedBackup{
			{ID: "b1", StartedAt: now.Add(-3 * time.Hour), Why: []string{"keepLast 1: 2 newer backups"}},
			{ID: "b2", StartedAt: now.Add(-2 * time.Hour), Why: []string{"keepLast 1: 1 newer backups"}}},
		Key: records[0].Key}
	if !reflect.DeepEqual(records[0], want) {
		t.Errorf("prune record:\n got  %+v\n want %+v", records[0], want)
	}

	// Nothing is due: no new look, so no notice.
	in.Observe(req)
	select {
	case tenant := <-notices:
		t.Fatalf("a look ran for %s although none was due", tenant)
	case <-time.After(200 * time.Millisecond):
	}
	// A finished job is a reason to look again at once.
	req.FinishedJobs = map[string]bool{"acme-hot-1": true}
	in.Observe(req)
	waitFor(t, notices, "acme", 10*time.Second)
	// So is the interval passing.
	clk.Step(time.Minute)
	in.Observe(req)
	waitFor(t, notices, "acme", 10*time.Second)

	// Backups deleted by hand: Missing, with the last one seen kept by the Inspector.
	if err := os.RemoveAll(filepath.Join(claim, "acme")); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Minute)
	in.Observe(req)
	waitFor(t, notices, "acme", 10*time.Second)
	got = in.Observe(req)["hot"]
	if len(got.Entries) != 0 || got.LastSeen == nil || got.LastSeen.ID != "b3" {
		t.Errorf("after deleting the backups: %+v, want no entries and b3 last seen", got)
	}
}

// hangingS3 accepts connections and never answers, like a bucket behind a dead load balancer.
func hangingS3(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return l.Addr().String()
}

func TestSlowStorageDelaysOnlyItsOwnTenants(t *testing.T) {
	root := t.TempDir()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	writeBackup(t, filepath.Join(root, "backups"), "quick", "hot", "b1", now.Add(-time.Hour))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: "ops"},
		Data: map[string][]byte{"AWS_ACCESS_KEY_ID": []byte("id"), "AWS_SECRET_ACCESS_KEY": []byte("secret")}}
	notify, notices := notified()
	in := New(Options{Secrets: fake.NewClientBuilder().WithObjects(secret).Build(), OperatorNamespace: "ops", VolumeRoot: root,
		Clock: clocktesting.NewFakeClock(now), Notify: notify, Timeout: 3 * time.Second, WorkersPerLocation: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = in.Start(ctx) }()

	slow := &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "far", ResourceVersion: "1"}, Spec: v1alpha1.BackupPolicySpec{
		Schedules: []v1alpha1.BackupSchedule{{Name: "hot", Schedule: "@daily", Storage: v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{
			Endpoint: hangingS3(t), Bucket: "backups", Insecure: true, CredentialsSecretRef: v1alpha1.SecretReference{Name: "s3"}}}}}}}
	// Several tenants on the hanging bucket, more than its workers, and one on a volume.
	for _, name := range []string{"slow1", "slow2", "slow3"} {
		in.Observe(Request{Tenant: name, Policy: slow, Location: time.UTC})
	}
	start := time.Now()
	in.Observe(Request{Tenant: "quick", Policy: volumePolicy("near", "backups"), Location: time.UTC})
	waitFor(t, notices, "quick", 2*time.Second)
	if took := time.Since(start); took > time.Second {
		t.Errorf("the volume tenant waited %v behind the hanging bucket", took)
	}
	if got := in.Observe(Request{Tenant: "quick", Policy: volumePolicy("near", "backups"), Location: time.UTC})["hot"]; len(got.Entries) != 1 {
		t.Errorf("quick's listing = %+v, want its one backup", got)
	}
	waitFor(t, notices, "slow1", 10*time.Second)
	if got := in.Observe(Request{Tenant: "slow1", Policy: slow, Location: time.UTC})["hot"]; got.Err == nil {
		t.Errorf("the hanging bucket's listing = %+v, want an error after the timeout", got)
	}
}

// A kept tenant's backups are looked at and pruned under a key of their own: the state of a new
// Tenant of the same name is not touched, and Notify tells the key, not the name.
func TestKeptTenantsAreLookedAtUnderTheirOwnKey(t *testing.T) {
	root := t.TempDir()
	claim := filepath.Join(root, "backups")
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for i, id := range []string{"b1", "b2", "b3"} {
		writeBackup(t, claim, "acme", "hot", id, now.Add(time.Duration(i-3)*time.Hour))
	}
	notify, notices := notified()
	in := New(Options{VolumeRoot: root, Clock: clocktesting.NewFakeClock(now), Notify: notify, Interval: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = in.Start(ctx) }()

	key := KeptKey("kept-acme-uid-1")
	if record, ok := KeptRecordOf(key); !ok || record != "kept-acme-uid-1" {
		t.Fatalf("KeptRecordOf(%q) = %q, %v", key, record, ok)
	}
	if _, ok := KeptRecordOf("acme"); ok {
		t.Fatal("a tenant's name was taken for a kept record")
	}
	req := Request{Key: key, Tenant: "acme", Policy: volumePolicy("standard", "backups"), Location: time.UTC, TenantUIDs: []string{"uid-1"},
		Retention: &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "short", ResourceVersion: "1"},
			Spec: v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)}}}
	in.Observe(req)
	waitFor(t, notices, key, 10*time.Second)
	if pruned := in.TakePruned(key); len(pruned) != 1 || !slices.Equal(pruned[0].IDs, []string{"b1", "b2"}) {
		t.Errorf("TakePruned(%s) = %+v, want b1 and b2", key, pruned)
	}
	if got := in.TakePruned("acme"); got != nil {
		t.Errorf("the tenant name's state holds %+v, want nothing", got)
	}
}

// failingStore is a volume that fails the deletes and writes a test chooses.
type failingStore struct {
	storage.Store
	mu        sync.Mutex
	deleteErr map[string]error
	putErr    error
}

func (s *failingStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	err := s.deleteErr[key]
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.Store.Delete(ctx, key)
}

func (s *failingStore) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	s.mu.Lock()
	err := s.putErr
	s.mu.Unlock()
	if err != nil && strings.Contains(key, "/.prunes/") {
		return 0, err
	}
	return s.Store.Put(ctx, key, r)
}

// A pruning is recorded listing exactly the backups it deleted: none when the first deletion
// fails, those before a failure, and, when the record cannot be written, the same record at a
// later look.
func TestPruningRecordsExactlyWhatWasDeleted(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	retain := &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "short", ResourceVersion: "1"},
		Spec: v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)}}
	denied := errors.New("access denied")
	setUp := func(t *testing.T) (*Inspector, *failingStore, *clocktesting.FakeClock, <-chan string, Request) {
		t.Helper()
		v, err := storage.OpenVolume(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		store := &failingStore{Store: v, deleteErr: map[string]error{}}
		for i, id := range []string{"b1", "b2", "b3"} {
			catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: "uid-acme", Schedule: "hot", ID: id, StartedAt: now.Add(time.Duration(i-3) * time.Hour)})
		}
		clk := clocktesting.NewFakeClock(now)
		notify, notices := notified()
		in := New(Options{Clock: clk, Notify: notify, Interval: time.Minute})
		in.openStore = func(context.Context, v1alpha1.BackupStorage) (storage.Store, error) { return store, nil }
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go func() { _ = in.Start(ctx) }()
		req := Request{Tenant: "acme", Policy: volumePolicy("standard", "backups"), Location: time.UTC, TenantUIDs: []string{"uid-acme"}, Retention: retain}
		return in, store, clk, notices, req
	}
	look := func(t *testing.T, in *Inspector, clk *clocktesting.FakeClock, notices <-chan string, req Request) {
		t.Helper()
		clk.Step(time.Minute)
		in.Observe(req)
		waitFor(t, notices, "acme", 10*time.Second)
	}
	recorded := func(t *testing.T, store storage.Store) [][]string {
		t.Helper()
		records, _, err := catalog.ReadPruneRecords(context.Background(), store, "acme", "uid-acme", 0)
		if err != nil {
			t.Fatal(err)
		}
		var out [][]string
		for _, r := range records {
			var ids []string
			for _, b := range r.Pruned {
				ids = append(ids, b.ID)
			}
			out = append(out, ids)
		}
		return out
	}

	t.Run("the first deletion fails", func(t *testing.T) {
		in, store, clk, notices, req := setUp(t)
		store.deleteErr["acme/hot/b1/"+catalog.ManifestObject] = denied
		look(t, in, clk, notices, req)
		if got := in.Observe(req)["hot"]; got.PruneErr == nil || len(got.Entries) != 3 {
			t.Fatalf("listing = %+v, want the failure and all three backups", got)
		}
		if got := recorded(t, store); len(got) != 0 {
			t.Errorf("records %v, want none: nothing was deleted", got)
		}
		if got := in.TakePruned("acme"); got != nil {
			t.Errorf("TakePruned = %+v, want nothing", got)
		}
	})
	t.Run("the second deletion fails", func(t *testing.T) {
		in, store, clk, notices, req := setUp(t)
		store.deleteErr["acme/hot/b2/"+catalog.ManifestObject] = denied
		look(t, in, clk, notices, req)
		if got := recorded(t, store); !reflect.DeepEqual(got, [][]string{{"b1"}}) {
			t.Errorf("records %v, want one of b1 alone", got)
		}
		records, _, _ := catalog.ReadPruneRecords(context.Background(), store, "acme", "uid-acme", 0)
		if len(records) == 1 && records[0].Due != 2 {
			t.Errorf("record says %d were due, want 2", records[0].Due)
		}
	})
	t.Run("the record cannot be written at first", func(t *testing.T) {
		in, store, clk, notices, req := setUp(t)
		store.putErr = denied
		look(t, in, clk, notices, req)
		if got := in.Observe(req)["hot"]; len(got.Entries) != 1 {
			t.Fatalf("listing = %+v, want b3 alone: the backups go whether or not the record can be written", got)
		}
		if got := recorded(t, store); len(got) != 0 {
			t.Fatalf("records %v, want none while writing is refused", got)
		}
		store.mu.Lock()
		store.putErr = nil
		store.mu.Unlock()
		look(t, in, clk, notices, req)
		if got := recorded(t, store); !reflect.DeepEqual(got, [][]string{{"b1", "b2"}}) {
			t.Errorf("records %v, want the first look's, of b1 and b2", got)
		}
		look(t, in, clk, notices, req)
		if got := recorded(t, store); len(got) != 1 {
			t.Errorf("records %v, want it written once", got)
		}
		if got := in.TakePruned("acme"); len(got) != 1 {
			t.Errorf("TakePruned = %+v, want the one pruning, told once", got)
		}
	})
	t.Run("no Tenant UID", func(t *testing.T) {
		in, store, clk, notices, req := setUp(t)
		req.TenantUIDs = nil
		look(t, in, clk, notices, req)
		if got := in.Observe(req)["hot"]; got.PruneErr == nil || len(got.Entries) != 3 {
			t.Errorf("listing = %+v, want nothing pruned: it could not be recorded", got)
		}
		if got := recorded(t, store); len(got) != 0 {
			t.Errorf("records %v, want none", got)
		}
	})
}
