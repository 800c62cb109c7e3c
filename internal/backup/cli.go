package backup

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// Exit statuses of RunCommand.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Commands are the first arguments RunCommand handles.
var Commands = []string{"backup", "restore", "verify", "backups", "export", "forget", "wal-archive", "wal-restore", "wal-receive", "wal-receive-status"}

// RunCommand runs one of the agent's subcommands; args is os.Args[1:], starting with the
// subcommand. It returns the process exit status: 0 only on success, otherwise after one line on
// stderr that says what went wrong.
func RunCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "error: no command; want backup, restore, verify or backups list")
		return exitUsage
	}
	var err error
	switch args[0] {
	case "backup":
		err = runBackupOfMethod(ctx, args[1:], stdout, stderr)
	case "wal-archive":
		err = runWALArchive(ctx, args[1:], stdout, stderr)
	case "wal-restore":
		return runWALRestore(ctx, args[1:], stdout, stderr) // its exit statuses are restore_command's
	case "wal-receive":
		err = runWALReceive(ctx, args[1:], stdout, stderr)
	case "wal-receive-status":
		err = runWALReceiveStatus(args[1:], time.Now(), stdout, stderr)
	case "restore":
		err = runRestoreOfMethod(ctx, args[1:], stdout, stderr)
	case "verify":
		err = runVerify(ctx, args[1:], stdout, stderr)
	case "export":
		err = runExport(ctx, args[1:], stdout, stderr)
	case "forget":
		err = runForget(ctx, args[1:], stdout, stderr)
	case "backups":
		switch {
		case len(args) >= 2 && args[1] == "list":
			err = runList(ctx, args[2:], stdout, stderr)
		case len(args) >= 2 && args[1] == "window":
			err = runWindow(ctx, args[2:], stdout, stderr)
		default:
			err = usageError("unknown command \"backups\"; want \"backups list\" or \"backups window\"")
		}
	default:
		err = usageError(fmt.Sprintf("unknown command %q; want backup, restore, verify or backups list", args[0]))
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case isUsage(err):
		fmt.Fprintln(stderr, errorLine(err))
		return exitUsage
	default:
		fmt.Fprintln(stderr, errorLine(err))
		return exitFailure
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// errorLine renders err as the single stderr line. The errors an SRE acts on (missing backup, wrong
// key, damaged object, storage down) carry their whole story, so they are shown without the
// chain of steps that led to them.
func errorLine(err error) string {
	var (
		nf *catalog.NotFoundError
		wi *WrongIdentityError
		cm *ChecksumMismatchError
		ur *storage.UnreachableError
		vf *VerificationFailedError
		se *catalog.SignatureError
		dk *catalog.DataKeyDestroyedError
		le *catalog.LedgerError
	)
	msg := err.Error()
	switch {
	case errors.As(err, &nf):
		msg = nf.Error()
	case errors.As(err, &wi):
		msg = wi.Error()
	case errors.As(err, &vf):
		msg = vf.Error()
	case errors.As(err, &cm):
		msg = cm.Error()
	case errors.As(err, &ur):
		msg = ur.Error()
	case errors.As(err, &se):
		msg = err.Error() // with the hint explainRefusal added
	case errors.As(err, &dk):
		msg = dk.Error()
	case errors.As(err, &le):
		msg = le.Error()
	}
	return "error: " + strings.Join(strings.Fields(msg), " ")
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// byteSize is a flag like "16MiB".
type byteSize int

func (b *byteSize) String() string { return strconv.Itoa(int(*b)) }
func (b *byteSize) Set(v string) error {
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return errors.New("want a size such as 16MiB")
	}
	*b = byteSize(n * mult)
	return nil
}

// command is one subcommand's flags. Parse errors come back as one line; the flag package's own
// printing is silenced, and help is printed only when asked for.
type command struct {
	*flag.FlagSet
	synopsis string
	stderr   io.Writer
}

func newCommand(name, synopsis string, stderr io.Writer) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &command{FlagSet: fs, synopsis: synopsis, stderr: stderr}
}

func (c *command) parse(args []string) error {
	if err := c.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(c.stderr, "usage: tenant-operator %s\n\nflags:\n", c.synopsis)
			c.SetOutput(c.stderr)
			c.PrintDefaults()
			return err
		}
		return usageError(fmt.Sprintf("%s: %v (see tenant-operator %s -h)", c.Name(), err, c.Name()))
	}
	if c.NArg() > 0 {
		return usageError(fmt.Sprintf("%s: unexpected argument %q (see tenant-operator %s -h)", c.Name(), c.Arg(0), c.Name()))
	}
	return nil
}

