package catalog

import (
	"sort"
	"time"
)

// Reach is how far the WAL archive carries one physical base backup: from the moment it is
// consistent to the end of the WAL that follows it without a gap.
type Reach struct {
	// Backup is the base backup's id, Schedule its schedule.
	Backup, Schedule string
	SystemID         string
	// FromLSN and FromTime are where the backup is consistent: the earliest target it reaches.
	FromLSN  LSN
	FromTime time.Time
	// ToLSN is the end of the last segment of the unbroken run of archived WAL that starts with
	// the backup's first segment, following timeline switches to the newest timeline that
	// continues the backup's (as recovery_target_timeline=latest does).
	ToLSN LSN
	// ToTime is when that last segment was archived: everything committed before its switch is
	// in the archive. Later than the last commit it holds by up to the archiving lag.
	ToTime time.Time
	// Timeline and LastSegment are that segment's timeline and name.
	Timeline    uint32
	LastSegment WALFile
}

// Window is the span a tenant can be restored to, for its status: from the oldest restorable base
// backup's consistency to the end of the archived WAL after the newest.
type Window struct {
	SystemID string
	// EarliestTime and EarliestLSN are where the oldest restorable base backup is consistent;
	// EarliestBackup is its id.
	EarliestTime   time.Time
	EarliestLSN    LSN
	EarliestBackup string
	// LatestTime, LatestLSN and LatestTimeline are the end of the archived WAL (see Reach.ToTime).
	LatestTime     time.Time
	LatestLSN      LSN
	LatestTimeline uint32
	// LastSegment is the name of the last archived segment of the window.
	LastSegment string
	// Backups is how many base backups can be restored within the window.
	Backups int
}

// RecoverableWindow computes the window from listed backups (ListEntries, with WithTrust) and the
// WAL archive (ListWAL). Only the newest cluster's backups count (the system of the newest
// physical backup: a restored or re-created cluster starts a new window); logical backups, backups
// whose signature does not check and incremental backups whose chain is broken are left out, and
// so is a backup whose WAL up to its consistency is not all archived. ok is false when no backup
// can be restored to any point.
func RecoverableWindow(backups []Entry, wal []WALFile) (w Window, ok bool) {
	reaches := Reaches(backups, wal)
	if len(reaches) == 0 {
		return Window{}, false
	}
	system := reaches[0].SystemID // newest first
	for _, r := range reaches {
		if r.SystemID != system {
			continue
		}
		w.Backups++
		if w.EarliestBackup == "" || r.FromLSN < w.EarliestLSN {
			w.EarliestTime, w.EarliestLSN, w.EarliestBackup = r.FromTime, r.FromLSN, r.Backup
		}
		if r.ToLSN > w.LatestLSN || (r.ToLSN == w.LatestLSN && r.Timeline > w.LatestTimeline) {
			w.LatestTime, w.LatestLSN, w.LatestTimeline, w.LastSegment = r.ToTime, r.ToLSN, r.Timeline, r.LastSegment.Name
		}
	}
	w.SystemID = system
	return w, true
}

// Reaches is how far the archive carries each restorable physical backup, newest backup first
// (see RecoverableWindow for which count).
func Reaches(backups []Entry, wal []WALFile) []Reach {
	byID := map[string]Entry{}
	for _, b := range backups {
		if b.Physical != nil && b.Signature.Trusted() {
			byID[b.Tenant+"/"+b.Schedule+"/"+b.ID] = b
		}
	}
	type reached struct {
		Reach
		started time.Time
	}
	type archiveKey struct {
		system  string
		segSize int64
	}
	archives := map[archiveKey]*archive{}
	var found []reached
	for _, b := range backups {
		if b.Physical == nil || !b.Signature.Trusted() || !chainComplete(byID, b) {
			continue
		}
		p := b.Physical
		k := archiveKey{p.SystemID, p.WALSegmentSize}
		if archives[k] == nil {
			archives[k] = newArchive(p.SystemID, p.WALSegmentSize, wal)
		}
		r, ok := archives[k].reach(p)
		if !ok {
			continue
		}
		r.Backup, r.Schedule = b.ID, b.Schedule
		found = append(found, reached{r, b.StartedAt})
	}
	sort.SliceStable(found, func(i, j int) bool {
		if !found[i].started.Equal(found[j].started) {
			return found[i].started.After(found[j].started)
		}
		return found[i].FromLSN > found[j].FromLSN
	})
	out := make([]Reach, len(found))
	for i, r := range found {
		out[i] = r.Reach
	}
	return out
}

