package backupcheck

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/metrics"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// WALListing is what one look found of a physical schedule's WAL archive. It keeps a summary, not
// the files: a week of WAL is thousands of them.
type WALListing struct {
	// Err, when set, means the archive could not be listed.
	Err error
	// Files is how many files the archive holds after pruning.
	Files int
	// LastArchived is the newest stored segment (by the time storage stored it); nil when none.
	LastArchived *catalog.WALFile
	// Window is the span the archive restores to, when HasWindow.
	Window    catalog.Window
	HasWindow bool
	// Pruned is how many files retention deleted in this look; PruneErr why it could not.
	Pruned   int
	PruneErr error
}

// lookAtWAL lists the tenant's WAL archive in a physical schedule's storage and, when prune says
// the backups' own pruning went through, deletes the WAL no kept base backup needs. kept are the
// schedule's backups after pruning; the kept backups of the policy's other physical schedules in
// the same location count too, since the archive is the tenant's, not the schedule's.
func (i *Inspector) lookAtWAL(ctx context.Context, store storage.Store, req Request, spec v1alpha1.BackupSchedule, kept []catalog.Entry, opts []catalog.ListOption, prune bool) *WALListing {
	out := &WALListing{}
	wal, err := catalog.ListWAL(ctx, store, req.Tenant, opts...)
	if err != nil {
		out.Err = err
		return out
	}
	if prune {
		all, err := i.keptInLocation(ctx, store, req, spec, kept, opts)
		if err != nil {
			// A partial view of what is kept must never decide what goes.
			out.PruneErr = err
		} else if d := catalog.DecideWAL(all, wal); len(d.Delete) > 0 {
			n, err := catalog.DeleteWAL(ctx, store, req.Tenant, d.Delete)
			out.Pruned, out.PruneErr = n, err
			if err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "Prune WAL", "tenant", req.Tenant, "schedule", spec.Name)
				if wal, err = catalog.ListWAL(ctx, store, req.Tenant, opts...); err != nil {
					out.Err = err
					return out
				}
			} else {
				wal = withoutDeleted(wal, d.Delete)
			}
		}
	}
	out.Files = len(wal)
	for idx := range wal {
		f := wal[idx]
		if f.Archived && f.Kind == catalog.WALSegment && (out.LastArchived == nil || f.ArchivedAt.After(out.LastArchived.ArchivedAt)) {
			out.LastArchived = &f
		}
	}
	out.Window, out.HasWindow = catalog.RecoverableWindow(kept, wal)
	return out
}

// keptInLocation adds to kept the backups of the policy's other physical schedules that write to
// the same location.
func (i *Inspector) keptInLocation(ctx context.Context, store storage.Store, req Request, spec v1alpha1.BackupSchedule, kept []catalog.Entry, opts []catalog.ListOption) ([]catalog.Entry, error) {
	here, err := builders.StorageLocation(spec.Storage)
	if err != nil {
		return nil, err
	}
	all := append([]catalog.Entry(nil), kept...)
	for _, other := range req.Policy.Spec.Schedules {
		if other.Name == spec.Name || !other.IsPhysical() {
			continue
		}
		if there, err := builders.StorageLocation(other.Storage); err != nil || there != here {
			continue
		}
		entries, err := catalog.ListEntries(ctx, store, req.Tenant, other.Name, opts...)
		if err != nil {
			return nil, fmt.Errorf("list backups of schedule %s sharing the WAL archive: %w", other.Name, err)
		}
		all = append(all, entries...)
	}
	return all, nil
}

func withoutDeleted(wal []catalog.WALFile, deleted []catalog.WALFile) []catalog.WALFile {
	gone := make(map[string]bool, len(deleted))
	for _, f := range deleted {
		gone[f.SystemID+"/"+f.Name] = true
	}
	out := wal[:0:0]
	for _, f := range wal {
		if !gone[f.SystemID+"/"+f.Name] {
			out = append(out, f)
		}
	}
	return out
}

// receiverGrace is how long a WAL receiver may be unready before WALArchiving says Failing: a
// start, a restart after a database restart, or a storage hiccup it retries through.
const receiverGrace = 5 * time.Minute

// lagGrace is how long after a base backup finished its WAL may still be missing from the archive
// before WALArchiving says Lagging: the backup's last segment is complete at most
// builders.ArchiveTimeout after the backup, then streamed and stored.
const lagGrace = builders.ArchiveTimeout + 10*time.Minute

