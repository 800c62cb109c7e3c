package backup_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/stack"
)

// bucketPolicy builds the bucket policy of docs/storage-credentials.md, from the page's own
// statements, for the given tenants' writer and reader accounts and the pruner: the policy the
// page tells people to set is the one tested here.
func bucketPolicy(t *testing.T, bucket, prefix string, tenants map[string][2]stack.Account, pruner stack.Account) string {
	t.Helper()
	page, err := os.ReadFile("../../docs/storage-credentials.md")
	if err != nil {
		t.Fatal(err)
	}
	block := func(name string) string {
		m := regexp.MustCompile("(?s)```json " + name + "\n(.*?)```").FindSubmatch(page)
		if m == nil {
			t.Fatalf("docs/storage-credentials.md has no ```json %s block", name)
		}
		return string(m[1])
	}
	fill := func(text string, r ...string) []any {
		r = append(r, "BUCKET", bucket, "PREFIX", prefix)
		var out []any
		if err := json.Unmarshal([]byte(strings.NewReplacer(r...).Replace(text)), &out); err != nil {
			t.Fatalf("statements: %v", err)
		}
		return out
	}
	statements := fill(block("pruner-statements"), "PRUNER", pruner.AccessKey)
	for tenant, a := range tenants {
		statements = append(statements, fill(block("tenant-statements"), "TENANT", tenant, "WRITER", a[0].AccessKey, "READER", a[1].AccessKey)...)
	}
	policy, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": statements})
	if err != nil {
		t.Fatal(err)
	}
	return string(policy)
}