func (c *command) required(names ...string) error {
	for _, n := range names {
		if f := c.Lookup(n); f != nil && f.Value.String() == "" {
			return usageError(fmt.Sprintf("%s: --%s is required (see tenant-operator %s -h)", c.Name(), n, c.Name()))
		}
	}
	return nil
}

// backupSelection holds the flags that name one backup: where, whose, which.
type backupSelection struct {
	storage, tenant, schedule, id *string
	uids                          *stringList
}

func (c *command) selectBackup() backupSelection {
	sel := backupSelection{
		storage:  c.String("storage", "", "where backups live (see backup -h)"),
		tenant:   c.String("tenant", "", "tenant name"),
		schedule: c.String("schedule", "", "schedule name"),
		id:       c.String("backup", "", "backup id, or latest"),
		uids:     &stringList{},
	}
	c.Var(sel.uids, "tenant-uid", "only backups made for this Tenant object's UID (repeatable; backups that recorded none always count): a deleted Tenant's successor of the same name is another customer")
	return sel
}

// owners is the listing option of --tenant-uid; none without it.
func (s backupSelection) owners() []catalog.ListOption {
	if len(*s.uids) == 0 {
		return nil
	}
	return []catalog.ListOption{catalog.WithTenantUIDs(*s.uids...)}
}

// Environment variables that stand for the signing flags, so that a job can pass keys without
// changing its arguments. The private key is passed as a file, never as a value: a process's
// environment is readable in /proc by anything running as its user.
const (
	envSigningKeyFile    = "TENANTOPS_SIGNING_KEY_FILE"
	envSigningPublicKeys = "TENANTOPS_SIGNING_PUBLIC_KEYS"
)

// trustFlagSet holds the flags of the commands that read backups: which signing keys to trust.
type trustFlagSet struct {
	keys          stringList
	keysFile      *string
	allowUnsigned *bool
}

func (c *command) trustBackups() *trustFlagSet {
	f := &trustFlagSet{}
	c.Var(&f.keys, "signing-public-key", "public key (ed25519:...) whose signatures are trusted; repeatable, e.g. the policy's current key and the one before a rotation (also $"+envSigningPublicKeys+", separated by commas or spaces)")
	f.keysFile = c.String("signing-public-keys-file", "", "file of trusted public keys, one per line")
	f.allowUnsigned = c.Bool("allow-unsigned", false, "accept backups without a signature, such as those made before signing was enabled (anyone who can write the bucket can make one)")
	return f
}

// trust gathers the keys from the flags, the file and the environment.
func (f *trustFlagSet) trust() (catalog.Trust, error) {
	t := catalog.Trust{AllowUnsigned: *f.allowUnsigned}
	texts := append([]string{os.Getenv(envSigningPublicKeys)}, f.keys...)
	if *f.keysFile != "" {
		data, err := os.ReadFile(*f.keysFile)
		if err != nil {
			return t, fmt.Errorf("read public keys: %w", err)
		}
		texts = append(texts, string(data))
	}
	for _, text := range texts {
		keys, err := catalog.ParsePublicKeys(text)
		if err != nil {
			return t, usageError("signing public key: " + err.Error())
		}
		t.Keys = append(t.Keys, keys...)
	}
	return t, nil
}

// explainRefusal adds to a refused backup's error what an SRE can do about it.
func explainRefusal(err error, t catalog.Trust) error {
	var se *catalog.SignatureError
	if !errors.As(err, &se) {
		return err
	}
	hint := ""
	switch {
	case se.Status == catalog.SignatureMissing:
		hint = "; if it was made before backups were signed, pass --allow-unsigned to accept it"
	case len(t.Keys) == 0:
		hint = "; pass the BackupPolicy's public key with --signing-public-key (kubectl get backuppolicy NAME -o jsonpath='{.status.signing.publicKey}')"
	}
	return fmt.Errorf("%w%s", err, hint)
}

