package backup

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// SystemIDOf reads the database system identifier of the cluster in dataDir from
// global/pg_control, whose first field it is. PostgreSQL runs archive_command and restore_command
// in the data directory, so the agent learns whose WAL it handles without being told; during a
// restore the control file is the base backup's, of the same cluster.
func SystemIDOf(dataDir string) (string, error) {
	f, err := os.Open(filepath.Join(dataDir, "global", "pg_control"))
	if err != nil {
		return "", fmt.Errorf("read the cluster's system identifier: %w (run in the data directory, as PostgreSQL does, or pass --pgdata)", err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return "", fmt.Errorf("read the cluster's system identifier from %s: %w", f.Name(), err)
	}
	// The control file is in the server's byte order; the agent runs beside the server.
	return strconv.FormatUint(binary.NativeEndian.Uint64(b[:]), 10), nil
}

// segmentHeader is what the long header at the start of every WAL segment says about it.
type segmentHeader struct {
	systemID string
	segSize  int64
}

// Offsets in XLogLongPageHeaderData: the short header (magic, info, timeline, page address,
// remaining length) padded to 24 bytes, then the system identifier and the segment size.
const (
	longHeaderSysID   = 24
	longHeaderSegSize = 32
	longHeaderSize    = 40
)

// readSegmentHeader reads a segment's long page header.
func readSegmentHeader(f io.ReaderAt, name string) (segmentHeader, error) {
	var b [longHeaderSize]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return segmentHeader{}, fmt.Errorf("read the header of WAL segment %s: %w", name, err)
	}
	return segmentHeader{
		systemID: strconv.FormatUint(binary.NativeEndian.Uint64(b[longHeaderSysID:]), 10),
		segSize:  int64(binary.NativeEndian.Uint32(b[longHeaderSegSize:])),
	}, nil
}
