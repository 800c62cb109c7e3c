package backupcheck

import (
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
)

// TestWALArchivingVerdict: the WALArchiving condition from the receivers' readiness and the look
// at the archive, one table row per story.
func TestWALArchivingVerdict(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	ready := Receiver{Name: "wal-acme-hot", Ready: true, Since: now.Add(-time.Hour)}
	backup := catalog.Entry{}
	backup.ID, backup.FinishedAt = "20261202T110000Z", now.Add(-time.Hour)
	window := &WALListing{Files: 40, HasWindow: true, Window: catalog.Window{EarliestTime: now.Add(-2 * time.Hour), LatestTime: now.Add(-time.Minute), Backups: 1}}
	for _, tc := range []struct {
		name     string
		receiver Receiver
		listing  Listing
		looked   bool
		status   metav1.ConditionStatus
		reason   string
	}{
		{"receiver not made yet", Receiver{}, Listing{}, false, metav1.ConditionUnknown, v1alpha1.ReasonProgressing},
		{"receiver starting", Receiver{Name: "wal-acme-hot", Since: now.Add(-time.Minute)}, Listing{}, true, metav1.ConditionUnknown, v1alpha1.ReasonProgressing},
		{"receiver unready past the grace", Receiver{Name: "wal-acme-hot", Since: now.Add(-6 * time.Minute)}, Listing{WAL: window}, true, metav1.ConditionFalse, v1alpha1.ReasonFailing},
		{"archive not looked at yet", ready, Listing{}, false, metav1.ConditionUnknown, v1alpha1.ReasonProgressing},
		{"archive cannot be listed", ready, Listing{WAL: &WALListing{Err: errors.New("503")}}, true, metav1.ConditionFalse, v1alpha1.ReasonFailing},
		{"streaming, no base backup yet", ready, Listing{WAL: &WALListing{Files: 3}}, true, metav1.ConditionTrue, v1alpha1.ReasonHealthy},
		{"streaming, window covers the newest backup", ready, Listing{Entries: []catalog.Entry{backup}, WAL: window}, true, metav1.ConditionTrue, v1alpha1.ReasonHealthy},
		{"newest backup's WAL missing long after it finished", ready, Listing{Entries: []catalog.Entry{backup}, WAL: &WALListing{Files: 2}}, true, metav1.ConditionFalse, v1alpha1.ReasonLagging},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w walSummary
			w.add("hot", tc.listing, tc.looked, tc.receiver, now)
			c := w.condition()
			if c.Status != tc.status || c.Reason != tc.reason {
				t.Errorf("got %s/%s (%s), want %s/%s", c.Status, c.Reason, c.Message, tc.status, tc.reason)
			}
		})
	}
	var none walSummary
	if none.condition() != nil {
		t.Error("a policy without physical schedules has a WALArchiving condition")
	}
	// The worst schedule decides.
	var two walSummary
	two.add("hot", Listing{WAL: window}, true, ready, now)
	two.add("cold", Listing{}, true, Receiver{Name: "wal-acme-cold", Since: now.Add(-time.Hour)}, now)
	if c := two.condition(); c.Reason != v1alpha1.ReasonFailing {
		t.Errorf("one failing schedule of two: %s", c.Reason)
	}
}

// TestPointInTimeStatus: the window and the last segment reach status and metrics; a listing
// that failed shows no window rather than an old one.
func TestPointInTimeStatus(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	last := catalog.WALFile{ArchivedAt: now.Add(-30 * time.Second)}
	last.Name = "000000010000000000000042"
	l := &WALListing{Files: 12, LastArchived: &last, HasWindow: true,
		Window: catalog.Window{EarliestTime: now.Add(-48 * time.Hour), LatestTime: now.Add(-30 * time.Second), Backups: 2}}
	st, m := pointInTime(l, Receiver{Ready: true})
	if st.LastArchivedSegment != last.Name || st.BaseBackups != 2 || st.WALFiles != 12 ||
		!st.EarliestTime.Equal(&metav1.Time{Time: now.Add(-48 * time.Hour)}) || !m.ReceiverReady || !m.LatestTime.Equal(now.Add(-30*time.Second)) {
		t.Errorf("status %+v, metrics %+v", st, m)
	}
	if st, m := pointInTime(&WALListing{Err: errors.New("timeout")}, Receiver{}); st != nil || m.ReceiverReady {
		t.Errorf("a failed listing gave status %+v", st)
	}
}
