package backup

import (
	"archive/tar"
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/tenantops/tenant-operator/internal/catalog"
)

// baseTar is what a physical backup's manifest needs from pg_basebackup's tar stream, read from
// it as it passes to storage: the backup label (where replay starts), the control file (whose
// cluster it is) and the backup_manifest (where the backup is consistent; and the next incremental
// backup is taken against it).
type baseTar struct {
	startLSN           catalog.LSN
	startTimeline      uint32
	incrementalFromLSN catalog.LSN
	systemID           uint64
	walRanges          []walRange
	// manifestSize is the backup_manifest member's size; zero when the stream had none.
	manifestSize int64
}

type walRange struct {
	Timeline uint32 `json:"Timeline"`
	Start    string `json:"Start-LSN"`
	End      string `json:"End-LSN"`
}

// Members of the base tar that are read, and how much of them at most: they are small, and a
// larger one is not PostgreSQL's.
const (
	memberLabel    = "backup_label"
	memberControl  = "global/pg_control"
	memberManifest = "backup_manifest"
	maxLabelSize   = 64 << 10
)

// inspectBaseTar reads a tar stream to its end, copying the backup_manifest member to manifest.
// The rest of the stream is read (the caller tees it to storage), not kept.
func inspectBaseTar(r io.Reader, manifest io.Writer) (baseTar, error) {
	var bt baseTar
	tr := tar.NewReader(r)
	// Files pass in pieces of up to 1 MiB (a pipe's depth: growPipe), not io.Discard's 8 KiB:
	// each piece is a read from pg_basebackup's pipe and a write into the compressor, which the
	// caller tees the stream to.
	buf := make([]byte, 1<<20)
	var label []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return bt, fmt.Errorf("read pg_basebackup's tar: %w", err)
		}
		switch h.Name {
		case memberLabel:
			if label, err = io.ReadAll(io.LimitReader(tr, maxLabelSize)); err != nil {
				return bt, fmt.Errorf("read backup_label: %w", err)
			}
		case memberControl:
			// ControlFileData starts with the system identifier, in the machine's byte order:
			// the agent runs next to the server, on the same architecture.
			var id [8]byte
			if _, err := io.ReadFull(tr, id[:]); err != nil {
				return bt, fmt.Errorf("read pg_control: %w", err)
			}
			bt.systemID = binary.NativeEndian.Uint64(id[:])
		case memberManifest:
			end := newTailBuffer(64 << 10) // WAL-Ranges are at the end
			n, err := io.Copy(io.MultiWriter(manifest, end), tr)
			if err != nil {
				return bt, fmt.Errorf("read backup_manifest: %w", err)
			}
			bt.manifestSize = n
			if bt.walRanges, err = manifestWALRanges([]byte(end.String())); err != nil {
				return bt, err
			}
		}
		if _, err := io.CopyBuffer(discard{}, tr, buf); err != nil {
			return bt, fmt.Errorf("read pg_basebackup's tar: %w", err)
		}
	}
	// The two blocks of zeros that end a tar, and pg_basebackup's padding after them.
	if _, err := io.CopyBuffer(discard{}, r, buf); err != nil {
		return bt, fmt.Errorf("read pg_basebackup's tar: %w", err)
	}
	if label == nil || bt.systemID == 0 || bt.manifestSize == 0 {
		return bt, errors.New("pg_basebackup's tar lacks backup_label, global/pg_control or backup_manifest")
	}
	return bt, bt.parseLabel(label)
}

var labelLineRE = regexp.MustCompile(`^([A-Z ]+): (.*)$`)

// parseLabel reads backup_label's START WAL LOCATION, START TIMELINE and INCREMENTAL FROM LSN.
func (bt *baseTar) parseLabel(label []byte) error {
	sc := bufio.NewScanner(strings.NewReader(string(label)))
	for sc.Scan() {
		m := labelLineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var err error
		switch m[1] {
		case "START WAL LOCATION":
			bt.startLSN, err = catalog.ParseLSN(strings.Fields(m[2])[0])
		case "START TIMELINE":
			var tli uint64
			tli, err = strconv.ParseUint(m[2], 10, 32)
			bt.startTimeline = uint32(tli)
		case "INCREMENTAL FROM LSN":
			bt.incrementalFromLSN, err = catalog.ParseLSN(m[2])
		}
		if err != nil {
			return fmt.Errorf("backup_label: %s: %w", m[1], err)
		}
	}
	if bt.startLSN == 0 || bt.startTimeline == 0 {
		return errors.New("backup_label names no START WAL LOCATION or START TIMELINE")
	}
	return nil
}

var walRangesRE = regexp.MustCompile(`"WAL-Ranges"\s*:\s*(\[[^\]]*\])`)

// manifestWALRanges finds the WAL-Ranges near the end of a backup_manifest.
func manifestWALRanges(tail []byte) ([]walRange, error) {
	m := walRangesRE.FindSubmatch(tail)
	if m == nil {
		return nil, errors.New("backup_manifest has no WAL-Ranges")
	}
	var ranges []walRange
	if err := json.Unmarshal(m[1], &ranges); err != nil || len(ranges) == 0 {
		return nil, fmt.Errorf("backup_manifest's WAL-Ranges are unreadable: %v", err)
	}
	return ranges, nil
}

// stop is where the backup is consistent: the end of its last WAL range.
func (bt baseTar) stop() (catalog.LSN, uint32, error) {
	last := bt.walRanges[len(bt.walRanges)-1]
	lsn, err := catalog.ParseLSN(last.End)
	if err != nil {
		return 0, 0, fmt.Errorf("backup_manifest's End-LSN: %w", err)
	}
	return lsn, last.Timeline, nil
}

// discard is io.Discard without its ReadFrom, so that io.CopyBuffer reads with the buffer given.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
