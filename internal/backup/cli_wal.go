package backup

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// Environment variables that stand for the flags of wal-archive and wal-restore, so that
// archive_command and restore_command stay short and the database pod's configuration lives in
// its environment. Keys are files, never values (see envSigningKeyFile).
const (
	envStorage      = "TENANTOPS_STORAGE"
	envTenant       = "TENANTOPS_TENANT"
	envTenantUID    = "TENANTOPS_TENANT_UID"
	envRecipients   = "TENANTOPS_RECIPIENTS"
	envDataKey      = "TENANTOPS_DATA_KEY"
	envIdentityFile = "TENANTOPS_IDENTITY_FILE"
)

// exitAbortRecovery is wal-restore's status for every failure but a file that is not archived.
// PostgreSQL takes any status up to 125 from restore_command for "no such file", which ends
// recovery there: a storage outage or a damaged file would then end a restore early, at a point
// the user did not ask for, and promote. A status above 125 makes it stop recovery with an error
// instead, so the restore can be retried.
const exitAbortRecovery = 126

// walCommand parses the flags of wal-archive and wal-restore, which take two positional
// arguments after them, PostgreSQL's %p and %f (or %f and %p).
func walCommand(c *command, args []string, first, second string) (string, string, error) {
	if err := c.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(c.stderr, "usage: tenant-operator %s\n\nflags:\n", c.synopsis)
			c.SetOutput(c.stderr)
			c.PrintDefaults()
			return "", "", err
		}
		return "", "", usageError(fmt.Sprintf("%s: %v (see tenant-operator %s -h)", c.Name(), err, c.Name()))
	}
	if c.NArg() != 2 {
		return "", "", usageError(fmt.Sprintf("%s: want two arguments, %s and %s (see tenant-operator %s -h)", c.Name(), first, second, c.Name()))
	}
	return c.Arg(0), c.Arg(1), nil
}

