package backup

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// runBackupOfMethod runs backup: --method physical has flags of its own (runPhysicalBackup), a
// logical backup (the default) is runBackup's.
func runBackupOfMethod(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch m := backupMethod(args); m {
	case "", catalog.MethodLogical:
		return runBackup(ctx, args, stdout, stderr)
	case catalog.MethodPhysical:
		return runPhysicalBackup(ctx, args, stdout, stderr)
	default:
		return usageError(fmt.Sprintf("backup: --method %q: want logical or physical", m))
	}
}

// backupMethod is the value of --method in backup's arguments, empty when there is none.
func backupMethod(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "method" {
			continue
		}
		if !hasValue && i+1 < len(args) {
			value = args[i+1]
		}
		return value
	}
	return ""
}

func runPhysicalBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("backup", "backup --method physical --dsn URL --storage LOCATION --tenant T --schedule S --recipient AGE_PUBLIC_KEY... | --tenant-uid UID --data-key DIR [--signing-key-file F]\n"+
		"       [--incremental | --full-every DURATION --identity-file F]", stderr)
	fs.String("method", catalog.MethodPhysical, "physical: pg_basebackup of the whole cluster, for point-in-time recovery with the WAL archive (wal-archive); logical: pg_dump (see backup -h)")
	dsn := fs.String("dsn", "", "server to back up, postgres://USER[:PASSWORD]@HOST:PORT/DB, as a user with the REPLICATION attribute whom pg_hba.conf lets in for replication (a password may also come from PGPASSWORD)")
	loc := fs.String("storage", "", "where backups live: s3://BUCKET/PREFIX?endpoint=HOST:PORT&region=R[&insecure=true] or file:///PATH")
	tenant := fs.String("tenant", "", "tenant name")
	tenantUID := fs.String("tenant-uid", "", "UID of the Tenant object, recorded in the manifest")
	schedule := fs.String("schedule", "", "schedule name")
	var recipients, manifestRecipients stringList
	fs.Var(&recipients, "recipient", "age public key to encrypt to (repeatable); not with --data-key")
	dataKeyDir := fs.String("data-key", "", "directory holding the tenant's data key as the operator keeps it: the backup is encrypted to that key only, and the wrapped key is stored beside it; needs --tenant-uid")
	fs.Var(&manifestRecipients, "manifest-recipient", "age public key that may also read the backup_manifest, not the data (repeatable): the key of the job that takes the next incremental backup")
	pgBin := fs.String("pg-bin-dir", "", "directory holding pg_basebackup (default $PG_BIN_DIR, then /usr/lib/postgresql/<server major>/bin, then PATH)")
	compression := fs.String("compression", CompressionZstd, "codec of the base backup: zstd (about 3 times smaller than the cluster's files) or s2 (about 1.7 times smaller, a third of the CPU); restores read it from the manifest")
	level := fs.String("zstd-level", "fastest", "zstd level with --compression zstd: fastest, default, better or best (slower, smaller)")
	abandoned := fs.Duration("abandoned-after", 24*time.Hour, "remove unfinished uploads of this tenant and schedule older than this (0 keeps them)")
	partSize := byteSize(storage.DefaultPartSize)
	fs.Var(&partSize, "part-size", "S3 multipart part size; two parts are held in memory")
	signingKeyFile := fs.String("signing-key-file", os.Getenv(envSigningKeyFile), "Ed25519 private key (PKCS #8 PEM) that signs the manifest (default $"+envSigningKeyFile+")")
	incremental := fs.Bool("incremental", false, "take an incremental backup against the newest physical backup of this schedule (PostgreSQL 17 and later, summarize_wal = on); fail if there is none")
	fullEvery := fs.Duration("full-every", 0, "take an incremental backup unless the full backup its chain starts with is this old (e.g. 720h), or none can be taken; a full one then")
	identityFile := fs.String("identity-file", "", "age identity that reads the previous backup's backup_manifest, for an incremental backup (one of --recipient or --manifest-recipient of that backup)")
	manifestKey := fs.String("manifest-key", "", "age identity file that reads the previous backup's backup_manifest and may read this one's: --identity-file and --manifest-recipient of its public key in one, for a chain of incremental backups whose job holds no data key")
	checkpoint := fs.String("checkpoint", "fast", "fast: start at once with an immediate checkpoint; spread: let the server spread the checkpoint (gentler, starts later)")
	tf := fs.trustBackups()
	verbose := fs.Bool("v", false, "print progress on stderr")
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := fs.required("dsn", "storage", "tenant", "schedule"); err != nil {
		return err
	}
	if *dataKeyDir == "" && len(recipients) == 0 {
		return usageError("backup: missing --data-key or --recipient")
	}
	dataKey, err := readDataKeyFlag(*dataKeyDir)
	if err != nil {
		return err
	}
	if _, err := encryptionKeys(recipients, dataKey, *tenantUID); err != nil {
		return err
	}
	if *checkpoint != "fast" && *checkpoint != "spread" {
		return usageError(fmt.Sprintf("backup: --checkpoint %q: want fast or spread", *checkpoint))
	}
	if *incremental && *fullEvery > 0 {
		return usageError("backup: --incremental and --full-every exclude each other")
	}
	if !slices.Contains(physicalCompressions, *compression) {
		return usageError(fmt.Sprintf("backup: --compression %q: want s2 or zstd", *compression))
	}
	lvl, ok := zstdLevels[*level]
	if !ok {
		return usageError(fmt.Sprintf("backup: --zstd-level %q: want fastest, default, better or best", *level))
	}
	if partSize < storage.MinPartSize {
		return usageError(fmt.Sprintf("backup: --part-size must be at least %d", storage.MinPartSize))
	}
	signingKey, err := readSigningKey(*signingKeyFile)
	if err != nil {
		return err
	}
	trust, err := tf.trust()
	if err != nil {
		return err
	}
	o := PhysicalOptions{
		Options: Options{DSN: *dsn, Tenant: *tenant, TenantUID: *tenantUID, Schedule: *schedule, Recipients: recipients,
			DataKey: dataKey, SigningKey: signingKey, PgBinDir: *pgBin, ZstdLevel: lvl, AbandonedAfter: *abandoned, Log: progress(*verbose, stderr)},
		Incremental: *incremental, FullEvery: *fullEvery, ManifestRecipients: manifestRecipients, Trust: trust,
		SpreadCheckpoint: *checkpoint == "spread", Compression: *compression,
	}
	if *identityFile != "" {
		if o.Identities, err = ReadIdentities(*identityFile); err != nil {
			return err
		}
	}
	if *manifestKey != "" {
		ids, err := ReadIdentities(*manifestKey)
		if err != nil {
			return err
		}
		for _, id := range ids {
			x, ok := id.(*age.X25519Identity)
			if !ok {
				return usageError("backup: --manifest-key: want an age X25519 identity (AGE-SECRET-KEY-1...)")
			}
			o.ManifestRecipients = append(o.ManifestRecipients, x.Recipient().String())
		}
		o.Identities = append(o.Identities, ids...)
	}
	if o.Store, err = storage.Open(ctx, *loc, storage.WithPartSize(int(partSize))); err != nil {
		return err
	}
	// As for dumps: leave a core to pg_basebackup and the server.
	if n := runtime.GOMAXPROCS(0); n > 1 && os.Getenv("GOMAXPROCS") == "" {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(n - 1))
	}
	m, err := RunPhysical(ctx, o)
	if err != nil {
		return err
	}
	if signingKey == nil {
		fmt.Fprintf(stderr, "warning: backup %s is not signed (no --signing-key-file); restore and verify refuse it unless given --allow-unsigned\n", m.ID)
	}
	kind := "full"
	if m.Physical.Parent != "" {
		kind = "incremental to " + m.Physical.Parent
	}
	fmt.Fprintf(stdout, "backup %s of tenant %s schedule %s: physical, %s, system %s, timeline %d, WAL %s to %s, %s read, %s stored, sha256 %s\n",
		m.ID, m.Tenant, m.Schedule, kind, m.Physical.SystemID, m.Physical.Timeline, m.Physical.StartLSN, m.Physical.StopLSN,
		humanBytes(m.DumpSize), humanBytes(m.Object.Size), m.Object.SHA256)
	fmt.Fprintln(stdout, m.ID)
	return nil
}
