package backup

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// TestSegmentBufferAssemblesTheStream feeds a segment buffer the replication stream as the
// server sends it, in messages of uneven sizes, one of which crosses into the next segment: each
// segment comes out byte for byte, named for its timeline and number, and a message that does not
// continue where the stream is refuses to leave a hole.
func TestSegmentBufferAssemblesTheStream(t *testing.T) {
	const segSize = 1 << 20
	stream := make([]byte, 3*segSize)
	_, _ = rand.Read(stream)
	base := catalog.LSN(0x2A) << 32 // segment 0x2A00000000/segSize: a name whose log half is not 0
	b := newSegmentBuffer(segSize)
	b.reset(base, 3)
	var got [][]byte
	var names []string
	at := 0
	sizes := []int{40, 8192, 131072, 1000, segSize - 140304 + 300, 77} // the fifth crosses the first boundary by 300 bytes
	sent := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for i := 0; at < len(stream); i++ {
		n := sizes[i%len(sizes)]
		if at+n > len(stream) {
			n = len(stream) - at
		}
		msg := stream[at : at+n]
		start := base + catalog.LSN(at)
		for len(msg) > 0 {
			took, err := b.add(start, msg, sent.Add(time.Duration(i)*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if took != len(msg) && !b.complete() {
				t.Fatalf("took %d of %d bytes without completing the segment", took, len(msg))
			}
			msg, start = msg[took:], start+catalog.LSN(took)
			if b.complete() {
				got = append(got, append([]byte(nil), b.data...))
				names = append(names, b.name())
				if b.written.IsZero() {
					t.Fatal("a complete segment has no time")
				}
				end := b.end()
				b.reset(end, 3)
			}
		}
		at += n
	}
	if len(got) != 3 {
		t.Fatalf("%d segments assembled, want 3", len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i], stream[i*segSize:(i+1)*segSize]) {
			t.Fatalf("segment %d differs from the stream", i)
		}
	}
	if want := "000000030000002A00000000,000000030000002A00000001,000000030000002A00000002"; strings.Join(names, ",") != want {
		t.Fatalf("names %v, want %s", names, want)
	}

	// A gap, or bytes sent again, are refused.
	b.reset(base+10, 1)
	if b.filled != 10 || b.start != base {
		t.Fatalf("reset mid-segment: start %s filled %d", b.start, b.filled)
	}
	if _, err := b.add(base+12, []byte("x"), sent); err == nil {
		t.Fatal("a gap in the stream was accepted")
	}
	if _, err := b.add(base+5, []byte("x"), sent); err == nil {
		t.Fatal("bytes sent again were accepted")
	}
}

func TestParseSegmentSize(t *testing.T) {
	for in, want := range map[string]int64{"16MB": 16 << 20, "1GB": 1 << 30, "1MB": 1 << 20, "64MB": 64 << 20} {
		if got, err := parseSegmentSize(in); err != nil || got != want {
			t.Errorf("parseSegmentSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "16", "15MB", "2GB", "512kB", "MB"} {
		if got, err := parseSegmentSize(in); err == nil {
			t.Errorf("parseSegmentSize(%q) = %d, want an error", in, got)
		}
	}
}

// TestTimelineSwitchArchivesHistoryAndRenamesTheSegment follows a timeline switch as the
// receiver sees it when the server ends a timeline (its TIMELINE_HISTORY is a fake here; the
// integration tests do not promote a server): the new timeline's history file is archived to
// every location with its switch points, and the segment that holds the switch goes on under
// the new timeline's name. A switch that does not start where the stream is, or a history file
// under another name, is refused.
func TestTimelineSwitchArchivesHistoryAndRenamesTheSegment(t *testing.T) {
	ctx := context.Background()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	pemKey, pub, err := catalog.GenerateSigningKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := catalog.ParseSigningKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	var stores []storage.Store
	for range 2 {
		s, err := storage.OpenVolume(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	const segSize = 1 << 20
	switchAt := catalog.LSN(3*segSize + 0x120)
	asked := []int32{}
	history := "1\t0/3000120\tno recovery target specified\n"
	var errs bytes.Buffer
	r := &walReceiver{
		o: WALReceiveOptions{Stores: stores, RetryMin: time.Millisecond, RetryMax: time.Millisecond,
			Archive: WALArchiveOptions{Tenant: "acme", Recipients: []string{id.Recipient().String()}, SigningKey: key}},
		fail: &failureLog{w: &errs}, systemID: "7412345678901234567", segSize: segSize,
		history: func(_ context.Context, _ *pgconn.PgConn, tli int32) (pglogrepl.TimelineHistoryResult, error) {
			asked = append(asked, tli)
			name := "00000002.history"
			if tli == 3 {
				name = "00000002.history" // the wrong file for timeline 3
			}
			return pglogrepl.TimelineHistoryResult{FileName: name, Content: []byte(history)}, nil
		},
	}
	buf := newSegmentBuffer(segSize)
	buf.reset(switchAt, 1)
	if err := r.nextTimeline(ctx, nil, buf, 2, switchAt+8); err == nil {
		t.Fatal("a switch point ahead of the stream was accepted")
	}
	if err := r.nextTimeline(ctx, nil, buf, 2, switchAt); err != nil {
		t.Fatal(err)
	}
	if buf.timeline != 2 || buf.name() != "000000020000000000000003" || buf.pos() != switchAt {
		t.Fatalf("after the switch the segment is %s at %s", buf.name(), buf.pos())
	}
	if err := r.nextTimeline(ctx, nil, buf, 3, switchAt); err == nil || !strings.Contains(err.Error(), "want 00000003.history") {
		t.Fatalf("a history file under another name: %v", err)
	}
	if len(asked) != 2 || asked[0] != 2 {
		t.Fatalf("TIMELINE_HISTORY asked for %v", asked)
	}
	trust := catalog.Trust{Keys: mustPublicKeys(t, pub)}
	for _, s := range stores {
		wal, err := catalog.ListWAL(ctx, s, "acme", catalog.WithTrust(trust))
		if err != nil {
			t.Fatal(err)
		}
		if len(wal) != 1 || wal[0].Name != "00000002.history" || len(wal[0].History) != 1 || wal[0].History[0].Switch.String() != "0/3000120" {
			t.Fatalf("%s holds %+v", s, wal)
		}
	}
	// Archiving it again, as a restarted receiver does, is a success.
	if err := r.archiveHistoryFile(ctx, 2, "00000002.history", []byte(history)); err != nil {
		t.Fatal(err)
	}
}

// TestFailureLogReportsOncePerKind: a storage outage retried a hundred times is one line, and
// one more when it clears.
func TestFailureLogReportsOncePerKind(t *testing.T) {
	var out bytes.Buffer
	f := &failureLog{w: &out}
	down := &storage.UnreachableError{Location: "s3://x", Err: errors.New("connection refused")}
	for range 100 {
		f.report("archive to s3://x", down)
	}
	f.report("archive to s3://x", errors.New("something else"))
	f.recovered("archive to s3://x", "")
	f.recovered("archive to s3://x", "")
	f.recovered("replication", "")
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
}

func mustPublicKeys(t *testing.T, text string) []ed25519.PublicKey {
	t.Helper()
	keys, err := catalog.ParsePublicKeys(text)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
