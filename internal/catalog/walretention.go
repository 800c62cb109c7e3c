package catalog

import (
	"fmt"
	"sort"
)

// WALDecision says which archived WAL files retention deletes.
type WALDecision struct {
	// Delete holds the files to delete, oldest first.
	Delete []WALFile
	// Keep is how many listed files stay.
	Keep int
	// FirstKept is, per system, the first segment kept: the segment where the oldest kept base
	// backup starts.
	FirstKept map[string]string
	// Held lists, per system whose WAL is all kept, why.
	Held []string
}

// DecideWAL decides which archived WAL files no kept base backup needs. kept are the backups that
// retention keeps (every schedule's, and including the newest: retention always keeps it), as
// ListEntries returned them with WithTrust; wal is ListWAL's listing.
//
// A file is deleted when it lies before the first segment of the oldest kept physical backup of
// its cluster: a segment, a .partial or a .backup file whose segment number is lower, on any
// timeline. No kept backup replays from there, and a point in time before that backup cannot be
// reached without an older one, which retention has already let go. So the WAL from the newest
// backup on, which the newest good restore needs, always stays. Timeline history files always stay:
// they are tiny, and recovery reads them to follow and to choose timelines. WAL of a cluster with
// no kept physical backup stays whole (Held): it may be a new cluster whose first base backup is
// still running, and only a person knows whether a predecessor's archive may go. A data object
// whose upload never finished is judged like the file it was to be.
func DecideWAL(kept []Entry, wal []WALFile) WALDecision {
	d := WALDecision{FirstKept: map[string]string{}}
	type cut struct {
		segNo   uint64
		segSize int64
		name    string
		mixed   bool
	}
	cuts := map[string]*cut{}
	// A kept backup whose signature does not check decides nothing (a forged one could claim a
	// late start) but holds its cluster's WAL whole: it may be real, signed by a key rotated away,
	// and the one restored; the WAL it needs must not go because a newer backup starts later.
	untrusted := map[string]bool{}
	for _, b := range kept {
		p := b.Physical
		if p == nil {
			continue
		}
		if !b.Signature.Trusted() {
			untrusted[p.SystemID] = true
			continue
		}
		c := cuts[p.SystemID]
		switch {
		case c == nil:
			cuts[p.SystemID] = &cut{segNo: p.StartSegment(), segSize: p.WALSegmentSize, name: SegmentName(p.Timeline, p.StartSegment(), p.WALSegmentSize)}
		case c.segSize != p.WALSegmentSize:
			c.mixed = true
		case p.StartSegment() < c.segNo:
			c.segNo, c.name = p.StartSegment(), SegmentName(p.Timeline, p.StartSegment(), p.WALSegmentSize)
		}
	}
	held := map[string]bool{}
	for _, f := range wal {
		c := cuts[f.SystemID]
		switch {
		case untrusted[f.SystemID]:
			if !held[f.SystemID] {
				held[f.SystemID] = true
				d.Held = append(d.Held, fmt.Sprintf("system %s: a kept backup of this cluster has a signature that does not check; its WAL is kept whole", f.SystemID))
			}
		case c == nil:
			if !held[f.SystemID] {
				held[f.SystemID] = true
				d.Held = append(d.Held, fmt.Sprintf("system %s: no kept physical backup of this cluster; its WAL is kept whole", f.SystemID))
			}
		case c.mixed:
			if !held[f.SystemID] {
				held[f.SystemID] = true
				d.Held = append(d.Held, fmt.Sprintf("system %s: its kept backups disagree on the WAL segment size; its WAL is kept whole", f.SystemID))
			}
		case f.Kind != WALTimelineHistory && f.SegNo(c.segSize) < c.segNo:
			d.Delete = append(d.Delete, f)
			continue
		}
		d.Keep++
	}
	for system, c := range cuts {
		if !c.mixed && !untrusted[system] {
			d.FirstKept[system] = c.name
		}
	}
	sort.SliceStable(d.Delete, func(i, j int) bool {
		a, b := d.Delete[i], d.Delete[j]
		if a.SystemID != b.SystemID {
			return a.SystemID < b.SystemID
		}
		sa, sb := a.SegNo(cuts[a.SystemID].segSize), b.SegNo(cuts[b.SystemID].segSize)
		if sa != sb {
			return sa < sb
		}
		return a.Name < b.Name
	})
	return d
}
