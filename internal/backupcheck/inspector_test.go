package backupcheck

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
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

	req := Request{Tenant: "acme", Policy: volumePolicy("standard", "backups"), Location: time.UTC,
		Retention: &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "short", ResourceVersion: "1"},
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
	req := Request{Key: key, Tenant: "acme", Policy: volumePolicy("standard", "backups"), Location: time.UTC,
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
