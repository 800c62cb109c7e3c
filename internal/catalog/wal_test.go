package catalog_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

func TestLSN(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want catalog.LSN
		text string
	}{
		{"0/3000028", 0x3000028, "0/3000028"},
		{"16/B374D848", 0x16B374D848, "16/B374D848"},
		{"0/0100B3C8", 0x100B3C8, "0/100B3C8"}, // PostgreSQL 18 pads the low half
		{" 1/0 ", 1 << 32, "1/0"},
	} {
		got, err := catalog.ParseLSN(tt.in)
		if err != nil || got != tt.want || got.String() != tt.text {
			t.Errorf("ParseLSN(%q) = %v (%s), %v; want %#x (%s)", tt.in, uint64(got), got, err, uint64(tt.want), tt.text)
		}
	}
	for _, bad := range []string{"", "3000028", "0/", "x/1", "1/2/3", "100000000/0"} {
		if _, err := catalog.ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) succeeded", bad)
		}
	}
	var m struct{ L catalog.LSN }
	if err := json.Unmarshal([]byte(`{"L":"A/10"}`), &m); err != nil || m.L != 0xA00000010 {
		t.Fatalf("JSON: %v %v", m.L, err)
	}
	if out, _ := json.Marshal(m); string(out) != `{"L":"A/10"}` {
		t.Fatalf("JSON out %s", out)
	}
}

func TestParseWALName(t *testing.T) {
	const mib16 = 16 << 20
	for _, tt := range []struct {
		name  string
		kind  catalog.WALKind
		tli   uint32
		segNo uint64
	}{
		{"000000010000000000000003", catalog.WALSegment, 1, 3},
		{"00000002000000010000000A", catalog.WALSegment, 2, 256 + 10},
		{"0000000100000000000000FF.partial", catalog.WALPartial, 1, 255},
		{"000000010000000000000002.00000028.backup", catalog.WALBackupHistory, 1, 2},
		{"0000000A.history", catalog.WALTimelineHistory, 10, 0},
	} {
		n, err := catalog.ParseWALName(tt.name)
		if err != nil || n.Kind != tt.kind || n.Timeline != tt.tli || (tt.kind != catalog.WALTimelineHistory && n.SegNo(mib16) != tt.segNo) {
			t.Errorf("ParseWALName(%q) = %+v, %v", tt.name, n, err)
		}
		if tt.kind == catalog.WALSegment && catalog.SegmentName(tt.tli, tt.segNo, mib16) != tt.name {
			t.Errorf("SegmentName(%d, %d) = %s, want %s", tt.tli, tt.segNo, catalog.SegmentName(tt.tli, tt.segNo, mib16), tt.name)
		}
	}
	// Names that are not PostgreSQL's never become storage keys.
	for _, bad := range []string{"", "RECOVERYXLOG", "00000001000000000000003", "000000010000000000000003/../x", "0000000000000000000000003",
		"000000000000000000000003", "000000010000000000000003.tmp", "00000001.history.x", "0000000g0000000000000003"} {
		if _, err := catalog.ParseWALName(bad); err == nil {
			t.Errorf("ParseWALName(%q) succeeded", bad)
		}
	}
	// 1 GiB segments: four per 4 GiB "log".
	n, _ := catalog.ParseWALName("000000010000000200000003")
	if n.SegNo(1<<30) != 2*4+3 || catalog.SegmentName(1, 11, 1<<30) != "000000010000000200000003" {
		t.Fatalf("1 GiB segments: %d", n.SegNo(1<<30))
	}
}

const seg = 16 << 20

// lsnAt is the LSN at offset off into segment segNo.
func lsnAt(segNo uint64, off uint64) catalog.LSN { return catalog.LSN(segNo*seg + off) }