var zstdLevels = map[string]zstd.EncoderLevel{
	"fastest": zstd.SpeedFastest,
	"default": zstd.SpeedDefault,
	"better":  zstd.SpeedBetterCompression,
	"best":    zstd.SpeedBestCompression,
}

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("backup", "backup --dsn URL --storage LOCATION --tenant T --tenant-uid UID --schedule S --data-key DIR [--signing-key-file F]\n"+
		"       tenant-operator backup --dsn URL --storage LOCATION --tenant T --schedule S --recipient AGE_PUBLIC_KEY... [--signing-key-file F]", stderr)
	fs.String("method", catalog.MethodLogical, "logical: pg_dump of one database (the default); physical: pg_basebackup of the cluster, for point-in-time recovery (see backup --method physical -h)")
	dsn := fs.String("dsn", "", "database to back up, postgres://USER[:PASSWORD]@HOST:PORT/DB (a password may also come from PGPASSWORD)")
	loc := fs.String("storage", "", "where backups live: s3://BUCKET/PREFIX?endpoint=HOST:PORT&region=R[&insecure=true] or file:///PATH")
	tenant := fs.String("tenant", "", "tenant name")
	tenantUID := fs.String("tenant-uid", "", "UID of the Tenant object, recorded in the manifest so that a later Tenant of the same name does not take this backup for its own")
	schedule := fs.String("schedule", "", "schedule name")
	var recipients stringList
	fs.Var(&recipients, "recipient", "age public key to encrypt to (repeatable); not with --data-key")
	dataKeyDir := fs.String("data-key", "", "directory holding the tenant's data key as the operator keeps it (files "+datakey.FileRecipient+" and "+datakey.FileWrapped+"): the backup is encrypted to that key only, and the wrapped key is stored beside it; needs --tenant-uid")
	pgBin := fs.String("pg-bin-dir", "", "directory holding pg_dump (default $PG_BIN_DIR, then /usr/lib/postgresql/<server major>/bin, then PATH)")
	level := fs.String("zstd-level", "fastest", "zstd level: fastest, default, better or best (slower, smaller)")
	abandoned := fs.Duration("abandoned-after", 24*time.Hour, "remove unfinished uploads of this tenant and schedule older than this (0 keeps them)")
	partSize := byteSize(storage.DefaultPartSize)
	fs.Var(&partSize, "part-size", "S3 multipart part size; two parts are held in memory")
	signingKeyFile := fs.String("signing-key-file", os.Getenv(envSigningKeyFile), "Ed25519 private key (PKCS #8 PEM) that signs the manifest (default $"+envSigningKeyFile+"); without it the backup is unsigned and restore and verify refuse it unless told --allow-unsigned")
	verbose := fs.Bool("v", false, "print progress on stderr")
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := fs.required("dsn", "storage", "tenant", "schedule"); err != nil {
		return err
	}
	var dataKey *datakey.Key
	switch {
	case *dataKeyDir != "" && len(recipients) > 0:
		return usageError("backup: --data-key and --recipient exclude each other: a backup is encrypted to the tenant's data key only")
	case *dataKeyDir != "" && *tenantUID == "":
		return usageError("backup: --data-key needs --tenant-uid: the key is stored under the Tenant object it belongs to")
	case *dataKeyDir != "":
		key, err := datakey.ReadDir(*dataKeyDir)
		if err != nil {
			return err
		}
		dataKey = &key
	case len(recipients) == 0:
		return usageError("backup: missing --data-key or --recipient")
	}
	var signingKey ed25519.PrivateKey
	if *signingKeyFile != "" {
		data, err := os.ReadFile(*signingKeyFile)
		if err != nil {
			return fmt.Errorf("read signing key: %w", err)
		}
		if signingKey, err = catalog.ParseSigningKey(data); err != nil {
			return fmt.Errorf("%s: %w", *signingKeyFile, err)
		}
	}
	lvl, ok := zstdLevels[*level]
	if !ok {
		return usageError(fmt.Sprintf("backup: --zstd-level %q: want fastest, default, better or best", *level))
	}
	if partSize < storage.MinPartSize {
		return usageError(fmt.Sprintf("backup: --part-size must be at least %d", storage.MinPartSize))
	}
	store, err := storage.Open(ctx, *loc, storage.WithPartSize(int(partSize)))
	if err != nil {
		return err
	}
	// Leave a core to pg_dump (and, where they share the machine, the database server): measured
	// on 2 cores, an agent that competes for both makes the whole dump about 15% slower than one
	// that keeps to one. An explicit GOMAXPROCS still wins.
	if n := runtime.GOMAXPROCS(0); n > 1 && os.Getenv("GOMAXPROCS") == "" {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(n - 1))
	}
	m, err := Run(ctx, Options{
		DSN: *dsn, Store: store, Tenant: *tenant, TenantUID: *tenantUID, Schedule: *schedule, Recipients: recipients, DataKey: dataKey,
		SigningKey: signingKey, PgBinDir: *pgBin, ZstdLevel: lvl, AbandonedAfter: *abandoned, Log: progress(*verbose, stderr),
	})
	if err != nil {
		return err
	}
	if signingKey == nil {
		// Said even without -v: this backup will not restore without --allow-unsigned.
		fmt.Fprintf(stderr, "warning: backup %s is not signed (no --signing-key-file); restore and verify refuse it unless given --allow-unsigned\n", m.ID)
	}
	var rows int64
	for _, t := range m.Tables {
		rows += t.Rows
	}
	fmt.Fprintf(stdout, "backup %s of tenant %s schedule %s: %d tables, %d rows, %s dumped, %s stored, sha256 %s\n",
		m.ID, m.Tenant, m.Schedule, len(m.Tables), rows, humanBytes(m.DumpSize), humanBytes(m.Object.Size), m.Object.SHA256)
	fmt.Fprintln(stdout, m.ID)
	return nil
}

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("restore", "restore --storage LOCATION --tenant T --schedule S --backup ID|latest --identity-file F --dsn URL --signing-public-key KEY... [--force]", stderr)
	sel := fs.selectBackup()
	identityFile := fs.String("identity-file", "", "age identity file (AGE-SECRET-KEY-...) matching one of the backup's recipients")
	dsn := fs.String("dsn", "", "target database, which must exist, postgres://USER@HOST:PORT/DB")
	force := fs.Bool("force", false, "restore into a database that is not empty, replacing the objects the backup contains")
	noOwner := fs.Bool("no-owner", false, "do not restore ownership and grants (for a target without the source's roles)")
	pgBin := fs.String("pg-bin-dir", "", "directory holding pg_restore, and psql 16 or later when erasure requests are replayed (default $PG_BIN_DIR, then PATH)")
	ignoreLedger := fs.Bool("ignore-ledger", false, "restore even when the tenant's erasure ledger cannot be read (a missing key, a bad signature, storage errors): erasure requests made after the backup may then be undone")
	tf := fs.trustBackups()
	verbose := fs.Bool("v", false, "print progress on stderr")
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := fs.required("storage", "tenant", "schedule", "backup", "identity-file", "dsn"); err != nil {
		return err
	}
	trust, err := tf.trust()
	if err != nil {
		return err
	}
	ids, err := ReadIdentities(*identityFile)
	if err != nil {
		return err
	}
	store, err := storage.Open(ctx, *sel.storage)
	if err != nil {
		return err
	}
	b, res, err := RestoreReplaying(ctx, RestoreOptions{
		Store: store, Tenant: *sel.tenant, Schedule: *sel.schedule, BackupID: *sel.id, Owners: sel.owners(), Identities: ids,
		DSN: *dsn, Force: *force, NoOwner: *noOwner, PgBinDir: *pgBin, Trust: trust, Log: progress(*verbose, stderr),
		TenantUIDs: *sel.uids, IgnoreLedger: *ignoreLedger,
	})
	if err != nil {
		return explainRefusal(err, trust)
	}
	recordRestore(ctx, store, catalog.RestoreRecord{Tenant: b.Tenant, TenantUID: b.TenantUID, RestoredAt: time.Now().UTC(), Method: catalog.MethodLogical,
		Schedule: b.Schedule, BackupIDs: []string{b.ID}, BackupStartedAt: b.StartedAt.UTC(), Database: databaseName(*dsn),
		LedgerReplayed: res.LedgerReplayed, IgnoreLedger: *ignoreLedger, LedgerNotReplayed: res.LedgerIgnored}, *sel.uids, progress(*verbose, stderr), stderr)
	if res.LedgerIgnored != "" {
		// Said even without -v: this restore may hold data erased on request.
		fmt.Fprintf(stderr, "warning: restored without replaying the erasure ledger (--ignore-ledger): %s\n", res.LedgerIgnored)
	}
	fmt.Fprintf(stdout, "restored backup %s (taken %s) of tenant %s schedule %s\n", b.ID, b.StartedAt.Format(time.RFC3339), b.Tenant, b.Schedule)
	if res.Replayed > 0 {
		fmt.Fprintf(stdout, "replayed %d erasure requests recorded since the backup, in the restore's transaction\n", res.Replayed)
	}
	return nil
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("verify", "verify --storage LOCATION --tenant T --schedule S --backup ID|latest --signing-public-key KEY... [--identity-file F [--drill-socket PATH]]\n"+
		"       tenant-operator verify --serve-drills PATH [--scratch-dir DIR] [--pg-bin-dir DIR]", stderr)
	sel := fs.selectBackup()
	identityFile := fs.String("identity-file", "", "age identity file; with it, a restore drill into a scratch PostgreSQL")
	pgBin := fs.String("pg-bin-dir", "", "directory holding initdb, postgres and pg_restore for the drill")
	scratch := fs.String("scratch-dir", "", "where the drill's scratch PostgreSQL keeps its data (default: the temporary directory)")
	tf := fs.trustBackups()
	drillSocket := fs.String("drill-socket", "", "restore through the restorer serving drills at this Unix socket (verify --serve-drills), instead of one this command starts")
	var drillRoles stringList
	fs.Var(&drillRoles, "drill-role", "role to create, without login or privileges, in the scratch server, for objects that name it (repeatable)")
	serve := fs.String("serve-drills", "", "be the restorer: serve restore drills on this Unix socket, holding no identity and no credentials")
	serveFD := fs.Int("serve-drill-fd", -1, "be the restorer for one drill on this inherited file descriptor (how verify starts its own)")
	verbose := fs.Bool("v", false, "print progress on stderr")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *serve != "" || *serveFD >= 0 {
		return runRestorer(ctx, fs, *serve, *serveFD, DrillServerOptions{PgBinDir: *pgBin, ScratchDir: *scratch, Log: progress(*verbose, stderr)})
	}
	if err := fs.required("storage", "tenant", "schedule", "backup"); err != nil {
		return err
	}
	trust, err := tf.trust()
	if err != nil {
		return err
	}
	o := VerifyOptions{Tenant: *sel.tenant, Schedule: *sel.schedule, BackupID: *sel.id, Owners: sel.owners(), Trust: trust, PgBinDir: *pgBin, ScratchDir: *scratch,
		DrillSocket: *drillSocket, DrillRoles: drillRoles, Log: progress(*verbose, stderr)}
	if *identityFile != "" {
		ids, err := ReadIdentities(*identityFile)
		if err != nil {
			return err
		}
		o.Identities = ids
	}
	store, err := storage.Open(ctx, *sel.storage)
	if err != nil {
		return err
	}
	o.Store = store
	b, v, err := Verify(ctx, o)
	if err != nil {
		return explainRefusal(err, trust)
	}
	// What a restore of this backup would replay of the erasure ledger (a drill replays nothing:
	// its scratch database is thrown away). A ledger that cannot be read does not fail the
	// verification of the backup, but is said on both outputs: a restore would refuse.
	replay, lerr := LedgerReplayCount(ctx, store, b.Manifest, *sel.uids, trust)
	defer func() {
		if lerr != nil {
			fmt.Fprintf(stderr, "warning: backup %s: %s\n", b.ID, strings.Join(strings.Fields(lerr.Error()), " "))
			fmt.Fprintf(stdout, "backup %s: erasure ledger unreadable: a restore would refuse without --ignore-ledger\n", b.ID)
			return
		}
		fmt.Fprintf(stdout, "backup %s: a restore would replay %d erasure requests from the ledger\n", b.ID, replay)
	}()
	switch v.Kind {
	case catalog.KindRestoreDrill:
		var rows int64
		for _, t := range b.Tables {
			rows += t.Rows
		}
		fmt.Fprintf(stdout, "backup %s: restore drill ok: restored into PostgreSQL %s, %d tables and %d rows match the manifest, %d large objects\n",
			b.ID, v.ScratchPostgresVersion, len(b.Tables), rows, b.LargeObjects)
	default:
		fmt.Fprintf(stdout, "backup %s: checksum ok: %s, sha256 %s\n", b.ID, humanBytes(b.Object.Size), v.ObjectSHA256)
	}
	return nil
}

