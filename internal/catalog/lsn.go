package catalog

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a position in PostgreSQL's write-ahead log, a byte offset. Its text form is PostgreSQL's
// own, two hexadecimal halves separated by a slash ("0/3000028"), so that what manifests and
// messages show can be pasted into recovery_target_lsn or pg_waldump.
type LSN uint64

// ParseLSN reads PostgreSQL's text form, with or without the zero padding newer servers print.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("invalid LSN %q: want two hexadecimal numbers separated by a slash, e.g. 0/3000028", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("invalid LSN %q: want two hexadecimal numbers separated by a slash, e.g. 0/3000028", s)
	}
	return LSN(h<<32 | l), nil
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF) }

// MarshalText writes the text form, so that manifests show LSNs as PostgreSQL does.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads the text form.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// DefaultWALSegmentSize is initdb's default; a cluster may have been made with another
// (--wal-segsize), which its base backups record.
const DefaultWALSegmentSize = 16 << 20

// SegmentOf is the number of the WAL segment holding lsn.
func SegmentOf(lsn LSN, segSize int64) uint64 { return uint64(lsn) / uint64(segSize) }