var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// base is a trusted physical backup of system "7" on timeline tli, from segment start to stop.
func base(id string, tli uint32, start, stop uint64, parent string) catalog.Entry {
	return catalog.Entry{ID: id, Tenant: "acme", Schedule: "hourly", StartedAt: t0.Add(time.Duration(start) * time.Minute),
		Signature: catalog.SignatureValid, Method: catalog.MethodPhysical,
		Physical: &catalog.PhysicalInfo{SystemID: "7", Timeline: tli, StartLSN: lsnAt(start, 0x28), StopLSN: lsnAt(stop, 0x100),
			StopTime: t0.Add(time.Duration(stop)*time.Minute + 30*time.Second), WALSegmentSize: seg, Parent: parent}}
}

// segs are archived segments of system "7", timeline tli, numbers from to to inclusive, each
// archived a minute after the previous.
func segs(tli uint32, from, to uint64) []catalog.WALFile {
	var out []catalog.WALFile
	for n := from; n <= to; n++ {
		w, _ := catalog.ParseWALName(catalog.SegmentName(tli, n, seg))
		out = append(out, catalog.WALFile{WALName: w, SystemID: "7", Archived: true, HasObject: true, ArchivedAt: t0.Add(time.Duration(n+1) * time.Minute)})
	}
	return out
}

func history(tli uint32, switches ...catalog.TimelineSwitch) catalog.WALFile {
	w, _ := catalog.ParseWALName(fmt.Sprintf("%08X.history", tli))
	return catalog.WALFile{WALName: w, SystemID: "7", Archived: true, HasObject: true, History: switches}
}

func concat(parts ...[]catalog.WALFile) []catalog.WALFile { return slices.Concat(parts...) }

func without(files []catalog.WALFile, name string) []catalog.WALFile {
	return slices.DeleteFunc(slices.Clone(files), func(f catalog.WALFile) bool { return f.Name == name })
}

