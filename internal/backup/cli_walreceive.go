package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tenantops/tenant-operator/internal/storage"
)

// receivePartSize sends a 16 MiB segment (and what compression and encryption may add) in one
// PUT. Larger segments go up in parts, which are just as invisible until the upload completes.
const receivePartSize = 16<<20 + 16<<20/64 + 1<<20

func runWALReceive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("wal-receive", "wal-receive --dsn URL --slot NAME --storage LOCATION [--storage LOCATION ...] --tenant T --tenant-uid UID --data-key DIR --signing-key-file F\n\n"+
		"Streams the server's WAL over a physical replication connection (through a replication slot it creates\n"+
		"when missing) and archives every complete segment to each location, as wal-archive would; the slot lets\n"+
		"the server recycle a segment only once every location has it. Runs until SIGTERM; exits non-zero only\n"+
		"for a configuration error. Flags also from the environment: $"+envStorage+", $"+envTenant+", $"+envTenantUID+",\n"+
		"$"+envDataKey+" or $"+envRecipients+", $"+envSigningKeyFile+"; the password from $PGPASSWORD.", stderr)
	dsn := fs.String("dsn", "", "server to stream from, postgres://USER@HOST:PORT/DB?sslmode=verify-full&sslrootcert=CA, as a role with REPLICATION that pg_hba.conf lets in for replication (a password may come from PGPASSWORD)")
	slot := fs.String("slot", "", "physical replication slot that keeps the server's WAL until it is archived; created when missing")
	var locations stringList
	fs.Var(&locations, "storage", "where WAL goes (see backup -h), repeatable: every segment goes to every location; default $"+envStorage)
	tenant := fs.String("tenant", os.Getenv(envTenant), "tenant name; default $"+envTenant)
	tenantUID := fs.String("tenant-uid", os.Getenv(envTenantUID), "UID of the Tenant object, recorded with each file; default $"+envTenantUID)
	recipients := stringList(envList(envRecipients))
	fs.Var(&recipients, "recipient", "age public key to encrypt to (repeatable); default $"+envRecipients+"; not with --data-key")
	dataKeyDir := fs.String("data-key", os.Getenv(envDataKey), "directory holding the tenant's data key as the operator keeps it: files are encrypted to it only; needs --tenant-uid; default $"+envDataKey)
	signingKeyFile := fs.String("signing-key-file", os.Getenv(envSigningKeyFile), "Ed25519 private key (PKCS #8 PEM) that signs each file's description; default $"+envSigningKeyFile)
	statusInterval := fs.Duration("status-interval", 10*time.Second, "tell the server our position at least this often; keep it well under its wal_sender_timeout")
	statusFile := fs.String("status-file", "", "file rewritten after every archived segment with the last one, its time and the confirmed position (JSON); default none")
	level := fs.String("zstd-level", "fastest", "zstd level: fastest, default, better or best")
	verbose := fs.Bool("v", false, "print a line per archived segment on stderr")
	if err := fs.parse(args); err != nil {
		return err
	}
	if len(locations) == 0 && os.Getenv(envStorage) != "" {
		locations = stringList{os.Getenv(envStorage)}
	}
	if len(locations) == 0 {
		return usageError("wal-receive: --storage is required (see tenant-operator wal-receive -h)")
	}
	if err := fs.required("dsn", "slot", "tenant", "signing-key-file"); err != nil {
		return err
	}
	if !slotNameRE.MatchString(*slot) {
		return usageError(fmt.Sprintf("wal-receive: --slot %q: want 1 to 63 lower-case letters, digits and underscores", *slot))
	}
	if *dataKeyDir == "" && len(recipients) == 0 {
		return usageError("wal-receive: missing --data-key or --recipient")
	}
	if *statusInterval < time.Second {
		return usageError(fmt.Sprintf("wal-receive: --status-interval %s: want at least 1s", *statusInterval))
	}
	lvl, ok := zstdLevels[*level]
	if !ok {
		return usageError(fmt.Sprintf("wal-receive: --zstd-level %q: want fastest, default, better or best", *level))
	}
	dataKey, err := readDataKeyFlag(*dataKeyDir)
	if err != nil {
		return err
	}
	key, err := readSigningKey(*signingKeyFile)
	if err != nil {
		return err
	}
	// Refused now, not after waiting for a storage that may be slow to come up.
	keys, err := encryptionKeys(recipients, dataKey, *tenantUID)
	if err == nil {
		_, _, err = ParseRecipients(keys)
	}
	if err != nil {
		return err
	}
	var stores []storage.Store
	for _, loc := range locations {
		s, err := openStoreRetrying(ctx, loc, stderr)
		if err != nil {
			return err
		}
		if s == nil { // stopped while waiting
			return nil
		}
		stores = append(stores, s)
	}
	err = ReceiveWAL(ctx, WALReceiveOptions{DSN: *dsn, Slot: *slot, Stores: stores,
		Archive:        WALArchiveOptions{Tenant: *tenant, TenantUID: *tenantUID, Recipients: recipients, DataKey: dataKey, SigningKey: key, ZstdLevel: lvl},
		StatusInterval: *statusInterval, StatusFile: *statusFile, Log: progress(*verbose, stderr), Errors: stderr})
	if err != nil {
		return fmt.Errorf("wal-receive: %w", err)
	}
	return nil
}

// openStoreRetrying opens a location, waiting out a storage that does not answer (it may start
// after us); any other failure (a malformed location, an unknown bucket or credential) is the
// configuration's and returned. It returns nil, nil when ctx ends first.
func openStoreRetrying(ctx context.Context, loc string, stderr io.Writer) (storage.Store, error) {
	backoff, logged := time.Second, false
	for {
		s, err := storage.Open(ctx, loc, storage.WithPartSize(receivePartSize))
		var ur *storage.UnreachableError
		switch {
		case err == nil:
			return s, nil
		case ctx.Err() != nil:
			return nil, nil
		case !errors.As(err, &ur):
			return nil, err
		case !logged:
			logf(stderr, "wal-receive: %s; retrying", errorLine(err)[len("error: "):])
			logged = true
		}
		if !sleepCtx(ctx, backoff) {
			return nil, nil
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}