// runRestorer is verify as the restorer of drills (see drill.go). It takes no backup, identity or
// storage, and refuses to start with credentials in its environment: it runs the tenant's SQL.
func runRestorer(ctx context.Context, fs *command, socket string, fd int, o DrillServerOptions) error {
	for _, name := range []string{"storage", "tenant", "schedule", "backup", "identity-file", "drill-socket", "drill-role"} {
		if f := fs.Lookup(name); f.Value.String() != "" {
			return usageError(fmt.Sprintf("verify: --%s is for the agent, not the restorer (--serve-drills)", name))
		}
	}
	if socket != "" && fd >= 0 {
		return usageError("verify: --serve-drills and --serve-drill-fd exclude each other")
	}
	if found := credentialsInEnv(os.Environ()); len(found) > 0 {
		return fmt.Errorf("verify: the drill restorer runs the backup's SQL and must hold no credentials, but its environment has %s", strings.Join(found, ", "))
	}
	if fd >= 0 {
		f := os.NewFile(uintptr(fd), "drill")
		conn, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("verify: drill connection on descriptor %d: %w", fd, err)
		}
		return ServeDrill(ctx, conn, o)
	}
	ln, err := listenRestorer(socket)
	if err != nil {
		return err
	}
	return ServeDrills(ctx, ln, o)
}

