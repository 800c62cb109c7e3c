package catalog_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// signingKey is a fresh key pair for a test.
type signingKey struct {
	private ed25519.PrivateKey
	public  ed25519.PublicKey
	text    string // the public key's text form
}

func newSigningKey(t *testing.T) signingKey {
	t.Helper()
	pemData, text, err := catalog.GenerateSigningKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := catalog.ParseSigningKey(pemData)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := catalog.ParsePublicKey(text)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{private: priv, public: pub, text: text}
}

// writeSignedBackup lays out a backup as the agent does with a signing key: data, signature,
// manifest. key nil writes it unsigned.
func writeSignedBackup(t *testing.T, store storage.Store, tenant, schedule, id string, started time.Time, key ed25519.PrivateKey) catalog.Manifest {
	t.Helper()
	ctx := context.Background()
	data := make([]byte, 1024)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	dir := catalog.Dir(tenant, schedule, id)
	if _, err := store.Put(ctx, storage.Join(dir, catalog.DataObject), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	m := catalog.Manifest{
		FormatVersion: catalog.FormatVersion, ID: id, Tenant: tenant, Schedule: schedule,
		StartedAt: started, FinishedAt: started.Add(time.Minute), Database: "app",
		Object: catalog.ObjectInfo{Name: catalog.DataObject, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
			Format: "pg_dump-custom", Compression: "zstd", Encryption: "age"},
		Tables: []catalog.TableRows{{Schema: "public", Name: "orders", Rows: 3}},
	}
	var err error
	if key != nil {
		err = catalog.WriteSignedManifest(ctx, store, m, key)
	} else {
		err = catalog.WriteManifest(ctx, store, m)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// forge does what someone with write access to the bucket but without the key can: replace the
// data, recompute its checksum, and rewrite the manifest, leaving the old signature in place.
func forge(t *testing.T, store storage.Store, m catalog.Manifest) {
	t.Helper()
	ctx := context.Background()
	dir := catalog.Dir(m.Tenant, m.Schedule, m.ID)
	evil := []byte("the attacker's dump, which would restore their schema into the tenant's database")
	if _, err := store.Put(ctx, storage.Join(dir, catalog.DataObject), bytes.NewReader(evil)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(evil)
	m.Object.SHA256, m.Object.Size = hex.EncodeToString(sum[:]), int64(len(evil))
	if err := catalog.WriteManifest(ctx, store, m); err != nil {
		t.Fatal(err)
	}
}

func volume(t *testing.T) storage.Store {
	t.Helper()
	v, err := storage.OpenVolume(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSigningKeys(t *testing.T) {
	pemData, text, err := catalog.GenerateSigningKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pemData, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Fatalf("private key is not PKCS #8 PEM:\n%s", pemData)
	}
	priv, err := catalog.ParseSigningKey(pemData)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := catalog.ParsePublicKey(text)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) || catalog.FormatPublicKey(pub) != text || !strings.HasPrefix(text, "ed25519:") {
		t.Fatalf("public key %q does not match the private key", text)
	}
	if fp := catalog.KeyFingerprint(pub); !strings.HasPrefix(fp, "SHA256:") || strings.Contains(fp, text[8:]) {
		t.Fatalf("fingerprint %q", fp)
	}
	// Two keys are never the same: they come from the reader given.
	if _, other, _ := catalog.GenerateSigningKey(rand.Reader); other == text {
		t.Fatal("two generated keys are equal")
	}

	// Parse errors never quote a private key.
	secret := strings.ReplaceAll(string(pemData), "PRIVATE KEY", "EC PRIVATE KEY")
	for _, bad := range []string{secret, "not a key", string(pemData[:40])} {
		_, err := catalog.ParseSigningKey([]byte(bad))
		if err == nil {
			t.Fatalf("ParseSigningKey(%q) accepted", bad)
		}
		if body := strings.Split(string(pemData), "\n")[1]; strings.Contains(err.Error(), body[:16]) {
			t.Fatalf("error quotes the key: %v", err)
		}
	}
	keys, err := catalog.ParsePublicKeys("# current\n" + text + "\n\n" + text + ", " + text + "\n")
	if err != nil || len(keys) != 3 {
		t.Fatalf("ParsePublicKeys: %d keys, %v", len(keys), err)
	}
	for _, bad := range []string{"ed25519:AAAA", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", strings.TrimPrefix(text, "ed25519:")} {
		if _, err := catalog.ParsePublicKey(bad); err == nil {
			t.Fatalf("ParsePublicKey(%q) accepted", bad)
		}
	}
}

// TestSignatureCoversManifestAndData: a backup passes GetTrusted only with a trusted key's
// signature over its exact manifest; every way to change or forge it without the key is refused,
// with a message that names the backup.
func TestSignatureCoversManifestAndData(t *testing.T) {
	ctx := context.Background()
	current, previous, stranger := newSigningKey(t), newSigningKey(t), newSigningKey(t)
	trust := catalog.Trust{Keys: []ed25519.PublicKey{current.public, previous.public}}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	type setup func(t *testing.T, s storage.Store) catalog.Manifest
	signedBy := func(k signingKey) setup {
		return func(t *testing.T, s storage.Store) catalog.Manifest {
			return writeSignedBackup(t, s, "acme", "daily", "b1", now, k.private)
		}
	}
	cases := []struct {
		name  string
		setup setup
		trust catalog.Trust
		// want is "" for accepted, else a part of the refusal.
		want       string
		wantStatus catalog.SignatureStatus
	}{
		{"signed by the current key", signedBy(current), trust, "", catalog.SignatureValid},
		{"signed by the key before a rotation", signedBy(previous), trust, "", catalog.SignatureValid},
		{"signed by a key that is not trusted", signedBy(stranger), trust, "is signed by key " + catalog.KeyFingerprint(stranger.public) + ", which is not one of the 2 trusted keys", catalog.SignatureInvalid},
		{"no key trusted", signedBy(current), catalog.Trust{}, "but no key is trusted", catalog.SignatureInvalid},
		{"unsigned", func(t *testing.T, s storage.Store) catalog.Manifest {
			return writeSignedBackup(t, s, "acme", "daily", "b1", now, nil)
		}, trust, "it is not signed", catalog.SignatureMissing},
		{"unsigned, accepted when told", func(t *testing.T, s storage.Store) catalog.Manifest {
			return writeSignedBackup(t, s, "acme", "daily", "b1", now, nil)
		}, catalog.Trust{Keys: trust.Keys, AllowUnsigned: true}, "", catalog.SignatureUnsignedAccepted},
		{"data replaced and checksum recomputed", func(t *testing.T, s storage.Store) catalog.Manifest {
			m := writeSignedBackup(t, s, "acme", "daily", "b1", now, current.private)
			forge(t, s, m)
			return m
		}, catalog.Trust{Keys: trust.Keys, AllowUnsigned: true}, "its signature by key " + catalog.KeyFingerprint(current.public) + " does not match its manifest", catalog.SignatureInvalid},
		{"a manifest field changed", func(t *testing.T, s storage.Store) catalog.Manifest {
			m := writeSignedBackup(t, s, "acme", "daily", "b1", now, current.private)
			m.StartedAt = now.Add(time.Hour) // makes an old backup look fresh
			if err := catalog.WriteManifest(ctx, s, m); err != nil {
				t.Fatal(err)
			}
			return m
		}, trust, "does not match its manifest", catalog.SignatureInvalid},
		{"the signature removed", func(t *testing.T, s storage.Store) catalog.Manifest {
			m := writeSignedBackup(t, s, "acme", "daily", "b1", now, current.private)
			if err := s.Delete(ctx, storage.Join(catalog.Dir("acme", "daily", "b1"), catalog.SignatureObject)); err != nil {
				t.Fatal(err)
			}
			return m
		}, trust, "it is not signed", catalog.SignatureMissing},
		{"a signature object claiming a trusted key, made with another", func(t *testing.T, s storage.Store) catalog.Manifest {
			m := writeSignedBackup(t, s, "acme", "daily", "b1", now, stranger.private)
			key := storage.Join(catalog.Dir("acme", "daily", "b1"), catalog.SignatureObject)
			var sig catalog.Signature
			if err := json.Unmarshal(read(t, s, key), &sig); err != nil {
				t.Fatal(err)
			}
			sig.PublicKey = current.text
			data, _ := json.Marshal(sig)
			if _, err := s.Put(ctx, key, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			return m
		}, trust, "does not match its manifest", catalog.SignatureInvalid},
		{"garbage for a signature", func(t *testing.T, s storage.Store) catalog.Manifest {
			m := writeSignedBackup(t, s, "acme", "daily", "b1", now, current.private)
			if _, err := s.Put(ctx, storage.Join(catalog.Dir("acme", "daily", "b1"), catalog.SignatureObject), strings.NewReader("{")); err != nil {
				t.Fatal(err)
			}
			return m
		}, catalog.Trust{Keys: trust.Keys, AllowUnsigned: true}, "its signature object is not valid JSON", catalog.SignatureInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := volume(t)
			c.setup(t, s)
			for _, id := range []string{"b1", catalog.Latest} {
				b, err := catalog.GetTrusted(ctx, s, "acme", "daily", id, c.trust)
				var se *catalog.SignatureError
				switch {
				case c.want == "" && err != nil:
					t.Fatalf("GetTrusted(%s): %v", id, err)
				case c.want != "" && !errors.As(err, &se):
					t.Fatalf("GetTrusted(%s): %v, want a *SignatureError", id, err)
				case c.want != "" && (!strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "backup b1 of tenant acme schedule daily is refused: ")):
					t.Fatalf("GetTrusted(%s): %q, want the backup named and %q", id, err, c.want)
				}
				if b.Signature != c.wantStatus {
					t.Fatalf("GetTrusted(%s): status %q, want %q", id, b.Signature, c.wantStatus)
				}
			}
			// Listing finds the same, for the operator.
			entries, err := catalog.ListEntries(ctx, s, "acme", "daily", catalog.WithTrust(c.trust))
			if err != nil || len(entries) != 1 {
				t.Fatalf("ListEntries: %v, %v", entries, err)
			}
			if entries[0].Signature != c.wantStatus || entries[0].Signature.Trusted() != (c.want == "") {
				t.Fatalf("ListEntries: status %q, want %q", entries[0].Signature, c.wantStatus)
			}
		})
	}
}

// TestSignatureIsOverStoredBytes: the signature checks against the manifest object's bytes exactly
// as stored, with nothing but the standard library's Ed25519, so any Ed25519 tool can check it.
func TestSignatureIsOverStoredBytes(t *testing.T) {
	s := volume(t)
	k := newSigningKey(t)
	writeSignedBackup(t, s, "acme", "daily", "b1", time.Now().UTC(), k.private)
	dir := catalog.Dir("acme", "daily", "b1")
	manifest := read(t, s, storage.Join(dir, catalog.ManifestObject))
	var sig catalog.Signature
	if err := json.Unmarshal(read(t, s, storage.Join(dir, catalog.SignatureObject)), &sig); err != nil {
		t.Fatal(err)
	}
	value, err := base64.StdEncoding.DecodeString(sig.Value)
	if err != nil {
		t.Fatal(err)
	}
	if sig.Algorithm != "ed25519" || sig.Signed != catalog.ManifestObject || sig.PublicKey != k.text || !ed25519.Verify(k.public, manifest, value) {
		t.Fatalf("signature %+v does not verify over the stored manifest", sig)
	}
	if !bytes.Contains(manifest, []byte(`"sha256"`)) {
		t.Fatal("the signed manifest does not carry the data's sha256")
	}
}

// TestListingWithoutTrustChecksNothing: the operator's listing is as before until it is given
// keys: every backup SignatureUnchecked, and trusted.
func TestListingWithoutTrustChecksNothing(t *testing.T) {
	s := volume(t)
	k := newSigningKey(t)
	now := time.Now().UTC()
	writeSignedBackup(t, s, "acme", "daily", "a", now, k.private)
	writeSignedBackup(t, s, "acme", "daily", "b", now.Add(time.Second), nil)
	entries, err := catalog.ListEntries(context.Background(), s, "acme", "daily")
	if err != nil || len(entries) != 2 {
		t.Fatalf("%v %v", entries, err)
	}
	for _, e := range entries {
		if e.Signature != catalog.SignatureUnchecked || !e.Signature.Trusted() {
			t.Fatalf("%s: %q", e.ID, e.Signature)
		}
	}
}

// TestForgedBackupsNeitherCountNorPushOutRealOnes: forged backups newer than the real ones,
// verified by a forged verification record too, do not take the places retention keeps and are
// not deleted either; the real backups are kept, and the newest one counts as verified.
func TestForgedBackupsNeitherCountNorPushOutRealOnes(t *testing.T) {
	ctx := context.Background()
	s := volume(t)
	k := newSigningKey(t)
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"real-1", "real-2", "real-3"} {
		writeSignedBackup(t, s, "acme", "nightly", id, day.Add(time.Duration(i)*time.Hour), k.private)
	}
	if err := catalog.WriteVerification(ctx, s, "acme", "nightly", catalog.Verification{FormatVersion: 1, BackupID: "real-2", OK: true, Kind: catalog.KindChecksum, CheckedAt: day}); err != nil {
		t.Fatal(err)
	}
	// One forged from a real one's copy, one signed with another key, one unsigned.
	stranger := newSigningKey(t)
	for i, id := range []string{"forged-1", "forged-2", "forged-3"} {
		var key ed25519.PrivateKey
		switch i {
		case 0:
			key = k.private
		case 1:
			key = stranger.private
		}
		m := writeSignedBackup(t, s, "acme", "nightly", id, day.Add(time.Duration(10+i)*time.Hour), key)
		if i == 0 {
			forge(t, s, m)
		}
		if err := catalog.WriteVerification(ctx, s, "acme", "nightly", catalog.Verification{FormatVersion: 1, BackupID: id, OK: true, Kind: catalog.KindRestoreDrill, CheckedAt: day}); err != nil {
			t.Fatal(err)
		}
	}
	trust := catalog.Trust{Keys: []ed25519.PublicKey{k.public}}
	policy := v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](2), MinKeep: ptr.To[int32](1)}
	res, err := catalog.Prune(ctx, s, "acme", "nightly", policy, day.Add(24*time.Hour), nil, catalog.WithTrust(trust))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Deleted, ",") != "real-1" {
		t.Fatalf("pruned %v, want only real-1: forged backups must neither be kept in place of real ones nor deleted", res.Deleted)
	}
	left, err := catalog.ListEntries(ctx, s, "acme", "nightly", catalog.WithTrust(trust))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range left {
		ids = append(ids, e.ID+"="+string(e.Signature))
	}
	if got := strings.Join(ids, " "); got != "forged-3=Missing forged-2=Invalid forged-1=Invalid real-3=Valid real-2=Valid" {
		t.Fatalf("left %s", got)
	}
	candidates := catalog.Candidates(left)
	if len(candidates) != 2 || candidates[0].ID != "real-3" || candidates[1].ID != "real-2" || !candidates[1].Verified {
		t.Fatalf("candidates %+v: only the real backups count, real-2 verified", candidates)
	}
}