// envList splits a list given in the environment at commas and white space.
func envList(name string) []string {
	return strings.FieldsFunc(os.Getenv(name), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
}

func readSigningKey(file string) (ed25519.PrivateKey, error) {
	if file == "" {
		return nil, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	key, err := catalog.ParseSigningKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return key, nil
}

// walCommandTimeout bounds one wal-archive or wal-restore: a storage that stalls must not hold
// PostgreSQL's archiver or recovery forever. A 1 GiB segment at 10 MiB/s takes under 2 minutes.
const walCommandTimeout = 5 * time.Minute

func runWALArchive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("wal-archive", "wal-archive [flags] %p %f\n\n"+
		"As PostgreSQL's archive_command: archive_command = 'tenant-operator wal-archive %p %f', with the\n"+
		"flags in the server's environment ($"+envStorage+", $"+envTenant+", $"+envRecipients+" or $"+envDataKey+" with $"+envTenantUID+", $"+envSigningKeyFile+").\n"+
		"Exits 0 once the file is archived (or was, with the same content), non-zero otherwise: PostgreSQL keeps it and retries.", stderr)
	loc := fs.String("storage", os.Getenv(envStorage), "where backups live (see backup -h); default $"+envStorage)
	tenant := fs.String("tenant", os.Getenv(envTenant), "tenant name; default $"+envTenant)
	tenantUID := fs.String("tenant-uid", os.Getenv(envTenantUID), "UID of the Tenant object, recorded with each file; default $"+envTenantUID)
	recipients := stringList(envList(envRecipients))
	fs.Var(&recipients, "recipient", "age public key to encrypt to (repeatable); default $"+envRecipients+", separated by commas or spaces; not with --data-key")
	dataKeyDir := fs.String("data-key", os.Getenv(envDataKey), "directory holding the tenant's data key as the operator keeps it: files are encrypted to it only, and the wrapped key is stored beside them; needs --tenant-uid; default $"+envDataKey)
	signingKeyFile := fs.String("signing-key-file", os.Getenv(envSigningKeyFile), "Ed25519 private key (PKCS #8 PEM) that signs each file's description; default $"+envSigningKeyFile)
	pgdata := fs.String("pgdata", os.Getenv("PGDATA"), "the cluster's data directory; default $PGDATA, else the working directory (where PostgreSQL runs archive_command)")
	level := fs.String("zstd-level", "fastest", "zstd level: fastest, default, better or best")
	timeout := fs.Duration("timeout", walCommandTimeout, "give up on a file after this long (PostgreSQL keeps it and tries again)")
	verbose := fs.Bool("v", false, "print what was done on stderr")
	path, name, err := walCommand(fs, args, "%p", "%f")
	if err != nil {
		return err
	}
	if err := fs.required("storage", "tenant"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *dataKeyDir == "" && len(recipients) == 0 {
		return usageError("wal-archive: missing --data-key or --recipient")
	}
	dataKey, err := readDataKeyFlag(*dataKeyDir)
	if err != nil {
		return err
	}
	lvl, ok := zstdLevels[*level]
	if !ok {
		return usageError(fmt.Sprintf("wal-archive: --zstd-level %q: want fastest, default, better or best", *level))
	}
	key, err := readSigningKey(*signingKeyFile)
	if err != nil {
		return err
	}
	// One request per file: a part as large as the file (and what compression and encryption may
	// add) sends it in a single PUT, which a killed archiver cannot leave half done.
	partSize := storage.DefaultPartSize
	if fi, err := os.Stat(resolve(*pgdata, path)); err == nil && fi.Size()+fi.Size()/64+(1<<20) > int64(partSize) {
		partSize = int(fi.Size() + fi.Size()/64 + (1 << 20))
	}
	store, err := storage.Open(ctx, *loc, storage.WithPartSize(partSize))
	if err != nil {
		return err
	}
	_, already, err := ArchiveWAL(ctx, WALArchiveOptions{Store: store, Tenant: *tenant, TenantUID: *tenantUID, Recipients: recipients, DataKey: dataKey,
		SigningKey: key, Path: path, Name: name, DataDir: *pgdata, ZstdLevel: lvl, Log: progress(*verbose, stderr)})
	if err != nil {
		return fmt.Errorf("wal-archive %s: %w", name, err)
	}
	if already {
		logf(progress(*verbose, stderr), "wal-archive: %s was archived already, with the same content", name)
	}
	return nil
}

// resolve is path as archive_command's %p means it: relative to the data directory.
func resolve(dataDir, path string) string {
	if dataDir == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dataDir, path)
}

// runWALRestore is restore_command. It returns its exit status itself: 1 for a file that is not
// archived, without a word unless -v (recovery asks for files past the end of the archive as a
// matter of course); exitAbortRecovery for anything else, after one line on stderr, which
// PostgreSQL puts in its log.
func runWALRestore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newCommand("wal-restore", "wal-restore [flags] %f %p\n\n"+
		"As PostgreSQL's restore_command: restore_command = 'tenant-operator wal-restore %f %p', with the\n"+
		"flags in the server's environment ($"+envStorage+", $"+envTenant+", $"+envIdentityFile+", $"+envSigningPublicKeys+").\n"+
		"Exits 0 once the file is written, 1 when it is not archived, 126 (which stops recovery) on any other failure.", stderr)
	loc := fs.String("storage", os.Getenv(envStorage), "where backups live (see backup -h); default $"+envStorage)
	tenant := fs.String("tenant", os.Getenv(envTenant), "tenant name; default $"+envTenant)
	systemID := fs.String("system-id", "", "database system identifier of the cluster whose WAL to read; default: the one in the data directory's control file")
	identityFile := fs.String("identity-file", os.Getenv(envIdentityFile), "age identity file; default $"+envIdentityFile)
	pgdata := fs.String("pgdata", os.Getenv("PGDATA"), "the data directory being recovered; default $PGDATA, else the working directory (where PostgreSQL runs restore_command)")
	spool := fs.String("spool", "", "directory (relative to the data directory) where the restore running the server prefetches segments, checked: a segment found there is moved into place instead of fetched (restore --to-time sets it)")
	tf := fs.trustBackups()
	timeout := fs.Duration("timeout", walCommandTimeout, "give up on a file after this long: recovery stops with the error rather than waiting on a storage that stalls")
	verbose := fs.Bool("v", false, "print what was done on stderr")
	fail := func(err error) int {
		fmt.Fprintln(stderr, errorLine(err))
		return exitAbortRecovery
	}
	name, path, err := walCommand(fs, args, "%f", "%p")
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return fail(err)
	}
	if err := fs.required("storage", "tenant", "identity-file"); err != nil {
		return fail(err)
	}
	o := WALRestoreOptions{Tenant: *tenant, SystemID: *systemID, Name: name, Path: path, DataDir: *pgdata, Spool: *spool, Log: progress(*verbose, stderr)}
	// Before anything else, which the spool does not need: opening the storage costs a request.
	if RestoreSpooled(o) {
		return exitOK
	}
	o.Spool = "" // looked at already
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	trust, err := tf.trust()
	if err != nil {
		return fail(err)
	}
	ids, err := ReadIdentities(*identityFile)
	if err != nil {
		return fail(err)
	}
	store, err := storage.Open(ctx, *loc)
	if err != nil {
		return fail(err)
	}
	o.Store, o.Identities, o.Trust = store, ids, trust
	_, err = RestoreWAL(ctx, o)
	switch {
	case err == nil:
		return exitOK
	case catalog.IsNotArchived(err):
		logf(progress(*verbose, stderr), "wal-restore: %s is not archived", name)
		return exitFailure
	default:
		return fail(explainWALRefusal(fmt.Errorf("wal-restore %s: %w", name, err), trust))
	}
}

// explainWALRefusal adds to a refused WAL file's error what an SRE can do about it.
func explainWALRefusal(err error, t catalog.Trust) error {
	var se *catalog.WALSignatureError
	switch {
	case !errors.As(err, &se):
		return err
	case se.Status == catalog.SignatureMissing:
		return fmt.Errorf("%w; if it was archived before WAL was signed, pass --allow-unsigned to accept it", err)
	case len(t.Keys) == 0:
		return fmt.Errorf("%w; pass the BackupPolicy's public key with --signing-public-key or $%s", err, envSigningPublicKeys)
	}
	return err
}
