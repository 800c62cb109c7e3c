package backup

import (
	"bytes"
	"fmt"
	"time"

	"github.com/tenantops/tenant-operator/internal/catalog"
)

// segmentBuffer assembles one WAL segment from the replication stream, in memory: wal-receive
// runs where the tenant cannot look, and plaintext WAL never touches its disk. The stream's
// bytes are contiguous, so the buffer only ever holds the segment's first filled bytes.
type segmentBuffer struct {
	size     int64
	data     []byte
	start    catalog.LSN // the segment's first byte
	filled   int64
	timeline uint32
	// written is the server's clock when it sent the segment's last bytes: no commit in the
	// segment is later, which is what a restore to a time needs to know of it.
	written time.Time
}

func newSegmentBuffer(size int64) *segmentBuffer {
	return &segmentBuffer{size: size, data: make([]byte, size)}
}

// reset starts the buffer on the segment that holds pos, on timeline tli, with the bytes before
// pos counted as received: the caller starts streaming at a segment's start, or continues a
// segment across a timeline switch, whose earlier bytes the buffer already holds.
func (b *segmentBuffer) reset(pos catalog.LSN, tli uint32) {
	b.start = pos - pos%catalog.LSN(b.size)
	b.filled = int64(pos - b.start)
	b.timeline = tli
	b.written = time.Time{}
}

// pos is where the next byte of the stream belongs.
func (b *segmentBuffer) pos() catalog.LSN { return b.start + catalog.LSN(b.filled) }

// end is the position just past the segment: what the server may recycle once it is archived.
func (b *segmentBuffer) end() catalog.LSN { return b.start + catalog.LSN(b.size) }

func (b *segmentBuffer) complete() bool { return b.filled == b.size }

// name is the segment's file name, as PostgreSQL names it on this timeline.
func (b *segmentBuffer) name() string {
	return catalog.SegmentName(b.timeline, uint64(b.start)/uint64(b.size), b.size)
}

// add copies the stream's bytes that start at walStart into the segment, up to its end, and
// returns how many it took: a message may cross into the next segment, whose bytes the caller
// adds to the next buffer once this one is handed on. A message that does not continue where the
// stream left off is refused: a gap would archive a segment with a hole in it.
func (b *segmentBuffer) add(walStart catalog.LSN, data []byte, sent time.Time) (int, error) {
	if walStart != b.pos() {
		return 0, fmt.Errorf("replication stream sent WAL at %s, but the next byte expected is at %s", walStart, b.pos())
	}
	n := copy(b.data[b.filled:], data)
	b.filled += int64(n)
	if n > 0 && sent.After(b.written) {
		b.written = sent
	}
	return n, nil
}

// content is the segment's bytes for ArchiveWALContent.
func (b *segmentBuffer) content(systemID string) WALContent {
	return WALContent{SystemID: systemID, Data: bytes.NewReader(b.data), Size: b.size, WrittenAt: b.written}
}
