package uptime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
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

	r := h.reader()
	oldest := h.newest - numBuckets + 1
	// Trim the empty buckets at the old end: they carry no information.
	for oldest <= h.newest && r.at(oldest) == (bucket{}) {
		oldest++
	}
	for n := h.newest; n >= oldest; {
		b := r.at(n)
		run := uint64(0)
		for n >= oldest && r.at(n) == b {
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

	// ages holds bucket newest-i at i until the History is built from it.
	var ages [numBuckets]bucket
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
			ages[covered+i] = b
		}
		covered += int64(run)
	}
	*h = History{newest: newest}
	start := blockStart(newest)
	for n := start; n <= newest; n++ {
		h.recent[n-start] = ages[newest-n]
	}
	var day [dayLen]bucket
	for d := floorDiv(newest-numBuckets+1, dayLen); d <= floorDiv(newest, dayLen); d++ {
		for i := range day {
			n := d*dayLen + int64(i)
			day[i] = bucket{}
			if n > newest-numBuckets && n < start {
				day[i] = ages[newest-n]
			}
		}
		h.putDay(d, &day)
	}
	return nil
}

// A day of a History is held in memory, as a piece of History.days, in the shortest of three
// forms. A day without probes takes no byte. The raw form is dayLen times byte total, byte up: 576
// bytes. The packed form, used when shorter than raw, is
//
//	uvarint total of the day | uvarint up of the day | byte min total | byte width | uvarint k |
//	(k*width+7)/8 bytes: total-min of each of the k buckets with probes, width bits each, LSB first |
//	runs until dayLen buckets: uvarint length<<2|kind, then for kindMixed length bytes of up
//
// A steady day on the scheduler's grid is one run of kindUp and one total, width 0: 10 bytes.
// Totals that vary by up to three probes (an interval that does not divide five minutes, turns
// skipped while a probe ran long) take 2 bits each: about 85 bytes. An outage adds a run or two; a
// day when nothing repeats falls back to raw. The day's totals make a whole day cost nothing to
// count.
const (
	rawDayLen = int(2 * dayLen)
	// maxDayLen bounds the packed form: the header, a byte of total and of up and two of run for
	// every bucket.
	maxDayLen = 16 + 4*int(dayLen)
)

// The kinds of run of a packed day.
const (
	kindEmpty = iota // no probe: no total in the bits either
	kindUp           // every probe succeeded
	kindDown         // every probe failed
	kindMixed        // some of each: up follows in a byte
)

func kindOf(b bucket) uint64 {
	switch {
	case b.total == 0:
		return kindEmpty
	case b.up == b.total:
		return kindUp
	case b.up == 0:
		return kindDown
	default:
		return kindMixed
	}
}

// encodeDay appends the shortest form of a day to out, which has room for maxDayLen bytes.
func encodeDay(out []byte, day *[dayLen]bucket) []byte {
	var total, up, k int
	lo, hi := uint8(math.MaxUint8), uint8(0)
	for _, b := range day {
		if b.total == 0 {
			continue
		}
		total, up, k = total+int(b.total), up+int(b.up), k+1
		lo, hi = min(lo, b.total), max(hi, b.total)
	}
	if k == 0 {
		return out
	}
	begin := len(out)
	out = binary.AppendUvarint(out, uint64(total))
	out = binary.AppendUvarint(out, uint64(up))
	width := uint(bits.Len8(hi - lo))
	out = append(out, lo, byte(width))
	out = binary.AppendUvarint(out, uint64(k))
	var acc uint32
	var held uint
	for _, b := range day {
		if b.total == 0 {
			continue
		}
		acc |= uint32(b.total-lo) << held
		for held += width; held >= 8; held -= 8 {
			out = append(out, byte(acc))
			acc >>= 8
		}
	}
	if held > 0 {
		out = append(out, byte(acc))
	}
	for i := 0; i < len(day); {
		kind := kindOf(day[i])
		j := i + 1
		for j < len(day) && kindOf(day[j]) == kind {
			j++
		}
		out = binary.AppendUvarint(out, uint64(j-i)<<2|kind)
		if kind == kindMixed {
			for _, b := range day[i:j] {
				out = append(out, b.up)
			}
		}
		i = j
	}
	if len(out)-begin >= rawDayLen {
		out = out[:begin]
		for _, b := range day {
			out = append(out, b.total, b.up)
		}
	}
	return out
}

// decodeDay fills day from what encodeDay returned.
func decodeDay(s string, day *[dayLen]bucket) {
	switch len(s) {
	case 0:
		*day = [dayLen]bucket{}
		return
	case rawDayLen:
		for i := range day {
			day[i] = bucket{total: s[2*i], up: s[2*i+1]}
		}
		return
	}
	_, p := uvarintAt(s, 0) // the day's totals
	_, p = uvarintAt(s, p)
	lo, width := s[p], uint(s[p+1])
	k, p := uvarintAt(s, p+2)
	packed := p
	p += int((k*uint64(width) + 7) / 8)
	var acc uint32
	var held uint
	mask := uint32(1)<<width - 1
	for i := 0; i < len(day); {
		v, after := uvarintAt(s, p)
		p = after
		kind, end := v&3, i+int(v>>2)
		// Runs without a per-bucket byte or bit, most of a steady day, are filled at once.
		switch {
		case kind == kindEmpty:
			clear(day[i:end])
			i = end
			continue
		case width == 0 && kind != kindMixed:
			b := bucket{total: lo}
			if kind == kindUp {
				b.up = lo
			}
			for ; i < end; i++ {
				day[i] = b
			}
			continue
		}
		// A total takes at most 8 bits, so one byte more always suffices.
		next := func() uint8 {
			if held < width {
				acc |= uint32(s[packed]) << held
				packed++
				held += 8
			}
			t := lo + uint8(acc&mask)
			acc >>= width
			held -= width
			return t
		}
		switch kind {
		case kindUp:
			for ; i < end; i++ {
				t := next()
				day[i] = bucket{total: t, up: t}
			}
		case kindDown:
			for ; i < end; i++ {
				day[i] = bucket{total: next()}
			}
		default:
			for ; i < end; i++ {
				day[i] = bucket{total: next(), up: s[p]}
				p++
			}
		}
	}
}

// daySums are the probes of an encoded day.
func daySums(s string) (up, total int) {
	switch len(s) {
	case 0:
		return 0, 0
	case rawDayLen:
		for i := 0; i < len(s); i += 2 {
			total += int(s[i])
			up += int(s[i+1])
		}
		return up, total
	}
	t, p := uvarintAt(s, 0)
	u, _ := uvarintAt(s, p)
	return int(u), int(t)
}

// uvarintAt reads the uvarint at s[p:], returning it and the offset after it. Strings are decoded
// without a conversion to []byte, which would copy them; encodeDay wrote them, so they are sound.
func uvarintAt(s string, p int) (uint64, int) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		c := s[p]
		p++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, p
		}
	}
}
