package backupcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
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

var errKilled = errors.New("the manager was killed")

// dyingStore is the storage as a manager sees it that is killed after a number of deletions of
// backup objects: from then on nothing it asks reaches the storage.
type dyingStore struct {
	storage.Store
	mu          sync.Mutex
	deletesLeft int
	dead        bool
}

func (s *dyingStore) alive() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return errKilled
	}
	return nil
}

func (s *dyingStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	if !s.dead && !strings.Contains(key, "/.prunes/") {
		if s.deletesLeft == 0 {
			s.dead = true
		}
		s.deletesLeft--
	}
	dead := s.dead
	s.mu.Unlock()
	if dead {
		return errKilled
	}
	return s.Store.Delete(ctx, key)
}

func (s *dyingStore) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := s.alive(); err != nil {
		return 0, err
	}
	return s.Store.Put(ctx, key, r)
}

func (s *dyingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	return s.Store.Get(ctx, key)
}

func (s *dyingStore) Stat(ctx context.Context, key string) (storage.Object, error) {
	if err := s.alive(); err != nil {
		return storage.Object{}, err
	}
	return s.Store.Stat(ctx, key)
}

func (s *dyingStore) List(ctx context.Context, dir string) ([]storage.Object, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	return s.Store.List(ctx, dir)
}

// A manager killed in the middle of a pruning, after some deletions and before their record:
// the next manager's first look records what the killed one deleted (from the pruning's intent,
// marked interrupted), then prunes the rest under a record of its own. Every pruned backup is in
// exactly one record, whichever deletion the kill came after; no intent is left. (Without the
// intent, the backups deleted before the kill were in no record: the fault suite's
// TestPruningManagerKilled found 37 of 436.)
func TestAPruningKilledMidwayIsRecordedByTheNextManager(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	retain := &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "short", ResourceVersion: "1"},
		Spec: v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](2)}}
	ids := []string{"b1", "b2", "b3", "b4", "b5", "b6"}
	pruned := []string{"b1", "b2", "b3", "b4"}
	// Each backup is two objects here (its manifest, deleted first, and its data), so the kill
	// comes before the first deletion, in the middle of a backup, between two, and at the last.
	for _, killAfter := range []int{0, 1, 3, 4, 7} {
		t.Run(fmt.Sprintf("killed after %d deletions", killAfter), func(t *testing.T) {
			v, err := storage.OpenVolume(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				catalogtest.Write(t, v, catalogtest.Backup{Tenant: "acme", TenantUID: "uid-acme", Schedule: "hot", ID: id, StartedAt: now.Add(time.Duration(i-len(ids)) * time.Hour)})
			}
			req := Request{Tenant: "acme", Policy: volumePolicy("standard", "backups"), Location: time.UTC, TenantUIDs: []string{"uid-acme"}, Retention: retain}
			look := func(store storage.Store) {
				t.Helper()
				clk := clocktesting.NewFakeClock(now)
				notify, notices := notified()
				in := New(Options{Clock: clk, Notify: notify, Interval: time.Minute})
				in.openStore = func(context.Context, v1alpha1.BackupStorage) (storage.Store, error) { return store, nil }
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go func() { _ = in.Start(ctx) }()
				in.Observe(req)
				waitFor(t, notices, "acme", 10*time.Second)
			}
			// The first manager dies during its first look; what it held in memory dies with it.
			look(&dyingStore{Store: v, deletesLeft: killAfter})
			// The next one starts.
			look(v)

			records, _, err := catalog.ReadPruneRecords(context.Background(), v, "acme", "uid-acme", 0)
			if err != nil {
				t.Fatal(err)
			}
			var recorded []string
			interrupted := 0
			for _, r := range records {
				for _, b := range r.Pruned {
					recorded = append(recorded, b.ID)
				}
				if r.Interrupted {
					interrupted++
				}
			}
			slices.Sort(recorded)
			if !slices.Equal(recorded, pruned) {
				t.Errorf("records name %v, want each of %v once (records: %+v)", recorded, pruned, records)
			}
			// The killed manager deleted a backup when its manifest went (the first deletion of each).
			if wantInterrupted := min(1, killAfter); interrupted != wantInterrupted {
				t.Errorf("%d records marked interrupted, want %d", interrupted, wantInterrupted)
			}
			objs, err := v.List(context.Background(), "acme/.prunes")
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if strings.Contains(o.Key, "/intent-") {
					t.Errorf("intent %s left behind", o.Key)
				}
			}
			listed, err := catalog.ListEntries(context.Background(), v, "acme", "hot")
			if err != nil {
				t.Fatal(err)
			}
			if len(listed) != 2 || listed[0].ID != "b6" || listed[1].ID != "b5" {
				t.Errorf("stored after both looks: %+v, want b6 and b5", listed)
			}
		})
	}
}
