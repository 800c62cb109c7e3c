package catalog_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"k8s.io/utils/ptr"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
	"github.com/tenantops/tenant-operator/internal/retention"
	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/stack"
)

// writeBackup lays out a complete backup with 1 KiB of random data, so that backup.Verify can check
// it.
func writeBackup(t *testing.T, store storage.Store, tenant, schedule, id string, started time.Time) {
	t.Helper()
	data := make([]byte, 1024)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: tenant, Schedule: schedule, ID: id, StartedAt: started, Data: data})
}

// verify runs the backup agent's checksum verification, which records its outcome next to the
// manifest; wantOK false expects the backup to fail it.
func verify(t *testing.T, store storage.Store, tenant, schedule, id string, wantOK bool) {
	t.Helper()
	_, v, err := backup.Verify(context.Background(), backup.VerifyOptions{Store: store, Tenant: tenant, Schedule: schedule, BackupID: id,
		// These backups are unsigned: pruning, not signing, is what these tests are about.
		Trust: catalog.Trust{AllowUnsigned: true}})
	var failed *backup.VerificationFailedError
	switch {
	case wantOK && err != nil, !wantOK && !errors.As(err, &failed):
		t.Fatalf("verify %s/%s/%s: %v (want ok %v)", tenant, schedule, id, err, wantOK)
	case v.OK != wantOK:
		t.Fatalf("verify %s/%s/%s recorded ok %v, want %v", tenant, schedule, id, v.OK, wantOK)
	}
}

// bucketObject is what the server says about one object; any change to it (content, rewrite)
// shows in its ETag or modification time.
type bucketObject struct {
	ETag     string
	Size     int64
	Modified time.Time
}

func snapshot(t *testing.T, srv *stack.S3) map[string]bucketObject {
	t.Helper()
	out := map[string]bucketObject{}
	for o := range srv.Client.ListObjects(context.Background(), srv.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list bucket: %v", o.Err)
		}
		out[o.Key] = bucketObject{ETag: o.ETag, Size: o.Size, Modified: o.LastModified}
	}
	return out
}

