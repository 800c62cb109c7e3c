package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/tenantops/tenant-operator/internal/catalog"
)

// TestSealedStreamAhead reads a sealed object (compressed with each codec, then age) of several
// MiB through openSealedAhead, whose stages run in goroutines of their own: the plain bytes come
// out whole and in order; a damaged object or one whose end is cut off is refused with a checksum
// mismatch, never with a clean end of stream, as openSealed refuses them.
func TestSealedStreamAhead(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{CompressionZstd, CompressionS2} {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			testSealedStreamAhead(t, codec)
		})
	}
}

func testSealedStreamAhead(t *testing.T, codec string) {
	ctx := context.Background()
	store, id := volumeAndIdentity(t)
	// Half random (incompressible), half repeated: zstd's blocks of both kinds.
	plain := partlyRandom(12<<20, 6<<20, 4096)
	var sealed bytes.Buffer
	enc, err := age.Encrypt(&sealed, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	zw, err := newCompressor(codec, enc, zstd.SpeedFastest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	good := sealed.Bytes()
	sum := sha256.Sum256(good)
	obj := catalog.ObjectInfo{Name: "data.age", Size: int64(len(good)), SHA256: hex.EncodeToString(sum[:]), Compression: codec}

	read := func(stored []byte) ([]byte, error) {
		if _, err := store.Put(ctx, "obj", bytes.NewReader(stored)); err != nil {
			t.Fatal(err)
		}
		a, err := openSealedAhead(ctx, store, "b1", "obj", obj, []string{id.Recipient().String()}, []age.Identity{id})
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
	if got, err := read(good); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("read through the stages: %d bytes, equal %v, %v", len(got), bytes.Equal(got, plain), err)
	}
	damaged := bytes.Clone(good)
	damaged[len(damaged)/2] ^= 0x01
	truncated := good[:len(good)-100]
	for name, stored := range map[string][]byte{"damaged": damaged, "truncated": truncated} {
		_, err := read(stored)
		var mismatch *ChecksumMismatchError
		if !errors.As(err, &mismatch) {
			t.Errorf("%s object: %v, want a checksum mismatch", name, err)
		}
	}
}
