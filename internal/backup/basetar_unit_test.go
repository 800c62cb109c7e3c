package backup

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"io"
	"testing"

	"github.com/tenantops/tenant-operator/internal/catalog"
)

// TestInspectBaseTar reads a tar laid out as pg_basebackup -Ft -X fetch lays out an incremental
// backup's (files larger than the 1 MiB pieces it reads in, pg_wal/ with a segment and its
// archive status, backup_manifest last): what the manifest needs comes out of it, the
// backup_manifest is copied whole, and every byte of the stream passes through to the reader
// the caller tees to storage.
func TestInspectBaseTar(t *testing.T) {
	t.Parallel()
	var stream bytes.Buffer
	tw := tar.NewWriter(&stream)
	add := func(name string, data []byte) {
		t.Helper()
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	add("backup_label", []byte("START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\nCHECKPOINT LOCATION: 0/5000080\n"+
		"BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-03 14:10:00 UTC\nLABEL: tenant-operator x\n"+
		"START TIMELINE: 1\nINCREMENTAL FROM LSN: 0/3000028\nINCREMENTAL FROM TLI: 1\n"))
	control := make([]byte, 8192)
	binary.NativeEndian.PutUint64(control, 7715079803089978370)
	add("global/pg_control", control)
	add("base/5/INCREMENTAL.16385", random(3<<20+17))
	if err := tw.WriteHeader(&tar.Header{Name: "./pg_wal/archive_status/", Mode: 0o700, Typeflag: tar.TypeDir}); err != nil {
		t.Fatal(err)
	}
	add("pg_wal/000000010000000000000005", random(2<<20))
	add("pg_wal/archive_status/000000010000000000000005.done", nil)
	manifest := []byte(`{ "PostgreSQL-Backup-Manifest-Version": 2, "System-Identifier": 7715079803089978370, "Files": [],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/5000028", "End-LSN": "0/5000158" }
],
"Manifest-Checksum": "00" }
`)
	add("backup_manifest", manifest)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	stream.Write(make([]byte, 4096)) // pg_basebackup's padding after the tar's end

	want := append([]byte(nil), stream.Bytes()...)
	var passed, copied bytes.Buffer
	bt, err := inspectBaseTar(io.TeeReader(&stream, &passed), &copied)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(passed.Bytes(), want) {
		t.Errorf("%d bytes passed through, want the whole stream of %d", passed.Len(), len(want))
	}
	if !bytes.Equal(copied.Bytes(), manifest) || bt.manifestSize != int64(len(manifest)) {
		t.Errorf("backup_manifest copied: %q (%d), want %q", copied.String(), bt.manifestSize, manifest)
	}
	stop, tli, err := bt.stop()
	if bt.systemID != 7715079803089978370 || bt.startLSN != mustParseLSN(t, "0/5000028") || bt.startTimeline != 1 ||
		bt.incrementalFromLSN != mustParseLSN(t, "0/3000028") || err != nil || stop != mustParseLSN(t, "0/5000158") || tli != 1 {
		t.Errorf("inspected %+v, stop %s on %d (%v)", bt, stop, tli, err)
	}
}

func mustParseLSN(t *testing.T, s string) catalog.LSN {
	t.Helper()
	l, err := catalog.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
