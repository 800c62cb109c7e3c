package backup_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// TestWALArchiveContract plays archive_command and restore_command against a storage volume, with
// a data directory and WAL files made here (no server: what is checked is the agent's contract
// with PostgreSQL and with storage). Archiving the same file twice succeeds the second time
// without writing; a different file under an archived name is refused and the archive keeps the
// first; a data object that a killed upload left without its description is not archived and
// the next attempt replaces it; a restore writes back exactly the archived bytes, and refuses a
// damaged object, a description signed by another key, or one copied to another file's place,
// leaving nothing at the destination.
func TestWALArchiveContract(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := storage.OpenVolume(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k, sg, other := newKey(t), newSigner(t), newSigner(t)
	ids, err := backup.ReadIdentities(k.identityFile)
	if err != nil {
		t.Fatal(err)
	}
	signingKey := readSigningKeyFile(t, sg.keyFile)
	trust := catalog.Trust{Keys: parsePublicKeys(t, sg.publicKey)}

	const systemID, segSize = uint64(7412345678901234567), int64(1 << 20)
	dataDir := t.TempDir()
	control := make([]byte, 8192)
	binary.NativeEndian.PutUint64(control, systemID)
	writeFile(t, filepath.Join(dataDir, "global", "pg_control"), control)
	segment := func(name string) []byte {
		data := make([]byte, segSize)
		_, _ = rand.Read(data)
		binary.NativeEndian.PutUint64(data[24:], systemID)
		binary.NativeEndian.PutUint32(data[32:], uint32(segSize))
		writeFile(t, filepath.Join(dataDir, "pg_wal", name), data)
		return data
	}
	archive := func(name string) (catalog.WALInfo, bool, error) {
		return backup.ArchiveWAL(ctx, backup.WALArchiveOptions{Store: store, Tenant: "acme", Recipients: []string{k.recipient},
			SigningKey: signingKey, Path: "pg_wal/" + name, Name: name, DataDir: dataDir})
	}
	restoreDir := t.TempDir()
	restore := func(name string, trust catalog.Trust) ([]byte, error) {
		dest := filepath.Join(restoreDir, "RECOVERYXLOG")
		_ = os.Remove(dest)
		_, err := backup.RestoreWAL(ctx, backup.WALRestoreOptions{Store: store, Tenant: "acme", Name: name, Path: "RECOVERYXLOG",
			DataDir: restoreDir, SystemID: "7412345678901234567", Identities: ids, Trust: trust})
		if err != nil {
			if _, statErr := os.Stat(dest); statErr == nil {
				t.Fatalf("restore of %s failed (%v) but left %s behind", name, err, dest)
			}
			return nil, err
		}
		data, readErr := os.ReadFile(dest)
		if readErr != nil {
			t.Fatal(readErr)
		}
		return data, nil
	}
	const seg3, seg4 = "000000010000000000000003", "000000010000000000000004"
	n3, _ := catalog.ParseWALName(seg3)
	n4, _ := catalog.ParseWALName(seg4)
	objectKey := func(n catalog.WALName) string { return catalog.WALObjectKey("acme", "7412345678901234567", n) }
	sidecarKey := func(n catalog.WALName) string { return catalog.WALSidecarKey("acme", "7412345678901234567", n) }

	want3 := segment(seg3)
	info, already, err := archive(seg3)
	if err != nil || already {
		t.Fatalf("archive %s: already %v, %v", seg3, already, err)
	}
	if info.SystemID != "7412345678901234567" || info.SegmentSize != segSize || info.Size != segSize || info.WrittenAt.IsZero() {
		t.Fatalf("description of %s: %+v", seg3, info)
	}
	stored := readObject(t, store, objectKey(n3))
	if bytes.Contains(stored, want3[4096:8192]) {
		t.Fatal("the archived object holds the segment's bytes in the clear")
	}
	// PostgreSQL asks again after a crash between our upload and its own bookkeeping.
	if _, already, err := archive(seg3); err != nil || !already {
		t.Fatalf("archive %s again: already %v, %v; want success without writing", seg3, already, err)
	}
	if got, err := restore(seg3, trust); err != nil || !bytes.Equal(got, want3) {
		t.Fatalf("restore %s: %d bytes, equal %v, %v", seg3, len(got), bytes.Equal(got, want3), err)
	}

	// Another file under the same name: refused, the archive keeps the first.
	segment(seg3)
	var conflict *backup.WALConflictError
	if _, _, err := archive(seg3); !errors.As(err, &conflict) {
		t.Fatalf("archive of other content under %s: %v, want a WALConflictError", seg3, err)
	}
	if got, err := restore(seg3, trust); err != nil || !bytes.Equal(got, want3) {
		t.Fatalf("after the refused overwrite, restore %s: equal %v, %v", seg3, bytes.Equal(got, want3), err)
	}

	// A killed upload: the data object is there (here, garbage), its description is not. It is
	// not archived; the next attempt archives the file over it.
	putObject(t, store, objectKey(n4), []byte("half an upload"))
	if _, err := restore(seg4, trust); !catalog.IsNotArchived(err) {
		t.Fatalf("restore of %s with no description: %v, want not archived", seg4, err)
	}
	want4 := segment(seg4)
	if _, already, err := archive(seg4); err != nil || already {
		t.Fatalf("archive %s over a killed upload: already %v, %v", seg4, already, err)
	}
	if got, err := restore(seg4, trust); err != nil || !bytes.Equal(got, want4) {
		t.Fatalf("restore %s: equal %v, %v", seg4, bytes.Equal(got, want4), err)
	}

	// A description whose data object is gone (deleted by hand, or lost): not archived after all;
	// the file is archived again from PostgreSQL's copy, which it keeps until then.
	if err := store.Delete(ctx, objectKey(n4)); err != nil {
		t.Fatal(err)
	}
	if _, already, err := archive(seg4); err != nil || already {
		t.Fatalf("archive %s whose data object is gone: already %v, %v; want it archived again", seg4, already, err)
	}
	if got, err := restore(seg4, trust); err != nil || !bytes.Equal(got, want4) {
		t.Fatalf("restore %s archived again: equal %v, %v", seg4, bytes.Equal(got, want4), err)
	}
	// An unsigned description where the archiver signs does not count as archived by it.
	unsigned, err := catalog.EncodeWALSidecar(catalog.WALInfo{Tenant: "acme", SystemID: "7412345678901234567", Name: seg4, Timeline: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	signed := readObject(t, store, sidecarKey(n4))
	putObject(t, store, sidecarKey(n4), unsigned)
	if _, already, err := archive(seg4); err == nil || already {
		t.Fatalf("archive %s over an unsigned description: already %v, %v; want a refusal", seg4, already, err)
	}
	putObject(t, store, sidecarKey(n4), signed)
	// Refusals: a description signed by a key the restore does not trust; a description moved to
	// another file's place; a damaged object.
	if _, err := restore(seg3, catalog.Trust{Keys: parsePublicKeys(t, other.publicKey)}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("restore trusting another key: %v, want refused", err)
	}
	sidecar4 := readObject(t, store, sidecarKey(n4))
	putObject(t, store, sidecarKey(n4), readObject(t, store, sidecarKey(n3)))
	if _, err := restore(seg4, trust); err == nil || !strings.Contains(err.Error(), "moved or tampered with") {
		t.Fatalf("restore of %s with %s's description: %v, want refused", seg4, seg3, err)
	}
	putObject(t, store, sidecarKey(n4), sidecar4)
	damaged := readObject(t, store, objectKey(n4))
	damaged[len(damaged)/2] ^= 0xff
	putObject(t, store, objectKey(n4), damaged)
	if _, err := restore(seg4, trust); err == nil || catalog.IsNotArchived(err) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("restore of a damaged %s: %v, want a checksum mismatch", seg4, err)
	}

	// A timeline history file: archived with its switch points in the clear, for the window.
	history := "1\t0/3000120\tno recovery target specified\n"
	writeFile(t, filepath.Join(dataDir, "pg_wal", "00000002.history"), []byte(history))
	if _, _, err := archive("00000002.history"); err != nil {
		t.Fatalf("archive 00000002.history: %v", err)
	}
	wal, err := catalog.ListWAL(ctx, store, "acme", catalog.WithTrust(trust))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range wal {
		names = append(names, f.Name)
		if f.Kind == catalog.WALTimelineHistory && (len(f.History) != 1 || f.History[0].Parent != 1 || f.History[0].Switch.String() != "0/3000120") {
			t.Fatalf("history of %s: %+v", f.Name, f.History)
		}
	}
	if strings.Join(names, " ") != seg3+" "+seg4+" 00000002.history" {
		t.Fatalf("archive lists %v", names)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func putObject(t *testing.T, store storage.Store, key string, data []byte) {
	t.Helper()
	if _, err := store.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

func readSigningKeyFile(t *testing.T, file string) ed25519.PrivateKey {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	key, err := catalog.ParseSigningKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func parsePublicKeys(t *testing.T, text string) []ed25519.PublicKey {
	t.Helper()
	keys, err := catalog.ParsePublicKeys(text)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
