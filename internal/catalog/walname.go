package catalog

import (
	"fmt"
	"regexp"
	"strconv"
)

// WALKind is what a file that PostgreSQL archives is.
type WALKind string

const (
	// WALSegment is a whole segment: 000000010000000A0000003F.
	WALSegment WALKind = "segment"
	// WALPartial is the last, unfinished segment of a timeline that a promotion ended:
	// 000000010000000A0000003F.partial. Recovery never asks for it; it is kept for people.
	WALPartial WALKind = "partial"
	// WALBackupHistory records where a base backup started and stopped:
	// 000000010000000A0000003F.00000028.backup.
	WALBackupHistory WALKind = "backup-history"
	// WALTimelineHistory lists the switch points that led to a timeline: 00000002.history.
	// Recovery reads them to follow timelines and to choose a new one when it promotes.
	WALTimelineHistory WALKind = "timeline-history"
)

// WALName is an archived file's name as PostgreSQL makes it (archive_command's %f), parsed.
type WALName struct {
	Name     string
	Kind     WALKind
	Timeline uint32
	// Log and Seg are the segment's two halves in the name (not for timeline histories). With the
	// segment size they give the segment's number (SegNo).
	Log, Seg uint32
}

var (
	walSegmentRE = regexp.MustCompile(`^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial|\.[0-9A-F]{8}\.backup)?$`)
	walHistoryRE = regexp.MustCompile(`^([0-9A-F]{8})\.history$`)
)

// ParseWALName accepts exactly the names PostgreSQL archives, which also makes them safe as
// storage keys.
func ParseWALName(name string) (WALName, error) {
	if m := walHistoryRE.FindStringSubmatch(name); m != nil {
		tli, _ := strconv.ParseUint(m[1], 16, 32)
		return WALName{Name: name, Kind: WALTimelineHistory, Timeline: uint32(tli)}, nil
	}
	m := walSegmentRE.FindStringSubmatch(name)
	if m == nil {
		return WALName{}, fmt.Errorf("%q is not the name of a WAL file PostgreSQL archives (a segment, .partial, .backup or .history)", name)
	}
	tli, _ := strconv.ParseUint(m[1], 16, 32)
	log, _ := strconv.ParseUint(m[2], 16, 32)
	seg, _ := strconv.ParseUint(m[3], 16, 32)
	n := WALName{Name: name, Kind: WALSegment, Timeline: uint32(tli), Log: uint32(log), Seg: uint32(seg)}
	switch {
	case m[4] == ".partial":
		n.Kind = WALPartial
	case m[4] != "":
		n.Kind = WALBackupHistory
	}
	if tli == 0 {
		return WALName{}, fmt.Errorf("%q names timeline 0, which does not exist", name)
	}
	return n, nil
}

// SegNo is the segment's number, its first byte's LSN divided by the segment size.
func (n WALName) SegNo(segSize int64) uint64 {
	return uint64(n.Log)*segmentsPerLog(segSize) + uint64(n.Seg)
}

// segmentsPerLog is how many segments one "log" (the name's middle half, 4 GiB of WAL) holds.
func segmentsPerLog(segSize int64) uint64 { return 0x100000000 / uint64(segSize) }

// SegmentName is the name of segment segNo of timeline tli, as PostgreSQL names it.
func SegmentName(tli uint32, segNo uint64, segSize int64) string {
	per := segmentsPerLog(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, segNo/per, segNo%per)
}

// timelineDir is the timeline's directory in the archive: its number as in file names.
func timelineDir(tli uint32) string { return fmt.Sprintf("%08X", tli) }