// TestCredentialSplitOnS3 runs backups, verifications, restores and pruning on versitygw with
// IAM, each with its own account and the bucket policy of docs/storage-credentials.md, and proves
// the split: a tenant's writer can put under its own prefix only, and can neither list, read nor
// delete, its own objects or another tenant's (acme2, whose name starts with acme's); a tenant's
// reader can list, read and record verifications and restores under its own prefix, nothing
// else; only the pruner deletes, and it writes nothing but its prune records. A backup forged with the writer's rights (data and
// manifest replaced, checksum recomputed) is refused by restore and verify.
func TestCredentialSplitOnS3(t *testing.T) {
	t.Parallel()
	s3 := stack.StartS3(t, stack.WithIAM())
	pg := stack.StartPostgres(t, "15")
	const prefix = "prod"
	loc := s3.Location(prefix)
	accounts := map[string][2]stack.Account{}
	for _, tenant := range []string{"acme", "acme2"} {
		accounts[tenant] = [2]stack.Account{s3.CreateUser(t), s3.CreateUser(t)}
	}
	pruner := s3.CreateUser(t)
	s3.SetBucketPolicy(t, bucketPolicy(t, s3.Bucket, prefix, accounts, pruner))
	writer := func(tenant string) stack.Account { return accounts[tenant][0] }
	reader := func(tenant string) stack.Account { return accounts[tenant][1] }

	k := newKey(t)
	sig := newSigner(t)
	pub, err := catalog.ParsePublicKey(sig.publicKey)
	if err != nil {
		t.Fatal(err)
	}
	trust := catalog.Trust{Keys: []ed25519.PublicKey{pub}}
	agentEnv := func(a stack.Account) []string {
		return append(append(a.Env(), "PG_BIN_DIR="+pg.BinDir), sig.env()...)
	}
	ctx := context.Background()
	open := func(a stack.Account) storage.Store {
		t.Helper()
		l, err := storage.ParseLocation(loc)
		if err != nil {
			t.Fatal(err)
		}
		// Every credential opens the store, though none of them may list the whole bucket.
		s, err := storage.OpenS3(ctx, l, storage.Credentials{AccessKeyID: a.AccessKey, SecretAccessKey: a.SecretKey})
		if err != nil {
			t.Fatalf("open the store as %s: %v", a.AccessKey, err)
		}
		return s
	}
	denied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrAccessDenied) {
			t.Errorf("%s: %v, want access denied", what, err)
		}
	}

	// Each tenant's backup job, with its own writer: the backup is made, the cleanup of killed
	// runs is left to the operator.
	ids := map[string]string{}
	for tenant := range accounts {
		src := pg.CreateDatabase(t, "app_"+tenant)
		pg.Exec(t, "app_"+tenant, `CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 50)`)
		r := mustAgent(t, agentEnv(writer(tenant)), "backup", "--dsn", src, "--storage", loc, "--tenant", tenant, "--schedule", "daily", "--recipient", k.recipient, "-v")
		ids[tenant] = r.lastLine()
		if !strings.Contains(r.stderr, "not removing leftovers of earlier runs") {
			t.Fatalf("the writer's backup did not say it left the cleanup: %s", r.stderr)
		}
	}
	manifest := func(tenant string) string {
		return storage.Join(catalog.Dir(tenant, "daily", ids[tenant]), catalog.ManifestObject)
	}
	before := objectsAsRoot(t, s3)

	// The writer of acme.
	w := open(writer("acme"))
	for _, tenant := range []string{"acme", "acme2"} {
		_, err := w.List(ctx, tenant)
		denied("writer of acme lists "+tenant, err)
		_, err = w.Get(ctx, manifest(tenant))
		denied("writer of acme reads "+tenant+"'s manifest", err)
		denied("writer of acme deletes "+tenant+"'s manifest", w.Delete(ctx, manifest(tenant)))
	}
	_, err = w.Put(ctx, storage.Join(catalog.Dir("acme2", "daily", ids["acme2"]), catalog.DataObject), strings.NewReader("garbage"))
	denied("writer of acme overwrites acme2's data", err)
	_, err = w.RemoveIncomplete(ctx, "acme", time.Now())
	denied("writer of acme lists unfinished uploads", err)
	if _, err := w.Put(ctx, "acme/daily/20990101T000000Z-000000/backup.dump.zst.age", strings.NewReader("an orphan")); err != nil {
		t.Fatalf("writer of acme cannot put under its own prefix: %v", err)
	}

	// The reader of acme.
	rd := open(reader("acme"))
	entries, err := catalog.ListEntries(ctx, rd, "acme", "daily", catalog.WithTrust(trust))
	if err != nil || len(entries) != 1 || entries[0].Signature != catalog.SignatureValid {
		t.Fatalf("reader of acme lists its backups: %+v, %v", entries, err)
	}
	_, err = rd.List(ctx, "acme2")
	denied("reader of acme lists acme2", err)
	_, err = rd.Get(ctx, manifest("acme2"))
	denied("reader of acme reads acme2's manifest", err)
	for _, name := range []string{catalog.DataObject, catalog.ManifestObject, catalog.SignatureObject} {
		_, err = rd.Put(ctx, storage.Join(catalog.Dir("acme", "daily", ids["acme"]), name), strings.NewReader("{}"))
		denied("reader of acme writes its "+name, err)
	}
	denied("reader of acme deletes its manifest", rd.Delete(ctx, manifest("acme")))
	failAgent(t, agentEnv(reader("acme")), "access denied", "verify", "--storage", loc, "--tenant", "acme2", "--schedule", "daily", "--backup", "latest")

	// Nothing the writer and reader were refused happened.
	if after := objectsAsRoot(t, s3); !sameObjects(before, after, "acme/daily/20990101T000000Z-000000/") {
		t.Fatalf("refused requests changed the bucket:\nbefore %v\nafter  %v", before, after)
	}

	// The reader verifies and restores.
	mustAgent(t, agentEnv(reader("acme")), "verify", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", "latest",
		"--identity-file", k.identityFile)
	pg.CreateDatabase(t, "restored")
	r := mustAgent(t, agentEnv(reader("acme")), "restore", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", ids["acme"],
		"--identity-file", k.identityFile, "--dsn", pg.DSNFor("restored"), "--tenant-uid", "uid-acme")
	// ... and records the restore, under its own tenant's .restores only.
	if strings.Contains(r.stderr, "not recorded") {
		t.Fatalf("the reader's restore was not recorded: %s", r.stderr)
	}
	if restores, _, err := catalog.ReadRestoreRecords(ctx, rd, "acme", "uid-acme", 0); err != nil || len(restores) != 1 || restores[0].BackupIDs[0] != ids["acme"] {
		t.Fatalf("restore records of acme: %+v, %v", restores, err)
	}
	_, err = rd.Put(ctx, "acme2/.restores/uid-acme2/2026-01-01T00:00:00Z-000000.json", strings.NewReader("{}"))
	denied("reader of acme records a restore of acme2", err)
	_, err = rd.Put(ctx, "acme/.prunes/uid-acme/daily/2026-01-01T00:00:00Z-000000.json", strings.NewReader("{}"))
	denied("reader of acme writes a prune record", err)

	// A forgery with the writer's rights, which include overwriting its own tenant's objects:
	// new data, its size and checksum in the manifest. Restore and verify refuse it.
	m, err := catalog.GetTrusted(ctx, rd, "acme", "daily", ids["acme"], trust)
	if err != nil {
		t.Fatal(err)
	}
	dir := catalog.Dir("acme", "daily", ids["acme"])
	evil := []byte("not what the tenant backed up")
	if _, err := w.Put(ctx, storage.Join(dir, catalog.DataObject), bytes.NewReader(evil)); err != nil {
		t.Fatalf("writer of acme cannot overwrite its own data: %v", err)
	}
	forged := m.Manifest
	forged.Object.Size, forged.Object.SHA256 = int64(len(evil)), sha256Hex(evil)
	if err := catalog.WriteManifest(ctx, w, forged); err != nil {
		t.Fatalf("writer of acme cannot overwrite its own manifest: %v", err)
	}
	refusal := "error: backup " + ids["acme"] + " of tenant acme schedule daily is refused: its signature by key " + catalog.KeyFingerprint(pub) + " does not match its manifest"
	pg.CreateDatabase(t, "untouched")
	failAgent(t, agentEnv(reader("acme")), refusal, "restore", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", "latest",
		"--identity-file", k.identityFile, "--dsn", pg.DSNFor("untouched"))
	failAgent(t, agentEnv(reader("acme")), refusal, "verify", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", ids["acme"])
	if n := tableCount(t, pg, "untouched"); n != 0 {
		t.Fatalf("the refused restore left %d tables", n)
	}

	// The pruner: lists every tenant and sees the forgery, cleans up orphans, deletes, never writes.
	p := open(pruner)
	for tenant, want := range map[string]catalog.SignatureStatus{"acme": catalog.SignatureInvalid, "acme2": catalog.SignatureValid} {
		entries, err := catalog.ListEntries(ctx, p, tenant, "daily", catalog.WithTrust(trust))
		if err != nil || len(entries) != 1 || entries[0].Signature != want {
			t.Fatalf("pruner lists %s: %+v, %v (want signature %s)", tenant, entries, err, want)
		}
	}
	removed, err := catalog.DeleteOrphans(ctx, p, "acme", "daily", time.Now().Add(time.Hour))
	if err != nil || strings.Join(removed, ",") != "acme/daily/20990101T000000Z-000000/backup.dump.zst.age" {
		t.Fatalf("pruner removes the orphan: %v, %v", removed, err)
	}
	_, err = p.Put(ctx, manifest("acme2"), strings.NewReader("{}"))
	denied("pruner writes", err)
	_, err = p.Put(ctx, "acme2/.restores/uid-acme2/2026-01-01T00:00:00Z-000000.json", strings.NewReader("{}"))
	denied("pruner writes a restore record", err)
	// ... but for its records of what it pruned.
	if _, err := catalog.WritePruneRecord(ctx, p, catalog.PruneRecord{Tenant: "acme2", TenantUID: "uid-acme2", Schedule: "daily", PrunedAt: time.Now(),
		Due: 1, Pruned: []catalog.PrunedBackup{{ID: "gone"}}}); err != nil {
		t.Fatalf("pruner records a pruning: %v", err)
	}
	if err := catalog.Delete(ctx, p, "acme", "daily", ids["acme"]); err != nil {
		t.Fatalf("pruner deletes a backup: %v", err)
	}
	if left, err := catalog.ListEntries(ctx, p, "acme", "daily"); err != nil || len(left) != 0 {
		t.Fatalf("after the pruner's delete: %+v, %v", left, err)
	}
}

// objectsAsRoot lists the whole bucket with the root account: key and ETag of every object.
func objectsAsRoot(t *testing.T, s3 *stack.S3) map[string]string {
	t.Helper()
	out := map[string]string{}
	for o := range s3.Client.ListObjects(context.Background(), s3.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		out[o.Key] = o.ETag
	}
	return out
}

// sameObjects compares two listings, ignoring keys under the prefix the writer was allowed.
func sameObjects(a, b map[string]string, allowed string) bool {
	for _, m := range []map[string]string{a, b} {
		for k := range m {
			if strings.Contains(k, allowed) {
				delete(m, k)
			}
		}
	}
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
