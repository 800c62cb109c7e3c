package backup

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Compression codecs of stored objects (catalog.ObjectInfo.Compression). Every reader takes the
// codec from the object's manifest, so that backups of either codec restore whatever the default
// is when they are read.
const (
	// CompressionZstd is zstd (klauspost/compress): dumps, WAL segments, backup_manifests, and
	// physical base backups by default. About 3 times smaller than a cluster's files,
	// at about 150 to 190 MiB a second of one core of the machine in docs/performance.md.
	CompressionZstd = "zstd"
	// CompressionS2 is S2 (klauspost/compress/s2, Snappy's framing with its extensions): physical
	// base backups with --compression s2, whose size makes compression the agent's largest cost.
	// About 1.7 times smaller than a cluster's files, at three to four times zstd's speed.
	CompressionS2 = "s2"
)

// physicalCompressions are the codecs a physical base backup may be taken with (--compression).
var physicalCompressions = []string{CompressionS2, CompressionZstd}

// newCompressor compresses into w with codec; level is zstd's, ignored by S2.
func newCompressor(codec string, w io.Writer, level zstd.EncoderLevel) (io.WriteCloser, error) {
	switch codec {
	case CompressionZstd:
		// Lower concurrency than GOMAXPROCS: pg_dump and the server need the other cores, and
		// every concurrent block costs memory.
		enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(2))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return enc, nil
	case CompressionS2:
		// Two blocks of 1 MiB in flight at most: S2 compresses a block on another goroutine while
		// the next one fills, within GOMAXPROCS.
		return s2.NewWriter(w, s2.WriterConcurrency(2)), nil
	default:
		return nil, fmt.Errorf("unknown compression %q", codec)
	}
}

// decompressor is the reading side of a codec; close releases what it holds (zstd's goroutines).
type decompressor struct {
	io.Reader
	zstd *zstd.Decoder
}

// newDecompressor reads what codec compressed from r. An object whose manifest names no codec
// was written before manifests named one: zstd.
func newDecompressor(codec string, r io.Reader) (decompressor, error) {
	switch codec {
	case CompressionZstd, "":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2))
		if err != nil {
			return decompressor{}, fmt.Errorf("zstd: %w", err)
		}
		return decompressor{Reader: zr, zstd: zr}, nil
	case CompressionS2:
		return decompressor{Reader: s2.NewReader(r)}, nil
	default:
		return decompressor{}, fmt.Errorf("the object is compressed with %q, which this agent does not know (it reads %s and %s); restore it with a newer tenant-operator",
			codec, CompressionZstd, CompressionS2)
	}
}