// chainComplete says that every backup an incremental backup needs is there.
func chainComplete(byID map[string]Entry, b Entry) bool {
	for seen := 0; b.Physical.Parent != ""; seen++ {
		parent, ok := byID[b.Tenant+"/"+b.Schedule+"/"+b.Physical.Parent]
		if !ok || seen > len(byID) {
			return false
		}
		b = parent
	}
	return true
}

// archive is one cluster's archived WAL, indexed for following it.
type archive struct {
	segSize  int64
	segments map[segKey]WALFile
	// histories holds each timeline's switch points, from its history file.
	histories map[uint32][]TimelineSwitch
}

type segKey struct {
	tli   uint32
	segNo uint64
}

func newArchive(system string, segSize int64, wal []WALFile) *archive {
	a := &archive{segSize: segSize, segments: map[segKey]WALFile{}, histories: map[uint32][]TimelineSwitch{}}
	for _, f := range wal {
		// A description whose data object is gone promises what no restore can read.
		if f.SystemID != system || !f.Archived || !f.HasObject {
			continue
		}
		switch f.Kind {
		case WALSegment:
			a.segments[segKey{f.Timeline, f.SegNo(segSize)}] = f
		case WALTimelineHistory:
			a.histories[f.Timeline] = f.History
		}
	}
	return a
}

// reach follows the archive from a backup's first segment for as long as it is unbroken.
func (a *archive) reach(p *PhysicalInfo) (Reach, bool) {
	var last WALFile
	found := false
	n := a.follow(p, func(f WALFile) { last, found = f, true })
	if !found || n <= p.StopSegment() {
		return Reach{}, false // the archive does not reach the backup's consistency
	}
	return Reach{
		SystemID: p.SystemID, FromLSN: p.StopLSN, FromTime: p.StopTime,
		ToLSN: LSN(n * uint64(a.segSize)), ToTime: last.ArchivedAt, Timeline: last.Timeline, LastSegment: last,
	}, true
}

// follow calls f on each segment of the unbroken run of archived WAL from a backup's first
// segment, in order, following timeline switches as recovery does; it returns the number of the
// first segment missing.
func (a *archive) follow(p *PhysicalInfo, f func(WALFile)) uint64 {
	path := a.path(p)
	n := p.StartSegment()
	for {
		seg, ok := a.segments[segKey{path.timelineAt(n, a.segSize), n}]
		if !ok {
			return n
		}
		f(seg)
		n++
	}
}

// RecoverySegments lists the archived segments that recovery from a physical backup reads, in the
// order it asks for them: from the backup's first segment, on the timelines that
// recovery_target_timeline=latest follows, to the end of the unbroken run (the backup's
// Reach.LastSegment). Only segments whose description and data object were both listed count.
// A restore fetches them ahead of recovery (see the agent's WAL prefetch).
func RecoverySegments(p *PhysicalInfo, wal []WALFile) []WALFile {
	var out []WALFile
	newArchive(p.SystemID, p.WALSegmentSize, wal).follow(p, func(f WALFile) { out = append(out, f) })
	return out
}

// timelinePath is the timelines recovery goes through from a backup's: each leg's timeline and
// the LSN where it ends (the last leg, zero, does not end).
type timelinePath []leg

type leg struct {
	tli uint32
	end LSN
}

func (tp timelinePath) timelineAt(segNo uint64, segSize int64) uint32 {
	for _, l := range tp {
		// The segment holding a switch point is read from the new timeline, which begins there.
		if l.end == 0 || segNo < SegmentOf(l.end, segSize) {
			return l.tli
		}
	}
	return tp[len(tp)-1].tli
}

// path picks the newest timeline whose history continues the backup's timeline after the backup,
// as recovery_target_timeline=latest does, and lays out the legs to it.
func (a *archive) path(p *PhysicalInfo) timelinePath {
	target := p.Timeline
	for tli, hist := range a.histories {
		if tli > target && continues(hist, p) {
			target = tli
		}
	}
	var tp timelinePath
	if target != p.Timeline {
		for _, s := range a.histories[target] {
			if s.Parent >= p.Timeline {
				tp = append(tp, leg{s.Parent, s.Switch})
			}
		}
	}
	return append(tp, leg{tli: target})
}

// continues says that a timeline with this history branched off the backup's timeline after the
// backup was consistent (or off a later timeline that did), so recovery from the backup can
// follow it.
func continues(hist []TimelineSwitch, p *PhysicalInfo) bool {
	for _, s := range hist {
		if s.Parent == p.Timeline {
			return s.Switch >= p.StopLSN
		}
	}
	return false
}