// TestPruneOnS3 prunes one tenant's schedule on a real S3-compatible server (versitygw) and checks
// that exactly the backups the policy names are gone, every object of each, and that every other
// object in the bucket is untouched: the tenant's other schedule, another tenant, an unfinished
// backup, objects outside the backup layout and outside the store's prefix.
func TestPruneOnS3(t *testing.T) {
	ctx := context.Background()
	srv := stack.StartS3(t)
	loc, err := storage.ParseLocation(srv.Location("team/backups"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.OpenS3(ctx, loc, storage.Credentials{AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	ams := amsterdam(t)

	// acme/nightly, in Amsterdam days: n08 is 00:30 on 10 May, n07 23:30 on 8 May, n04 01:30 on
	// 30 April. n01 passed verification, n04 failed it.
	nightly := []struct {
		id, started string
	}{
		{"n01", "2026-03-01T01:00:00Z"}, {"n02", "2026-03-20T01:00:00Z"}, {"n03", "2026-04-10T01:00:00Z"},
		{"n04", "2026-04-29T23:30:00Z"}, {"n05", "2026-05-07T01:00:00Z"}, {"n06", "2026-05-08T01:00:00Z"},
		{"n07", "2026-05-08T21:30:00Z"}, {"n08", "2026-05-09T22:30:00Z"}, {"n09", "2026-05-09T01:00:00Z"},
	}
	for _, b := range nightly {
		writeBackup(t, store, "acme", "nightly", b.id, at(b.started))
	}
	verify(t, store, "acme", "nightly", "n01", true)
	if _, err := store.Put(ctx, "acme/nightly/n04/"+catalog.DataObject, strings.NewReader("tampered")); err != nil {
		t.Fatal(err)
	}
	verify(t, store, "acme", "nightly", "n04", false)
	// What the run must leave alone, all of it old enough for the policy to prune were it in scope.
	for _, b := range []struct{ tenant, schedule, id string }{
		{"acme", "hourly", "h01"}, {"acme", "hourly", "h02"}, {"globex", "nightly", "n01"}, {"globex", "nightly", "n02"},
	} {
		writeBackup(t, store, b.tenant, b.schedule, b.id, at("2026-01-05T01:00:00Z"))
	}
	for key, content := range map[string]string{
		"acme/nightly/n00-unfinished/" + catalog.DataObject: "a backup whose manifest was never written",
		"acme/nightly/notes.txt":                            "not a backup",
	} {
		if _, err := store.Put(ctx, key, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.Client.PutObject(ctx, srv.Bucket, "elsewhere/acme/nightly/n02/manifest.json", strings.NewReader("{}"), 2, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	policy := v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](3), KeepMonthly: ptr.To[int32](2), MaxAge: "3d", MinKeep: ptr.To[int32](2)}
	now := at("2026-05-10T12:00:00Z")
	before := snapshot(t, srv)

	planned, err := catalog.Plan(ctx, store, "acme", "nightly", policy, now, ams)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if !mapsEqualObjects(snapshot(t, srv), before) {
		t.Fatal("Plan changed the bucket")
	}
	res, err := catalog.Prune(ctx, store, "acme", "nightly", policy, now, ams)
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	wantKeep := []string{
		"n08: newest, daily 2026-05-10, monthly 2026-05, maxAge 3d",
		"n09: daily 2026-05-09, maxAge 3d",
		"n07: daily 2026-05-08, maxAge 3d",
		"n06: maxAge 3d",
		"n04: monthly 2026-04",
		"n01: newest verified",
	}
	if got := keepLines(res.Decision); !slices.Equal(got, wantKeep) {
		t.Errorf("kept:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(wantKeep, "\n  "))
	}
	wantDeleted := []string{"n02", "n03", "n05"}
	if !slices.Equal(res.Deleted, wantDeleted) || !slices.Equal(ids(res.Prune), wantDeleted) {
		t.Errorf("deleted %v, planned %v; want %v", res.Deleted, ids(res.Prune), wantDeleted)
	}
	if !slices.Equal(keepLines(planned), keepLines(res.Decision)) || !slices.Equal(ids(planned.Prune), ids(res.Prune)) {
		t.Errorf("Plan and Prune decided differently")
	}
	// n06 is kept by maxAge alone; it turns 3 days old at 03:00 CEST on 11 May.
	if !slices.Equal(ids(res.Next), []string{"n06"}) || !res.NextAt.Equal(at("2026-05-11T01:00:00Z")) {
		t.Errorf("next %v at %v, want [n06] at 2026-05-11T01:00:00Z", ids(res.Next), res.NextAt.UTC())
	}

	// Exactly the pruned backups' objects are gone; every other object is as it was.
	want := map[string]bucketObject{}
	for key, o := range before {
		if !strings.HasPrefix(key, "team/backups/acme/nightly/n02/") && !strings.HasPrefix(key, "team/backups/acme/nightly/n03/") &&
			!strings.HasPrefix(key, "team/backups/acme/nightly/n05/") {
			want[key] = o
		}
	}
	if len(before)-len(want) != 6 { // data and manifest of each of the three
		t.Fatalf("test setup: expected 6 objects of pruned backups, found %d", len(before)-len(want))
	}
	after := snapshot(t, srv)
	for key := range want {
		if _, ok := after[key]; !ok {
			t.Errorf("%s was deleted", key)
		} else if after[key] != want[key] {
			t.Errorf("%s was rewritten", key)
		}
	}
	for key := range after {
		if _, ok := want[key]; !ok {
			t.Errorf("%s remains", key)
		}
	}
	// The backup package's own listing agrees.
	left, err := catalog.List(ctx, store, "acme", "nightly")
	if err != nil {
		t.Fatal(err)
	}
	var leftIDs []string
	for _, b := range left {
		leftIDs = append(leftIDs, b.ID)
	}
	if !slices.Equal(leftIDs, []string{"n08", "n09", "n07", "n06", "n04", "n01"}) {
		t.Errorf("catalog.List after pruning: %v", leftIDs)
	}

	// A second run at the same time prunes nothing.
	again, err := catalog.Prune(ctx, store, "acme", "nightly", policy, now, ams)
	if err != nil || len(again.Deleted) != 0 {
		t.Fatalf("second run deleted %v, err %v; want nothing", again.Deleted, err)
	}

	// A manifest that cannot be read stops pruning altogether, even of backups the policy would
	// prune: an old one that appeared since.
	writeBackup(t, store, "acme", "nightly", "n00", at("2026-02-01T01:00:00Z"))
	if _, err := store.Put(ctx, "acme/nightly/n09/"+catalog.ManifestObject, strings.NewReader("{")); err != nil {
		t.Fatal(err)
	}
	held := snapshot(t, srv)
	res, err = catalog.Prune(ctx, store, "acme", "nightly", policy, now, ams)
	var incomplete *catalog.IncompleteListingError
	if !errors.As(err, &incomplete) || !strings.Contains(err.Error(), "nothing pruned") || !strings.Contains(err.Error(), "acme/nightly/n09") {
		t.Fatalf("Prune with an unreadable manifest: %v, want an IncompleteListingError naming it", err)
	}
	if len(res.Deleted) != 0 || !mapsEqualObjects(snapshot(t, srv), held) {
		t.Fatalf("Prune deleted %v with an incomplete listing", res.Deleted)
	}
}

func mapsEqualObjects(a, b map[string]bucketObject) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// failingStore is a volume store that fails the calls a test chooses.
type failingStore struct {
	storage.Store
	listErr   error
	deleteErr map[string]error
	deleted   []string
}

func (s *failingStore) List(ctx context.Context, dir string) ([]storage.Object, error) {
	if s.listErr != nil {
		return nil, s.listErr
	}
	return s.Store.List(ctx, dir)
}

func (s *failingStore) Delete(ctx context.Context, key string) error {
	if err := s.deleteErr[key]; err != nil {
		return err
	}
	s.deleted = append(s.deleted, key)
	return s.Store.Delete(ctx, key)
}

func volumeWithBackups(t *testing.T, started ...string) *failingStore {
	t.Helper()
	v, err := storage.OpenVolume(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &failingStore{Store: v}
	for i, when := range started {
		writeBackup(t, s, "acme", "nightly", "b"+string(rune('1'+i)), at(when))
	}
	return s
}

func TestPruneRefuses(t *testing.T) {
	ctx := context.Background()
	now := at("2026-05-10T12:00:00Z")
	keepOne := v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)}
	old := []string{"2026-05-01T01:00:00Z", "2026-05-02T01:00:00Z", "2026-05-03T01:00:00Z"}

	t.Run("storage that cannot list", func(t *testing.T) {
		s := volumeWithBackups(t, old...)
		s.listErr = &storage.UnreachableError{Location: "file:///backups", Err: io.ErrUnexpectedEOF}
		res, err := catalog.Prune(ctx, s, "acme", "nightly", keepOne, now, nil)
		var incomplete *catalog.IncompleteListingError
		var unreachable *storage.UnreachableError
		if !errors.As(err, &incomplete) || !errors.As(err, &unreachable) {
			t.Fatalf("Prune error = %v, want an IncompleteListingError wrapping the storage error", err)
		}
		if len(res.Deleted)+len(s.deleted) != 0 {
			t.Fatalf("deleted %v", s.deleted)
		}
	})
	for name, tc := range map[string]struct {
		tenant, schedule string
		policy           v1alpha1.RetentionPolicySpec
		wantErr          string
	}{
		"all schedules at once": {"acme", "", keepOne, "invalid schedule"},
		"no tenant":             {"", "nightly", keepOne, "invalid tenant"},
		"an invalid policy":     {"acme", "nightly", v1alpha1.RetentionPolicySpec{MaxAge: "soon"}, "maxAge"},
	} {
		t.Run(name, func(t *testing.T) {
			s := volumeWithBackups(t, old...)
			_, err := catalog.Prune(ctx, s, tc.tenant, tc.schedule, tc.policy, now, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Prune error = %v, want it to contain %q", err, tc.wantErr)
			}
			if len(s.deleted) != 0 {
				t.Fatalf("deleted %v", s.deleted)
			}
		})
	}
}

func TestPruneStopsAtTheFirstFailure(t *testing.T) {
	ctx := context.Background()
	s := volumeWithBackups(t, "2026-05-01T01:00:00Z", "2026-05-02T01:00:00Z", "2026-05-03T01:00:00Z", "2026-05-04T01:00:00Z")
	s.deleteErr = map[string]error{"acme/nightly/b2/" + catalog.ManifestObject: errors.New("access denied")}
	res, err := catalog.Prune(ctx, s, "acme", "nightly", v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)}, at("2026-05-10T12:00:00Z"), nil)
	if err == nil || !strings.Contains(err.Error(), "pruned 1 of 3 backups of tenant acme schedule nightly, then: delete backup acme/nightly/b2: access denied") {
		t.Fatalf("Prune error = %v", err)
	}
	if !slices.Equal(res.Deleted, []string{"b1"}) || !slices.Equal(ids(res.Prune), []string{"b1", "b2", "b3"}) {
		t.Fatalf("deleted %v of planned %v, want [b1] of [b1 b2 b3]", res.Deleted, ids(res.Prune))
	}
	left, err := catalog.List(ctx, s, "acme", "nightly")
	if err != nil {
		t.Fatal(err)
	}
	var leftIDs []string
	for _, b := range left {
		leftIDs = append(leftIDs, b.ID)
	}
	if !slices.Equal(leftIDs, []string{"b4", "b3", "b2"}) {
		t.Fatalf("left %v, want [b4 b3 b2]", leftIDs)
	}
}

// A deletion that fails after the backup's manifest went has deleted the backup as far as
// anyone can tell: the run counts it, so that its record names it.
func TestPruneCountsABackupWhoseManifestWent(t *testing.T) {
	ctx := context.Background()
	s := volumeWithBackups(t, "2026-05-01T01:00:00Z", "2026-05-02T01:00:00Z", "2026-05-03T01:00:00Z")
	s.deleteErr = map[string]error{"acme/nightly/b2/" + catalog.DataObject: errors.New("connection reset")}
	res, err := catalog.Prune(ctx, s, "acme", "nightly", v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)}, at("2026-05-10T12:00:00Z"), nil)
	var unfinished *catalog.UnfinishedDeleteError
	if !errors.As(err, &unfinished) || !strings.Contains(err.Error(), "pruned 1 of 2 backups") {
		t.Fatalf("Prune error = %v, want an UnfinishedDeleteError after 1 of 2", err)
	}
	if !slices.Equal(res.Deleted, []string{"b1", "b2"}) {
		t.Fatalf("deleted %v, want b1 and b2, whose manifest is gone", res.Deleted)
	}
	if left, err := catalog.List(ctx, s, "acme", "nightly"); err != nil || len(left) != 1 || left[0].ID != "b3" {
		t.Fatalf("left %+v, %v; want b3 alone", left, err)
	}
}

// at parses an RFC 3339 time.
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func amsterdam(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatalf("load Europe/Amsterdam: %v", err)
	}
	return loc
}

// keepLines renders survivors as "id: reason, reason", newest first, for readable comparisons.
func keepLines(d retention.Decision) []string {
	var out []string
	for _, k := range d.Keep {
		out = append(out, k.ID+": "+strings.Join(k.Reasons, ", "))
	}
	return out
}

func ids(cs []retention.Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}