func read(t *testing.T, s storage.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSignaturesInteroperateWithOpenSSL: a key made by `openssl genpkey -algorithm ed25519` signs
// backups, and OpenSSL checks the signature over the stored manifest with the public key in its
// text form, as docs/storage-credentials.md shows: nothing about the format is ours alone.
func TestSignaturesInteroperateWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	run := func(stdin []byte, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(openssl, args...)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	keyFile := filepath.Join(dir, "signing.key")
	run(nil, "genpkey", "-algorithm", "ed25519", "-out", keyFile)
	pemData, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := catalog.ParseSigningKey(pemData)
	if err != nil {
		t.Fatalf("a key from openssl genpkey: %v", err)
	}

	s := volume(t)
	writeSignedBackup(t, s, "acme", "daily", "b1", time.Now().UTC(), key)
	bdir := catalog.Dir("acme", "daily", "b1")
	manifestFile := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(manifestFile, read(t, s, storage.Join(bdir, catalog.ManifestObject)), 0o600); err != nil {
		t.Fatal(err)
	}
	var sig catalog.Signature
	if err := json.Unmarshal(read(t, s, storage.Join(bdir, catalog.SignatureObject)), &sig); err != nil {
		t.Fatal(err)
	}
	value, err := base64.StdEncoding.DecodeString(sig.Value)
	if err != nil {
		t.Fatal(err)
	}
	sigFile := filepath.Join(dir, "manifest.sig.bin")
	if err := os.WriteFile(sigFile, value, 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sig.PublicKey, "ed25519:"))
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "signing.pub.pem")
	// The DER prefix of an Ed25519 SubjectPublicKeyInfo, then the 32 bytes: what the docs' printf does.
	run(append([]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}, raw...), "pkey", "-pubin", "-inform", "DER", "-out", pubFile)
	if out := run(nil, "pkeyutl", "-verify", "-pubin", "-inkey", pubFile, "-rawin", "-in", manifestFile, "-sigfile", sigFile); !bytes.Contains(out, []byte("Signature Verified Successfully")) {
		t.Fatalf("openssl: %s", out)
	}
	// And the public key openssl derives is the one the signature names.
	der := run(nil, "pkey", "-in", keyFile, "-pubout", "-outform", "DER")
	if got := catalog.FormatPublicKey(ed25519.PublicKey(der[len(der)-32:])); got != sig.PublicKey {
		t.Fatalf("openssl's public key %s, signature names %s", got, sig.PublicKey)
	}
}