func TestRecoverableWindow(t *testing.T) {
	tests := []struct {
		name     string
		backups  []catalog.Entry
		wal      []catalog.WALFile
		ok       bool
		earliest string // backup id
		latest   string // last segment
		backupsN int
	}{
		{
			name:    "no backups, no window",
			wal:     segs(1, 1, 9),
			ok:      false,
			backups: nil,
		},
		{
			name:     "one backup and the WAL after it",
			backups:  []catalog.Entry{base("b1", 1, 2, 3, "")},
			wal:      segs(1, 1, 9),
			ok:       true,
			earliest: "b1", latest: "000000010000000000000009", backupsN: 1,
		},
		{
			name:    "a backup whose WAL up to its consistency is missing reaches nothing",
			backups: []catalog.Entry{base("b1", 1, 2, 4, "")},
			wal:     without(segs(1, 1, 9), "000000010000000000000004"),
			ok:      false,
		},
		{
			name:     "a gap ends the window; a newer backup after the gap starts over",
			backups:  []catalog.Entry{base("b1", 1, 2, 2, ""), base("b2", 1, 7, 7, "")},
			wal:      without(segs(1, 1, 12), "000000010000000000000005"),
			ok:       true,
			earliest: "b1", latest: "00000001000000000000000C", backupsN: 2,
		},
		{
			name:     "WAL follows a timeline switch after the backup",
			backups:  []catalog.Entry{base("b1", 1, 2, 2, "")},
			wal:      concat(segs(1, 1, 5), []catalog.WALFile{history(2, catalog.TimelineSwitch{Parent: 1, Switch: lsnAt(5, 0x500)})}, segs(2, 5, 8)),
			ok:       true,
			earliest: "b1", latest: "000000020000000000000008", backupsN: 1,
		},
		{
			name:    "a timeline that branched before the backup is not followed",
			backups: []catalog.Entry{base("b1", 1, 6, 6, "")},
			wal: concat(segs(1, 1, 9), []catalog.WALFile{history(2, catalog.TimelineSwitch{Parent: 1, Switch: lsnAt(5, 0x500)})},
				segs(2, 5, 12)),
			ok:       true,
			earliest: "b1", latest: "000000010000000000000009", backupsN: 1,
		},
		{
			name: "an incremental backup counts only with its whole chain; untrusted and logical backups never",
			backups: []catalog.Entry{
				base("full", 1, 2, 2, ""), base("incr", 1, 4, 4, "full"), base("orphan", 1, 6, 6, "gone"),
				func() catalog.Entry {
					e := base("forged", 1, 1, 1, "")
					e.Signature = catalog.SignatureInvalid
					return e
				}(),
				{ID: "dump", Tenant: "acme", Schedule: "hourly", StartedAt: t0, Method: catalog.MethodLogical},
			},
			wal:      segs(1, 1, 9),
			ok:       true,
			earliest: "full", latest: "000000010000000000000009", backupsN: 2,
		},
		{
			name: "only the newest cluster counts",
			backups: []catalog.Entry{base("old", 1, 2, 2, ""), func() catalog.Entry {
				e := base("new", 1, 3, 3, "")
				e.Physical.SystemID = "8"
				e.StartedAt = t0.Add(time.Hour)
				return e
			}()},
			wal: concat(segs(1, 1, 9), func() []catalog.WALFile {
				s := segs(1, 1, 4)
				for i := range s {
					s[i].SystemID = "8"
				}
				return s
			}()),
			ok:       true,
			earliest: "new", latest: "000000010000000000000004", backupsN: 1,
		},
		{
			name:     "an upload that never finished is not archived",
			backups:  []catalog.Entry{base("b1", 1, 2, 2, "")},
			wal:      concat(segs(1, 1, 5), []catalog.WALFile{{WALName: mustName("000000010000000000000006"), SystemID: "7", HasObject: true}}, segs(1, 7, 8)),
			ok:       true,
			earliest: "b1", latest: "000000010000000000000005", backupsN: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, ok := catalog.RecoverableWindow(tt.backups, tt.wal)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tt.ok, w)
			}
			if !ok {
				return
			}
			if w.EarliestBackup != tt.earliest || w.LastSegment != tt.latest || w.Backups != tt.backupsN {
				t.Fatalf("window from %s to %s over %d backups, want from %s to %s over %d", w.EarliestBackup, w.LastSegment, w.Backups, tt.earliest, tt.latest, tt.backupsN)
			}
			last := mustName(tt.latest)
			if w.LatestLSN != catalog.LSN((last.SegNo(seg)+1)*seg) || w.LatestTimeline != last.Timeline {
				t.Fatalf("latest LSN %s timeline %d, want the end of %s", w.LatestLSN, w.LatestTimeline, tt.latest)
			}
			if !w.LatestTime.Equal(t0.Add(time.Duration(last.SegNo(seg)+1) * time.Minute)) {
				t.Fatalf("latest time %s, want when %s was archived", w.LatestTime, tt.latest)
			}
			for _, b := range tt.backups {
				if b.ID == tt.earliest && (w.EarliestLSN != b.Physical.StopLSN || !w.EarliestTime.Equal(b.Physical.StopTime)) {
					t.Fatalf("earliest %s at %s, want backup %s's stop %s", w.EarliestLSN, w.EarliestTime, b.ID, b.Physical.StopLSN)
				}
			}
		})
	}
}

func mustName(s string) catalog.WALName {
	n, err := catalog.ParseWALName(s)
	if err != nil {
		panic(err)
	}
	return n
}

func names(files []catalog.WALFile) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Name)
	}
	return out
}