// pointInTime is a physical schedule's status and metrics from its look at the WAL archive.
func pointInTime(l *WALListing, r Receiver) (*v1alpha1.PointInTimeStatus, *metrics.PointInTime) {
	m := &metrics.PointInTime{ReceiverReady: r.Ready}
	if l == nil || l.Err != nil {
		return nil, m
	}
	st := &v1alpha1.PointInTimeStatus{WALFiles: int32(l.Files)}
	if f := l.LastArchived; f != nil {
		st.LastArchivedSegment, st.LastArchivedTime = f.Name, stamp(f.ArchivedAt)
		m.LastArchived = f.ArchivedAt
	}
	if l.HasWindow {
		w := l.Window
		st.EarliestTime, st.LatestTime, st.BaseBackups = stamp(w.EarliestTime), stamp(w.LatestTime), int32(w.Backups)
		m.EarliestTime, m.LatestTime = w.EarliestTime, w.LatestTime
	}
	return st, m
}

// walState orders WALArchiving's verdicts, worst last.
type walState int

const (
	walHealthy walState = iota
	walPending
	walLagging
	walFailing
)

// walSummary gathers the physical schedules' archives into WALArchiving.
type walSummary struct {
	any      bool
	worst    walState
	messages map[walState][]string
}

func (w *walSummary) add(schedule string, l Listing, looked bool, r Receiver, now time.Time) {
	w.any = true
	state, msg := judgeWAL(schedule, l, looked, r, now)
	if w.messages == nil {
		w.messages = map[walState][]string{}
	}
	w.messages[state] = append(w.messages[state], msg)
	w.worst = max(w.worst, state)
}

// judgeWAL judges one physical schedule's archive. Storage alone cannot tell an idle database
// (which writes no WAL, and rightly archives nothing) from a stuck receiver; the receiver's
// readiness can, since its probe fails when what it received is not stored in time. Storage tells
// the lag the receiver cannot see: a base backup whose WAL is not archived long after it finished.
func judgeWAL(schedule string, l Listing, looked bool, r Receiver, now time.Time) (walState, string) {
	switch {
	case r.Name == "":
		return walPending, fmt.Sprintf("Schedule %s: the WAL receiver is being created", schedule)
	case !r.Ready && now.Sub(r.Since) >= receiverGrace:
		return walFailing, fmt.Sprintf("Schedule %s: WAL receiver %s has not been ready for %s: the database keeps the WAL it has not handed over on its own volume, which fills; see the receiver's log",
			schedule, r.Name, now.Sub(r.Since).Round(time.Minute))
	case !r.Ready:
		return walPending, fmt.Sprintf("Schedule %s: WAL receiver %s is not ready yet", schedule, r.Name)
	case !looked:
		return walPending, fmt.Sprintf("Schedule %s: looking at the WAL archive", schedule)
	case l.WAL == nil:
		return walPending, fmt.Sprintf("Schedule %s: the WAL archive has not been listed yet", schedule)
	case l.WAL.Err != nil:
		return walFailing, fmt.Sprintf("Schedule %s: the WAL archive cannot be listed: %v", schedule, l.WAL.Err)
	}
	if len(l.Entries) > 0 {
		newest := l.Entries[0]
		// Storage keeps whole seconds: WAL archived in the second the backup finished covers it.
		covered := l.WAL.HasWindow && !l.WAL.Window.LatestTime.Before(newest.FinishedAt.Truncate(time.Second))
		if !covered && now.Sub(newest.FinishedAt) > lagGrace {
			return walLagging, fmt.Sprintf("Schedule %s: the WAL of base backup %s, which finished %s ago, is not all archived: the archive is behind, or has a gap that only a new base backup closes",
				schedule, newest.ID, now.Sub(newest.FinishedAt).Round(time.Minute))
		}
	}
	if !l.WAL.HasWindow {
		return walHealthy, fmt.Sprintf("Schedule %s: WAL streams to storage; no base backup can be restored with it yet", schedule)
	}
	return walHealthy, fmt.Sprintf("Schedule %s: WAL streams to storage; %d base backups can be restored to any moment of the window in status", schedule, l.WAL.Window.Backups)
}

func (w *walSummary) condition() *metav1.Condition {
	if !w.any {
		return nil
	}
	c := &metav1.Condition{Type: v1alpha1.ConditionWALArchiving, Message: strings.Join(w.messages[w.worst], "; ")}
	switch w.worst {
	case walHealthy:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonHealthy
	case walPending:
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonProgressing
	case walLagging:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonLagging
	case walFailing:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonFailing
	}
	return c
}