// listenRestorer listens on a Unix socket at path, replacing a socket left there by a restorer
// that died. The socket is writable by its group: in the verification pod the agent runs as
// another uid, and the volume's group (the pod's fsGroup) is what the two share.
func listenRestorer(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == os.ModeSocket {
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("verify: listen for drills: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("verify: listen for drills: %w", err)
	}
	return ln, nil
}

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("backups list", "backups list --storage LOCATION [--tenant T] [--schedule S] [--signing-public-key KEY...] [-o json]", stderr)
	loc := fs.String("storage", "", "where backups live (see backup -h)")
	tenant := fs.String("tenant", "", "only this tenant")
	schedule := fs.String("schedule", "", "only this schedule (needs --tenant)")
	var uids stringList
	fs.Var(&uids, "tenant-uid", "only backups made for this Tenant object's UID (repeatable; backups that recorded none always count)")
	output := fs.String("o", "table", "output format: table or json")
	tf := fs.trustBackups()
	if err := fs.parse(args); err != nil {
		return err
	}
	trust, err := tf.trust()
	if err != nil {
		return err
	}
	if err := fs.required("storage"); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return usageError(fmt.Sprintf("backups list: -o %q: want table or json", *output))
	}
	if *schedule != "" && *tenant == "" {
		return usageError("backups list: --schedule needs --tenant")
	}
	store, err := storage.Open(ctx, *loc)
	if err != nil {
		return err
	}
	// Signatures are checked, and shown, only when asked for, so that the table stays as it was
	// for those who read it by column.
	var opts []catalog.ListOption
	if len(uids) > 0 {
		opts = append(opts, catalog.WithTenantUIDs(uids...))
	}
	checkSignatures := len(trust.Keys) > 0 || trust.AllowUnsigned
	if checkSignatures {
		opts = append(opts, catalog.WithTrust(trust))
	}
	backups, err := catalog.List(ctx, store, *tenant, *schedule, opts...)
	if err != nil {
		return err
	}
	if *output == "json" {
		if backups == nil {
			backups = []catalog.Backup{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(backups)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	header := "TENANT\tSCHEDULE\tID\tSTARTED\tDURATION\tPOSTGRES\tDUMP\tSTORED\tTABLES\tVERIFIED"
	if checkSignatures {
		header += "\tSIGNATURE"
	}
	fmt.Fprintln(tw, header)
	for _, b := range backups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s", b.Tenant, b.Schedule, b.ID,
			b.StartedAt.Format(time.RFC3339), b.FinishedAt.Sub(b.StartedAt).Round(time.Second), b.PostgresVersion,
			humanBytes(b.DumpSize), humanBytes(b.Object.Size), len(b.Tables), verifiedColumn(b.Verification))
		if checkSignatures {
			fmt.Fprintf(tw, "\t%s", b.Signature)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(backups) == 0 {
		fmt.Fprintln(stderr, "no backups found")
	}
	return nil
}

// progress is where progress lines go: nowhere unless asked for, so that a failure's stderr is
// exactly its one error line.
func progress(verbose bool, stderr io.Writer) io.Writer {
	if verbose {
		return stderr
	}
	return nil
}

func verifiedColumn(v *catalog.Verification) string {
	if v == nil {
		return "never"
	}
	state := "ok"
	if !v.OK {
		state = "FAILED"
	}
	return fmt.Sprintf("%s %s %s", v.Kind, state, v.CheckedAt.Format(time.RFC3339))
}
