package backup_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/test/stack"
)

// ledgerAppSQL is an application with an erasure function of its own: it deletes a customer and
// what hangs off them, and does nothing for a subject it does not know (so it can be replayed).
const ledgerAppSQL = `
CREATE SCHEMA app;
CREATE TABLE app.customers (id text PRIMARY KEY, name text NOT NULL);
CREATE TABLE app.orders (id serial PRIMARY KEY, customer text NOT NULL REFERENCES app.customers, item text);
INSERT INTO app.customers VALUES ('alice', 'Alice A.'), ('bob', 'Bob B.'), (E'o''hara\\x :v', 'Seán O''Hara');
INSERT INTO app.orders (customer, item) VALUES ('alice', 'tea'), ('bob', 'coffee'), (E'o''hara\\x :v', 'whiskey');
CREATE FUNCTION app.forget(subject text) RETURNS void LANGUAGE sql AS $$
  DELETE FROM app.orders WHERE customer = subject;
  DELETE FROM app.customers WHERE id = subject;
$$;
`

// An erasure request carried out after a backup is replayed by every later restore of that backup,
// inside the restore's transaction: the subject does not come back. A ledger that cannot be read
// refuses the restore (saying how many requests are at stake) unless --ignore-ledger, and verify
// counts what a restore would replay.
func TestErasureLedgerSurvivesRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := stack.StartPostgres(t, "18")
	s3 := stack.StartS3(t)
	sig := newSigner(t)
	env := append(append(s3.Env(), "PG_BIN_DIR="+pg.BinDir), sig.env()...)
	loc, other := s3.Location("backups/hot"), s3.Location("backups/cold")
	platform := newKey(t)
	key, err := datakey.Generate([]string{platform.recipient})
	if err != nil {
		t.Fatal(err)
	}
	keyDir := writeDataKeyDir(t, key)
	const uid = "5d1e9a3c-7b2f-4c8e-a6d0-3f9b1c2e4a57"
	live := pg.CreateDatabase(t, "live")
	pg.Exec(t, "live", ledgerAppSQL)
	old := mustAgent(t, env, "backup", "--dsn", live, "--storage", loc, "--tenant", "acme", "--tenant-uid", uid, "--schedule", "daily", "--data-key", keyDir).lastLine()

	forget := func(subject, request string) result {
		return mustAgent(t, env, "forget", "--storage", loc, "--storage", other, "--tenant", "acme", "--tenant-uid", uid, "--data-key", keyDir,
			"--dsn", live, "--call", "app.forget", "--subject", subject, "--request", request)
	}
	r := forget("alice", "forget-alice/0e4c2a8b-1111-4d6e-9f00-aa00bb11cc22")
	if !strings.Contains(r.stdout, "recorded in the ledger of 2 storage locations") || !strings.HasPrefix(r.lastLine(), "acme/.ledger/"+uid+"/") {
		t.Fatalf("forget: %s", r.stdout)
	}
	forget(`o'hara\x :v`, "forget-ohara/0e4c2a8b-2222-4d6e-9f00-aa00bb11cc22")
	// Retried (its Job ran again): the function does nothing, the ledger gets nothing new.
	forget("alice", "forget-alice/0e4c2a8b-1111-4d6e-9f00-aa00bb11cc22")
	if n := queryInt(t, pg, "live", `SELECT count(*) FROM app.customers`); n != 1 {
		t.Fatalf("live database has %d customers after the erasures, want 1 (bob)", n)
	}
	for _, prefix := range []string{"backups/hot/acme/.ledger/", "backups/cold/acme/.ledger/"} {
		if n := len(listS3(t, s3, prefix)); n != 2 {
			t.Fatalf("%s holds %d entries, want 2", prefix, n)
		}
	}
	// The subject is sealed: nothing in the stored entry shows it.
	for _, k := range listS3(t, s3, "backups/hot/acme/.ledger/") {
		if data := readS3Object(t, s3, k); bytes.Contains(data, []byte("alice")) || bytes.Contains(data, []byte("hara")) {
			t.Fatalf("ledger entry %s shows a subject in the clear:\n%s", k, data)
		}
	}

	verify := mustAgent(t, env, "verify", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", old)
	if !strings.Contains(verify.stdout, "a restore would replay 2 erasure requests") {
		t.Fatalf("verify: %s", verify.stdout)
	}

	restoreArgs := func(db string) []string {
		return []string{"restore", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", old,
			"--identity-file", platform.identityFile, "--dsn", pg.CreateDatabase(t, db)}
	}
	r = mustAgent(t, env, restoreArgs("restored")...)
	if !strings.Contains(r.stdout, "replayed 2 erasure requests") {
		t.Fatalf("restore: %s", r.stdout)
	}
	if got := queryString(t, pg, "restored", `SELECT string_agg(id, ',' ORDER BY id) FROM app.customers`); got != "bob" {
		t.Fatalf("restored customers: %q, want bob alone: the erased subjects came back", got)
	}
	if n := queryInt(t, pg, "restored", `SELECT count(*) FROM app.orders`); n != 1 {
		t.Fatalf("restored orders: %d, want bob's 1", n)
	}
	// The restore is recorded beside the backups: what it restored, into which database, and the
	// two requests it replayed by their UIDs, oldest first; no subject, no request name.
	store := openS3Store(t, s3, loc)
	restores := func() []catalog.RestoreRecord {
		t.Helper()
		records, _, err := catalog.ReadRestoreRecords(ctx, store, "acme", uid, 0)
		if err != nil {
			t.Fatal(err)
		}
		return records
	}
	records := restores()
	if len(records) != 1 {
		t.Fatalf("%d restore records, want 1", len(records))
	}
	rec := records[0]
	if rec.Tenant != "acme" || rec.TenantUID != uid || rec.Method != catalog.MethodLogical || rec.Schedule != "daily" ||
		!slices.Equal(rec.BackupIDs, []string{old}) || rec.Database != "restored" || rec.IgnoreLedger || rec.LedgerNotReplayed != "" ||
		!slices.Equal(rec.LedgerReplayed, []string{"0e4c2a8b-1111-4d6e-9f00-aa00bb11cc22", "0e4c2a8b-2222-4d6e-9f00-aa00bb11cc22"}) ||
		time.Since(rec.RestoredAt) > time.Minute {
		t.Errorf("restore record: %+v", rec)
	}
	if data := readS3Object(t, s3, "backups/hot/"+rec.Key); bytes.Contains(data, []byte("alice")) || bytes.Contains(data, []byte("hara")) ||
		bytes.Contains(data, []byte("forget-")) || bytes.Contains(data, []byte("postgres://")) {
		t.Errorf("the restore record holds a subject, a request name or a DSN:\n%s", data)
	}
	// A restore drill restores into a scratch database that is thrown away: it is not recorded.
	if out := mustAgent(t, env, "verify", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", old,
		"--identity-file", platform.identityFile).stdout; !strings.Contains(out, "restore drill ok") {
		t.Fatalf("verify drill: %s", out)
	}
	if n := len(restores()); n != 1 {
		t.Fatalf("%d restore records after a drill, want still 1", n)
	}

	// A ledger that cannot be read: an entry nobody signed (someone with write access to the
	// bucket). The restore refuses before it touches the target, and says what is at stake.
	forged := "backups/hot/acme/.ledger/" + uid + "/2099-01-01T00:00:00.000000000Z-forged.json"
	if _, err := s3.Client.PutObject(ctx, s3.Bucket, forged, strings.NewReader(`{"entry":{"formatVersion":1}}`), -1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	line := failAgent(t, env, "3 erasure requests might be undone", restoreArgs("refused")...)
	if !strings.Contains(line, "--ignore-ledger") || !strings.Contains(line, "not signed") {
		t.Fatalf("refusal does not say why or what to do: %s", line)
	}
	if n := tableCount(t, pg, "refused"); n != 0 {
		t.Fatalf("a refused restore left %d tables", n)
	}
	if n := len(restores()); n != 1 {
		t.Fatalf("%d restore records after a refused restore, want still 1", n)
	}
	verify = mustAgent(t, env, "verify", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", old)
	if !strings.Contains(verify.stdout, "erasure ledger unreadable") {
		t.Fatalf("verify of an unreadable ledger: %s", verify.stdout)
	}
	r = mustAgent(t, env, append(restoreArgs("ignored"), "--ignore-ledger")...)
	if !strings.Contains(r.stderr, "warning: restored without replaying the erasure ledger") {
		t.Fatalf("restore --ignore-ledger gave no warning: %s", r.stderr)
	}
	if n := queryInt(t, pg, "ignored", `SELECT count(*) FROM app.customers`); n != 3 {
		t.Fatalf("restore --ignore-ledger: %d customers, want the backup's 3", n)
	}
	// Recorded with the ledger not replayed, and why: the evidence flags it.
	if records := restores(); len(records) != 2 || records[0].Database != "ignored" || !records[0].IgnoreLedger ||
		!strings.Contains(records[0].LedgerNotReplayed, "not signed") || len(records[0].LedgerReplayed) != 0 {
		t.Fatalf("restore records after --ignore-ledger: %+v", records)
	}
	if err := s3.Client.RemoveObject(ctx, s3.Bucket, forged, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	// The ledger's entries are sealed to the tenant key: once its escrow copy is gone (the
	// tenant's crypto-erasure), the ledger cannot be read either.
	coldBackup := mustAgent(t, env, "backup", "--dsn", pg.DSNFor("restored"), "--storage", other, "--tenant", "acme", "--tenant-uid", uid, "--schedule", "weekly",
		"--recipient", platform.recipient).lastLine()
	// (made after the requests, within the clock-skew allowance: both are replayed, harmlessly)
	if err := s3.Client.RemoveObject(ctx, s3.Bucket, "backups/cold/acme/.keys/"+uid+"/"+key.ID+".age", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	failAgent(t, env, "2 erasure requests might be undone", "restore", "--storage", other, "--tenant", "acme", "--schedule", "weekly", "--backup", coldBackup,
		"--identity-file", platform.identityFile, "--dsn", pg.CreateDatabase(t, "keyless"))
}

func listS3(t *testing.T, s3 *stack.S3, prefix string) []string {
	t.Helper()
	var keys []string
	for o := range s3.Client.ListObjects(context.Background(), s3.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}
