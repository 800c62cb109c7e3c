package backup_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	"github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/stack"
)

// writeDataKeyDir lays out a data key as the operator's Secret is mounted into backup jobs.
func writeDataKeyDir(t *testing.T, key datakey.Key) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, datakey.FileRecipient), []byte(key.Recipient), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, datakey.FileWrapped), key.Wrapped, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A tenant's backups are encrypted to its own data key only; restore and verify open them with
// the platform identity through the key's escrow copy in the same storage; once the key is
// destroyed, no earlier backup can be decrypted, and erasure removes the backups too.
func TestTenantDataKeyAndCryptoErasure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := stack.StartPostgres(t, "18")
	s3 := stack.StartS3(t)
	env := append(append(s3.Env(), "PG_BIN_DIR="+pg.BinDir), newSigner(t).env()...)
	loc := s3.Location("backups/prod")
	platform, stranger := newKey(t), newKey(t)
	key, err := datakey.Generate([]string{platform.recipient})
	if err != nil {
		t.Fatal(err)
	}
	keyDir := writeDataKeyDir(t, key)
	const uid = "0b7e2c61-5a3f-4d4e-9d1a-2f6c0e8b9a10"
	src := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", `CREATE TABLE orders (id int PRIMARY KEY, item text);
		INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 300) g`)
	backupArgs := []string{"backup", "--dsn", src, "--storage", loc, "--tenant", "acme", "--tenant-uid", uid, "--schedule", "daily", "--data-key", keyDir}
	failAgent(t, env, "--data-key and --recipient exclude each other", append(backupArgs, "--recipient", platform.recipient)...)
	failAgent(t, env, "--data-key needs --tenant-uid", "backup", "--dsn", src, "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--data-key", keyDir)
	first := mustAgent(t, env, backupArgs...).lastLine()
	pg.Exec(t, "app", `INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(301, 400) g`)
	second := mustAgent(t, env, backupArgs...).lastLine()

	m := readManifest(t, s3, "backups/prod/acme/daily/"+second+"/manifest.json")
	tenantRecipient, err := age.ParseX25519Recipient(key.Recipient)
	if err != nil {
		t.Fatal(err)
	}
	if m.DataKeyID != key.ID || len(m.Recipients) != 1 || m.Recipients[0] != backup.Fingerprint(tenantRecipient) || m.TenantUID != uid {
		t.Fatalf("manifest: dataKeyID %q recipients %v uid %q; want key %s as the only recipient", m.DataKeyID, m.Recipients, m.TenantUID, key.ID)
	}
	escrowKey := "backups/prod/acme/.keys/" + uid + "/" + key.ID + ".age"
	if got := readS3Object(t, s3, escrowKey); !bytes.Equal(got, key.Wrapped) {
		t.Fatalf("escrow object %s is not the wrapped key", escrowKey)
	}
	// The platform identity alone does not open the data: it is encrypted to the tenant key only.
	data := readS3Object(t, s3, "backups/prod/acme/daily/"+second+"/"+catalog.DataObject)
	platformIDs, err := backup.ReadIdentities(platform.identityFile)
	if err != nil {
		t.Fatal(err)
	}
	var nomatch *age.NoIdentityMatchError
	if _, err := age.Decrypt(bytes.NewReader(data), platformIDs...); !errors.As(err, &nomatch) {
		t.Fatalf("decrypting the data with the platform identity directly = %v, want no identity match", err)
	}

	// Restore and verify take the platform identity, as before per-tenant keys.
	dst := pg.CreateDatabase(t, "restored")
	mustAgent(t, env, "restore", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", "latest",
		"--identity-file", platform.identityFile, "--dsn", dst, "--no-owner")
	if n := queryInt(t, pg, "restored", `SELECT count(*) FROM orders`); n != 400 {
		t.Fatalf("restored %d orders, want 400", n)
	}
	out := mustAgent(t, env, "verify", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", first,
		"--identity-file", platform.identityFile).stdout
	if !strings.Contains(out, "restore drill ok") {
		t.Fatalf("verify drill: %s", out)
	}
	failAgent(t, env, "wrong identity: the backup is encrypted to tenant data key "+key.ID, "verify", "--storage", loc, "--tenant", "acme",
		"--schedule", "daily", "--backup", first, "--identity-file", stranger.identityFile)

	// Crypto-erasure: with the key destroyed, every earlier backup is unreadable even where its
	// objects remain (the state between the two steps of an erasure, or a copy kept elsewhere).
	parsed, err := storage.ParseLocation(loc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.OpenS3(ctx, parsed, storage.Credentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := catalog.PlanErasure(ctx, store, "acme", []string{uid}, time.Time{}) // every backup here recorded its UID
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.DataKeys) != 1 || len(plan.Unreadable) != 2 || len(plan.Plain) != 0 {
		t.Fatalf("erasure plan %+v: want one key and both backups unreadable", plan)
	}
	keysOnly := plan
	keysOnly.Unreadable = nil
	if err := catalog.Erase(ctx, store, keysOnly); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{first, second} {
		failAgent(t, env, "backup "+id+" of tenant acme cannot be decrypted by anyone: its data key "+key.ID+" is destroyed", "restore", "--storage", loc,
			"--tenant", "acme", "--schedule", "daily", "--backup", id, "--identity-file", platform.identityFile, "--dsn", dst, "--force", "--no-owner")
		failAgent(t, env, "its data key "+key.ID+" is destroyed", "verify", "--storage", loc,
			"--tenant", "acme", "--schedule", "daily", "--backup", id, "--identity-file", platform.identityFile)
	}
	if err := catalog.Erase(ctx, store, plan); err != nil {
		t.Fatal(err)
	}
	var left []string
	for o := range s3.Client.ListObjects(ctx, s3.Bucket, minio.ListObjectsOptions{Prefix: "backups/prod/acme/", Recursive: true}) {
		left = append(left, o.Key)
	}
	if len(left) != 0 {
		t.Fatalf("after erasure the tenant's prefix still holds %v", left)
	}
	failAgent(t, env, "no backups found for tenant acme schedule daily", "restore", "--storage", loc, "--tenant", "acme", "--schedule", "daily",
		"--backup", "latest", "--identity-file", platform.identityFile, "--dsn", dst, "--force")
}