func TestDecideWAL(t *testing.T) {
	backupFile := catalog.WALFile{WALName: mustName("000000010000000000000002.00000028.backup"), SystemID: "7", Archived: true}
	partial := catalog.WALFile{WALName: mustName("000000010000000000000003.partial"), SystemID: "7", Archived: true}
	killed := catalog.WALFile{WALName: mustName("000000010000000000000001"), SystemID: "7", HasObject: true}
	tests := []struct {
		name   string
		kept   []catalog.Entry
		wal    []catalog.WALFile
		delete []string
		held   int
	}{
		{
			name:   "WAL before the oldest kept backup's start goes, from its start on it stays",
			kept:   []catalog.Entry{base("b2", 1, 5, 6, ""), base("b3", 1, 8, 8, "")},
			wal:    segs(1, 1, 9),
			delete: []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003", "000000010000000000000004"},
		},
		{
			name:   "backup history files, partial segments and killed uploads go with their segment; timeline histories never",
			kept:   []catalog.Entry{base("b2", 2, 5, 6, "")},
			wal:    concat([]catalog.WALFile{killed, backupFile, partial, history(2, catalog.TimelineSwitch{Parent: 1, Switch: lsnAt(3, 0x10)})}, segs(2, 3, 6)),
			delete: []string{"000000010000000000000001", "000000010000000000000002.00000028.backup", "000000010000000000000003.partial", "000000020000000000000003", "000000020000000000000004"},
		},
		{
			name:   "an incremental backup's full backup is kept too, and so is its WAL",
			kept:   []catalog.Entry{base("full", 1, 3, 3, ""), base("incr", 1, 7, 7, "full")},
			wal:    segs(1, 1, 8),
			delete: []string{"000000010000000000000001", "000000010000000000000002"},
		},
		{
			name: "nothing of a cluster without a kept physical backup goes: a new cluster's first backup may be running",
			kept: []catalog.Entry{{ID: "dump", Method: catalog.MethodLogical, Signature: catalog.SignatureValid}},
			wal:  segs(1, 1, 9),
			held: 1,
		},
		{
			name: "a backup whose signature does not check decides nothing",
			kept: []catalog.Entry{func() catalog.Entry {
				e := base("forged", 1, 9, 9, "")
				e.Signature = catalog.SignatureInvalid
				return e
			}()},
			wal:  segs(1, 1, 9),
			held: 1,
		},
		{
			name: "a backup whose signature does not check holds the WAL a newer trusted one would let go",
			kept: []catalog.Entry{base("newer", 1, 7, 7, ""), func() catalog.Entry {
				e := base("rotated-key", 1, 2, 2, "")
				e.Signature = catalog.SignatureInvalid
				return e
			}()},
			wal:  segs(1, 1, 9),
			held: 1,
		},
		{
			name: "another cluster's WAL is judged by its own backups",
			kept: []catalog.Entry{base("b", 1, 5, 5, "")},
			wal: concat(segs(1, 4, 6), func() []catalog.WALFile {
				s := segs(1, 1, 2)
				for i := range s {
					s[i].SystemID = "8"
				}
				return s
			}()),
			delete: []string{"000000010000000000000004"},
			held:   1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := catalog.DecideWAL(tt.kept, tt.wal)
			if got := names(d.Delete); !slices.Equal(got, tt.delete) {
				t.Fatalf("delete %v, want %v", got, tt.delete)
			}
			if d.Keep+len(d.Delete) != len(tt.wal) || len(d.Held) != tt.held {
				t.Fatalf("keep %d + delete %d of %d files, held %v (want %d)", d.Keep, len(d.Delete), len(tt.wal), d.Held, tt.held)
			}
			// The newest good restore's WAL is never deleted.
			var newest *catalog.PhysicalInfo
			for _, b := range tt.kept {
				if b.Physical != nil && b.Signature.Trusted() && (newest == nil || b.Physical.StartLSN > newest.StartLSN) {
					newest = b.Physical
				}
			}
			for _, f := range d.Delete {
				if newest != nil && f.SystemID == newest.SystemID && f.SegNo(seg) >= newest.StartSegment() {
					t.Fatalf("deletes %s, which the newest backup needs", f.Name)
				}
			}
		})
	}
}

