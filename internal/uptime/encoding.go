package uptime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// encodingVersion is the first byte of MarshalBinary's output. A change of bucket width or layout
// gets a new version, and UnmarshalBinary refuses versions it does not know rather than guess.
const encodingVersion = 1

// MarshalBinary encodes the History so that it survives a manager restart (in a ConfigMap's
// binaryData, say). Runs of equal buckets are stored once, newest first, so the size follows how
// eventful the month was rather than its length:
//
//	version byte (1) | uvarint bucket seconds (300) | varint newest bucket number |
//	runs, newest first: uvarint run length, byte total, byte up
//
// Buckets older than the oldest probe are left out. A month of steady probing encodes in about
// 15 bytes; an outage adds two or three runs of 3 or 4 bytes; the worst case, every bucket
// different from its neighbours, is 8640 runs of 3 bytes, 26 KB.
func (h *History) MarshalBinary() ([]byte, error) {
	buf := make([]byte, 0, 32)
	buf = append(buf, encodingVersion)
	buf = binary.AppendUvarint(buf, uint64(bucketSeconds))
	buf = binary.AppendVarint(buf, h.newest)

	oldest := h.newest - numBuckets + 1
	// Trim the empty buckets at the old end: they carry no information.
	for oldest <= h.newest && h.buckets[slot(oldest)] == (bucket{}) {
		oldest++
	}
	for n := h.newest; n >= oldest; {
		b := h.buckets[slot(n)]
		run := uint64(0)
		for n >= oldest && h.buckets[slot(n)] == b {
			run++
			n--
		}
		buf = binary.AppendUvarint(buf, run)
		buf = append(buf, b.total, b.up)
	}
	return buf, nil
}

// newestBucketOf is the number of the newest bucket of an encoded History, read from its header
// alone; the smallest number when the data is no History of this encoding.
func newestBucketOf(data []byte) int64 {
	if len(data) == 0 || data[0] != encodingVersion {
		return math.MinInt64
	}
	width, n := binary.Uvarint(data[1:])
	if n <= 0 || width != uint64(bucketSeconds) {
		return math.MinInt64
	}
	newest, m := binary.Varint(data[1+n:])
	if m <= 0 {
		return math.MinInt64
	}
	return newest
}

// UnmarshalBinary replaces the History with one that MarshalBinary encoded.
func (h *History) UnmarshalBinary(data []byte) error {
	if len(data) == 0 {
		return errors.New("decode uptime history: empty")
	}
	if data[0] != encodingVersion {
		return fmt.Errorf("decode uptime history: unknown version %d", data[0])
	}
	rest := data[1:]
	width, n := binary.Uvarint(rest)
	if n <= 0 {
		return errors.New("decode uptime history: truncated bucket width")
	}
	if width != uint64(bucketSeconds) {
		return fmt.Errorf("decode uptime history: buckets of %d s, want %d s", width, bucketSeconds)
	}
	rest = rest[n:]
	newest, n := binary.Varint(rest)
	if n <= 0 {
		return errors.New("decode uptime history: truncated newest bucket")
	}
	rest = rest[n:]

	var decoded History
	decoded.newest = newest
	covered := int64(0)
	for len(rest) > 0 {
		run, n := binary.Uvarint(rest)
		if n <= 0 || len(rest) < n+2 {
			return errors.New("decode uptime history: truncated run")
		}
		b := bucket{total: rest[n], up: rest[n+1]}
		rest = rest[n+2:]
		if run == 0 || run > uint64(numBuckets-covered) {
			return fmt.Errorf("decode uptime history: runs cover more than %d buckets", numBuckets)
		}
		if b.up > b.total {
			return fmt.Errorf("decode uptime history: %d up of %d probes", b.up, b.total)
		}
		for i := int64(0); i < int64(run); i++ {
			decoded.buckets[slot(newest-covered-i)] = b
		}
		covered += int64(run)
	}
	*h = decoded
	return nil
}
