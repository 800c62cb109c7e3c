package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/stack"
)

// TestRestoreAndVerifyRefuseUnsignedAndForgedBackups: restore and verify take only backups signed
// by a trusted key. A forgery by someone who can write the storage — the data replaced by a dump of
// their own database, encrypted to the tenant's public age key, and the manifest's checksum
// recomputed — is refused, and it is the signature that refuses it: the same forgery, unsigned and
// accepted with --allow-unsigned, restores the attacker's data. Unsigned backups need
// --allow-unsigned; keys rotated out stay trusted when passed.
func TestRestoreAndVerifyRefuseUnsignedAndForgedBackups(t *testing.T) {
	t.Parallel()
	pg := stack.StartPostgres(t, "15")
	dir := t.TempDir()
	loc := "file://" + dir
	store, err := storage.OpenVolume(dir)
	if err != nil {
		t.Fatal(err)
	}
	k := newKey(t)
	current, previous := newSigner(t), newSigner(t)
	base := []string{"PG_BIN_DIR=" + pg.BinDir}
	src := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", `CREATE TABLE orders (id int PRIMARY KEY, customer text); INSERT INTO orders SELECT g, 'real ' || g FROM generate_series(1, 100) g`)
	evilSrc := pg.CreateDatabase(t, "evil")
	pg.Exec(t, "evil", `CREATE TABLE orders (id int PRIMARY KEY, customer text); INSERT INTO orders SELECT g, 'attacker ' || g FROM generate_series(1, 100) g`)

	backup := func(env []string, dsn, schedule string) string {
		t.Helper()
		return mustAgent(t, env, "backup", "--dsn", dsn, "--storage", loc, "--tenant", "acme", "--schedule", schedule, "--recipient", k.recipient).lastLine()
	}
	restoreArgs := func(id, db string, extra ...string) []string {
		return append([]string{"restore", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", id,
			"--identity-file", k.identityFile, "--dsn", pg.DSNFor(db)}, extra...)
	}
	verifyArgs := func(id string, extra ...string) []string {
		return append([]string{"verify", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", id}, extra...)
	}
	trusting := func(s ...signer) []string {
		env := append([]string(nil), base...)
		var keys []string
		for _, k := range s {
			keys = append(keys, k.publicKey)
		}
		return append(env, "TENANTOPS_SIGNING_PUBLIC_KEYS="+strings.Join(keys, ","))
	}

	// A signed backup: restored and verified by whoever trusts its key.
	signed := backup(append(base, "TENANTOPS_SIGNING_KEY_FILE="+current.keyFile), src, "daily")
	if _, err := os.Stat(filepath.Join(dir, "acme", "daily", signed, catalog.SignatureObject)); err != nil {
		t.Fatalf("the signed backup has no signature object: %v", err)
	}
	pg.CreateDatabase(t, "restored")
	mustAgent(t, trusting(current), restoreArgs(signed, "restored")...)
	mustAgent(t, trusting(current), verifyArgs(signed)...)
	list := mustAgent(t, trusting(current), "backups", "list", "--storage", loc).stdout
	if !strings.Contains(list, "SIGNATURE") || !strings.Contains(list, signed) || !strings.Contains(list, "Valid") {
		t.Fatalf("backups list with a key:\n%s", list)
	}

	// Without a trusted key, a signed backup cannot be checked, so it is refused; the error says
	// where the key is.
	pg.CreateDatabase(t, "untouched")
	failAgent(t, base, "error: backup "+signed+" of tenant acme schedule daily is refused: it is signed by key "+fingerprintOf(t, current)+" but no key is trusted; pass the BackupPolicy's public key with --signing-public-key", restoreArgs(signed, "untouched")...)

	// Rotation: a backup signed by the key before checks when both are trusted, not with the new one alone.
	rotated := backup(append(base, "TENANTOPS_SIGNING_KEY_FILE="+previous.keyFile), src, "daily")
	mustAgent(t, trusting(current, previous), verifyArgs(rotated)...)
	failAgent(t, trusting(current), "is refused: it is signed by key "+fingerprintOf(t, previous)+", which is not one of the 1 trusted keys", verifyArgs(rotated)...)

	// Unsigned (made without a key, as before this change): refused unless --allow-unsigned.
	r := mustAgent(t, base, "backup", "--dsn", src, "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--recipient", k.recipient)
	unsigned := r.lastLine()
	if !strings.Contains(r.stderr, "warning: backup "+unsigned+" is not signed") {
		t.Fatalf("an unsigned backup is made without a warning: %q", r.stderr)
	}
	failAgent(t, trusting(current), "error: backup "+unsigned+" of tenant acme schedule daily is refused: it is not signed; if it was made before backups were signed, pass --allow-unsigned", restoreArgs(unsigned, "untouched")...)
	failAgent(t, trusting(current), "is refused: it is not signed", verifyArgs(unsigned)...)
	mustAgent(t, trusting(current), verifyArgs(unsigned, "--allow-unsigned")...)

	// The forgery: the attacker's own database, encrypted to the tenant's recipient (a public key),
	// put in place of the signed backup's data, with the manifest's size and checksum recomputed.
	evil := backup(base, evilSrc, "scratch")
	evilManifest := readVolumeManifest(t, store, "acme", "scratch", evil)
	evilData := readObject(t, store, storage.Join(catalog.Dir("acme", "scratch", evil), catalog.DataObject))
	m := readVolumeManifest(t, store, "acme", "daily", signed)
	m.Object, m.Tables, m.DumpSize, m.CompressedSize = evilManifest.Object, evilManifest.Tables, evilManifest.DumpSize, evilManifest.CompressedSize
	target := catalog.Dir("acme", "daily", signed)
	if _, err := store.Put(context.Background(), storage.Join(target, catalog.DataObject), bytes.NewReader(evilData)); err != nil {
		t.Fatal(err)
	}
	if err := catalog.WriteManifest(context.Background(), store, m); err != nil {
		t.Fatal(err)
	}

	refusal := "is refused: its signature by key " + fingerprintOf(t, current) + " does not match its manifest"
	for _, c := range []struct {
		args []string
		want string
	}{
		{restoreArgs(signed, "untouched"), refusal},
		{restoreArgs("latest", "untouched"), "backup " + unsigned + " of tenant acme schedule daily is refused: it is not signed"},
		{verifyArgs(signed), refusal},
		{verifyArgs(signed, "--identity-file", k.identityFile, "--allow-unsigned"), refusal},
	} {
		failAgent(t, trusting(current), c.want, c.args...)
	}
	if n := tableCount(t, pg, "untouched"); n != 0 {
		t.Fatalf("refused restores left %d tables", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "acme", "daily", signed, catalog.VerificationObject)); err != nil {
		t.Fatalf("the signed backup lost its verification: %v", err)
	}
	if v := readVerification(t, store, target); v.BackupID != signed || !v.OK || v.Kind != catalog.KindChecksum {
		t.Fatalf("a refused verify changed the recorded verification: %+v", v)
	}
	list = mustAgent(t, trusting(current), "backups", "list", "--storage", loc, "--tenant", "acme", "--schedule", "daily").stdout
	if !strings.Contains(list, "Invalid") || !strings.Contains(list, "Missing") {
		t.Fatalf("backups list shows no Invalid and Missing backups:\n%s", list)
	}

	// The signature is what stops it: without it, accepted as unsigned, the forgery restores the
	// attacker's rows into the tenant's database.
	if err := store.Delete(context.Background(), storage.Join(target, catalog.SignatureObject)); err != nil {
		t.Fatal(err)
	}
	pg.CreateDatabase(t, "fooled")
	mustAgent(t, trusting(current), restoreArgs(signed, "fooled", "--allow-unsigned")...)
	var customer string
	if err := queryRow(t, pg, "fooled", "SELECT customer FROM orders WHERE id = 1", &customer); err != nil || customer != "attacker 1" {
		t.Fatalf("the forgery restored %q (%v), want the attacker's rows: the test's forgery is not a working one", customer, err)
	}
}

func fingerprintOf(t *testing.T, s signer) string {
	t.Helper()
	pub, err := catalog.ParsePublicKey(s.publicKey)
	if err != nil {
		t.Fatal(err)
	}
	return catalog.KeyFingerprint(pub)
}

func readObject(t *testing.T, store storage.Store, key string) []byte {
	t.Helper()
	rc, err := store.Get(context.Background(), key)
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

func readVolumeManifest(t *testing.T, store storage.Store, tenant, schedule, id string) catalog.Manifest {
	t.Helper()
	m, err := catalog.DecodeManifest(readObject(t, store, storage.Join(catalog.Dir(tenant, schedule, id), catalog.ManifestObject)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readVerification(t *testing.T, store storage.Store, dir string) catalog.Verification {
	t.Helper()
	var v catalog.Verification
	if err := json.Unmarshal(readObject(t, store, storage.Join(dir, catalog.VerificationObject)), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func queryRow(t *testing.T, pg *stack.Postgres, db, q string, dest ...any) error {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSNFor(db))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, q).Scan(dest...)
}
