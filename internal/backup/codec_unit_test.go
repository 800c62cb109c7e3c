package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// TestSealCodecsRoundTrip seals a stream as a base backup is sealed (compressed, age, counted
// and hashed) with each codec, stores it, and reads it back through openSealed with the codec the
// manifest names: the bytes come back whole. An object whose manifest names no codec (written
// before manifests named one) is zstd; one naming a codec this agent does not know is refused
// before anything is read, with what to do; a codec named wrongly never yields data.
func TestSealCodecsRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, id := volumeAndIdentity(t)
	// Random (incompressible) and repeated parts, as a cluster's files are; more than S2's and
	// zstd's blocks.
	plain := partlyRandom(9<<20, 3<<20, 8192)
	seal := func(codec string) catalog.ObjectInfo {
		t.Helper()
		var sealed bytes.Buffer
		pl, err := newSealPipeline(bytes.NewReader(plain), &sealed, []age.Recipient{id.Recipient()}, codec, zstd.SpeedFastest)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(pl.enc, pl.dumped); err != nil {
			t.Fatal(err)
		}
		if err := pl.finish(); err != nil {
			t.Fatal(err)
		}
		if pl.dumped.n != int64(len(plain)) || pl.stored.n != int64(sealed.Len()) || pl.compressed.n >= pl.dumped.n {
			t.Fatalf("%s: %d read, %d compressed, %d stored (%d sealed)", codec, pl.dumped.n, pl.compressed.n, pl.stored.n, sealed.Len())
		}
		key := "obj-" + codec
		if _, err := store.Put(ctx, key, &sealed); err != nil {
			t.Fatal(err)
		}
		return catalog.ObjectInfo{Name: key, Size: pl.stored.n, SHA256: hex.EncodeToString(pl.stored.h.Sum(nil)), Compression: codec, Encryption: "age"}
	}
	read := func(obj catalog.ObjectInfo) ([]byte, error) {
		a, err := openSealed(ctx, store, "b1", obj.Name, obj, []string{Fingerprint(id.Recipient())}, []age.Identity{id})
		if err != nil {
			return nil, err
		}
		defer a.Close()
		got, err := io.ReadAll(a)
		if err != nil {
			return got, a.explain("read", err)
		}
		return got, nil
	}

	s2Obj, zstdObj := seal(CompressionS2), seal(CompressionZstd)
	for _, obj := range []catalog.ObjectInfo{s2Obj, zstdObj} {
		if got, err := read(obj); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: read back %d bytes, equal %v, %v", obj.Compression, len(got), bytes.Equal(got, plain), err)
		}
	}
	old := zstdObj
	old.Compression = ""
	if got, err := read(old); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("a manifest naming no codec: read back %d bytes, equal %v, %v; want zstd's", len(got), bytes.Equal(got, plain), err)
	}

	unknown := s2Obj
	unknown.Compression = "lz4"
	if _, err := read(unknown); err == nil || !strings.Contains(err.Error(), `compressed with "lz4", which this agent does not know`) {
		t.Errorf("an unknown codec: %v; want a refusal naming it", err)
	}
	// S2's stream read as zstd's, and zstd's as S2's: an error, never plain bytes.
	for _, wrong := range []catalog.ObjectInfo{{Name: s2Obj.Name, Size: s2Obj.Size, SHA256: s2Obj.SHA256, Compression: CompressionZstd},
		{Name: zstdObj.Name, Size: zstdObj.Size, SHA256: zstdObj.SHA256, Compression: CompressionS2}} {
		if got, err := read(wrong); err == nil || bytes.Equal(got, plain) {
			t.Errorf("%s read as %s: %d bytes, %v; want an error", wrong.Name, wrong.Compression, len(got), err)
		}
	}

	if _, err := newCompressor("lz4", io.Discard, zstd.SpeedFastest); err == nil {
		t.Error("newCompressor accepted an unknown codec")
	}
}

// volumeAndIdentity is a scratch storage volume and an age identity to seal to, for tests that
// store sealed objects.
func volumeAndIdentity(t *testing.T) (storage.Store, *age.X25519Identity) {
	t.Helper()
	store, err := storage.OpenVolume(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return store, id
}

// partlyRandom is size bytes: the first random ones random (incompressible), the rest a byte that
// changes every period bytes (compressible), so that a codec meets blocks of both kinds.
func partlyRandom(size, random, period int) []byte {
	plain := make([]byte, size)
	_, _ = rand.Read(plain[:random])
	for i := random; i < size; i++ {
		plain[i] = byte(i / period)
	}
	return plain
}