// TestWALSidecarSignature: a description is restored only when a trusted key signed it, and a
// manifest's signature does not pass for it.
func TestWALSidecarSignature(t *testing.T) {
	ctx := context.Background()
	store, err := storage.OpenVolume(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, pub, err := catalog.GenerateSigningKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := catalog.ParseSigningKey(keyPEM)
	pubKey, _ := catalog.ParsePublicKey(pub)
	trust := catalog.Trust{Keys: []ed25519.PublicKey{pubKey}}
	info := catalog.WALInfo{Tenant: "acme", SystemID: "7", Name: "000000010000000000000003", Timeline: 1, Size: seg, SHA256: "ab",
		Object: catalog.ObjectInfo{Name: "000000010000000000000003.zst.age", Size: 10, SHA256: "cd"}}
	if err := catalog.WriteWALSidecar(ctx, store, info, key); err != nil {
		t.Fatal(err)
	}
	n := mustName(info.Name)
	got, err := catalog.ReadWALInfo(ctx, store, "acme", "7", n, trust)
	if err != nil || got.SHA256 != "ab" {
		t.Fatalf("read back: %+v %v", got, err)
	}
	var se *catalog.WALSignatureError
	if _, err := catalog.ReadWALInfo(ctx, store, "acme", "7", n, catalog.Trust{}); !errors.As(err, &se) || se.Status != catalog.SignatureInvalid {
		t.Fatalf("without the key: %v", err)
	}
	// Unsigned: refused unless allowed.
	info.Name, info.Object.Name = "000000010000000000000004", "000000010000000000000004.zst.age"
	if err := catalog.WriteWALSidecar(ctx, store, info, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.ReadWALInfo(ctx, store, "acme", "7", mustName(info.Name), trust); !errors.As(err, &se) || se.Status != catalog.SignatureMissing {
		t.Fatalf("unsigned: %v", err)
	}
	if _, err := catalog.ReadWALInfo(ctx, store, "acme", "7", mustName(info.Name), catalog.Trust{AllowUnsigned: true}); err != nil {
		t.Fatalf("unsigned, allowed: %v", err)
	}
	// A description moved to another file's place is refused.
	rc, _ := store.Get(ctx, catalog.WALSidecarKey("acme", "7", n))
	moved := catalog.WALSidecarKey("acme", "7", mustName("000000010000000000000005"))
	if _, err := store.Put(ctx, moved, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if _, err := catalog.ReadWALInfo(ctx, store, "acme", "7", mustName("000000010000000000000005"), trust); err == nil || !strings.Contains(err.Error(), "moved or tampered") {
		t.Fatalf("moved description: %v", err)
	}
	// Not archived at all: the normal end of recovery.
	if _, err := catalog.ReadWALInfo(ctx, store, "acme", "7", mustName("000000010000000000000009"), trust); !catalog.IsNotArchived(err) {
		t.Fatalf("missing: %v", err)
	}
	// The listing sees what is archived, and what is only uploaded.
	if _, err := store.Put(ctx, catalog.WALObjectKey("acme", "7", mustName("000000010000000000000006")), strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	files, err := catalog.ListWAL(ctx, store, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, f := range files {
		listed = append(listed, f.Name+map[bool]string{true: " archived", false: " incomplete"}[f.Archived])
	}
	want := []string{"000000010000000000000003 archived", "000000010000000000000004 archived", "000000010000000000000005 archived", "000000010000000000000006 incomplete"}
	if !slices.Equal(listed, want) {
		t.Fatalf("listed %v, want %v", listed, want)
	}
	if err := catalog.ValidateName("schedule", "wal"); err == nil {
		t.Fatal(`schedule "wal" is accepted, but it is the WAL archive's place`)
	}
}

func TestRecoverySegments(t *testing.T) {
	sw := func(parent uint32, segNo uint64) catalog.TimelineSwitch {
		return catalog.TimelineSwitch{Parent: parent, Switch: lsnAt(segNo, 0x500)}
	}
	tests := []struct {
		name string
		wal  []catalog.WALFile
		want []string
	}{
		{
			name: "one timeline, from the backup's first segment to the end of the run",
			wal:  concat(segs(1, 1, 6), segs(1, 8, 9)),
			want: []string{segName(1, 2), segName(1, 3), segName(1, 4), segName(1, 5), segName(1, 6)},
		},
		{
			name: "a switch to timeline 2: the switch's segment and after come from it",
			wal:  concat(segs(1, 2, 6), []catalog.WALFile{history(2, sw(1, 4))}, segs(2, 4, 5)),
			want: []string{segName(1, 2), segName(1, 3), segName(2, 4), segName(2, 5)},
		},
		{
			name: "not archived from the start: nothing",
			wal:  segs(1, 3, 6),
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(catalog.RecoverySegments(base("b1", 1, 2, 3, "").Physical, tt.wal))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func segName(tli uint32, n uint64) string { return catalog.SegmentName(tli, n, seg) }
