package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/stack"
)

// startStreaming starts a PostgreSQL 18 server whose WAL a receiver streams. Its archive_command
// does nothing: the physical backup refuses a server with archive_mode off (it cannot know yet
// that a receiver archives its WAL), and the replication slot, not the archiver, is what keeps
// every segment until it is stored.
func startStreaming(t *testing.T, config ...string) *stack.Postgres {
	t.Helper()
	return stack.StartPostgresWith(t, "18", stack.PostgresOptions{
		Config: "wal_level = replica\nmax_wal_senders = 5\narchive_mode = on\narchive_command = '/bin/true'\nsummarize_wal = on\n" +
			strings.Join(config, "\n") + "\n",
		Programs: []string{"pg_basebackup", "pg_combinebackup"}})
}

// replicationDSN is the server's URL without its password, which comes from PGPASSWORD as in
// the receiver's pod.
func replicationDSN(pg *stack.Postgres) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.Port)
}

// slotRestart is where the server keeps WAL from for slot: what the receiver confirmed.
func slotRestart(t *testing.T, pg *stack.Postgres, slot string) catalog.LSN {
	t.Helper()
	lsn, err := readSlotRestart(pg, slot)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

func readSlotRestart(pg *stack.Postgres, slot string) (catalog.LSN, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, `SELECT coalesce((SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1), '')`, slot).Scan(&s); err != nil {
		return 0, err
	}
	if s == "" {
		return 0, nil
	}
	return catalog.ParseLSN(s)
}

// switchWAL writes rows and ends the segment, returning its name.
func switchWAL(t *testing.T, pg *stack.Postgres, from, to int) string {
	t.Helper()
	pg.Exec(t, "app", fmt.Sprintf(`INSERT INTO items SELECT g, md5(g::text) FROM generate_series(%d, %d) g`, from, to))
	var seg string
	query(t, pg.DSN, `SELECT pg_walfile_name(pg_switch_wal())`, &seg)
	return seg
}

// archivedSegments lists the segments stored with a description that the signer's key checks.
func archivedSegments(t *testing.T, store storage.Store, sg signer) []catalog.WALFile {
	t.Helper()
	wal, err := catalog.ListWAL(context.Background(), store, "acme", catalog.WithTrust(catalog.Trust{Keys: parsePublicKeys(t, sg.publicKey)}))
	if err != nil {
		t.Fatal(err)
	}
	var out []catalog.WALFile
	for _, f := range wal {
		if f.Kind == catalog.WALSegment && f.Archived {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// waitArchivedIn waits until store holds seg, and checks that the segments archived so far have
// no gap.
func waitArchivedIn(t *testing.T, store storage.Store, sg signer, seg string, within time.Duration, explain func() string) []catalog.WALFile {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		segs := archivedSegments(t, store, sg)
		if len(segs) > 0 && segs[len(segs)-1].Name >= seg {
			for i := 1; i < len(segs); i++ {
				if segs[i].SegNo(16<<20) != segs[i-1].SegNo(16<<20)+1 {
					t.Fatalf("archive has a gap between %s and %s", segs[i-1].Name, segs[i].Name)
				}
			}
			return segs
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %s not archived after %s (%d archived); %s", seg, within, len(segs), explain())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func openS3Store(t *testing.T, s3 *stack.S3, loc string) storage.Store {
	t.Helper()
	l, err := storage.ParseLocation(loc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.OpenS3(context.Background(), l, storage.Credentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// TestWALReceiverIsADropInForWALArchive runs wal-receive as the lead's Deployment will, with the
// password in PGPASSWORD and two storage locations, against PostgreSQL 18 and S3: it creates its
// slot, archives every segment the server switches out, to both places, and a point-in-time
// restore to the end of the archive from a physical base backup has every row. SIGTERM stops it
// with status 0, and the slot then holds exactly what is not stored.
func TestWALReceiverIsADropInForWALArchive(t *testing.T) {
	t.Parallel()
	s3 := stack.StartS3(t)
	k, sg := newKey(t), newSigner(t)
	hot, cold := s3.Location("backups"), s3.Location("cold")
	pg := startStreaming(t)
	env := append(append(s3.Env(), "PG_BIN_DIR="+pg.BinDir), sg.env()...)
	app := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", `CREATE TABLE items (id int PRIMARY KEY, v text)`)

	statusFile := filepath.Join(t.TempDir(), "status.json")
	cmd := agentCmd(append(env, "PGPASSWORD="+pg.Password, "TENANTOPS_TENANT=acme"), "wal-receive", "--dsn", replicationDSN(pg), "--slot", "tenantops_acme",
		"--storage", hot, "--storage", cold, "--recipient", k.recipient, "--signing-key-file", sg.keyFile, "--status-file", statusFile, "--status-interval", "1s", "-v")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	explain := func() string { return "receiver's stderr:\n" + stderr.String() + "\nserver log:\n" + pg.LogTail() }
	deadline := time.Now().Add(time.Minute)
	for slotRestart(t, pg, "tenantops_acme") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no replication slot after a minute; %s", explain())
		}
		time.Sleep(100 * time.Millisecond)
	}

	pg.Exec(t, "app", `INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 20000) g`)
	full := mustAgent(t, env, "backup", "--method", "physical", "--dsn", app, "--storage", hot,
		"--tenant", "acme", "--schedule", "nightly", "--recipient", k.recipient).lastLine()
	var last string
	for i := range 4 {
		last = switchWAL(t, pg, 20001+i*1000, 21000+i*1000)
	}
	hotStore, coldStore := openS3Store(t, s3, hot), openS3Store(t, s3, cold)
	segs := waitArchivedIn(t, hotStore, sg, last, 2*time.Minute, explain)
	coldSegs := waitArchivedIn(t, coldStore, sg, last, time.Minute, explain)
	if len(coldSegs) != len(segs) || coldSegs[0].Name != segs[0].Name {
		t.Fatalf("hot holds %d segments from %s, cold %d from %s", len(segs), segs[0].Name, len(coldSegs), coldSegs[0].Name)
	}
	latest := contentOf(t, app, "items")

	dataDir := shared(t) + "/to-latest"
	r := mustAgent(t, env, "restore", "--storage", hot, "--tenant", "acme", "--identity-file", k.identityFile, "--data-dir", dataDir, "-v", "--to-latest")
	t.Logf("restore --to-latest:\n%s%s", r.stdout, r.stderr)
	restoreOutput(t, r, "backup "+full+",", "database app has 1 tables, 24000 rows")
	if got := contentOf(t, restoredServer(t, pg.BinDir, dataDir, "app"), "items"); got != latest {
		t.Fatalf("restored to the latest: items has %s, want %s", got, latest)
	}

	var st backup.WALReceiveStatus
	data, err := os.ReadFile(statusFile)
	if err != nil || json.Unmarshal(data, &st) != nil || st.LastSegment < last || st.SystemID != systemIDOf(t, pg) || st.Locations != 2 || time.Since(st.ArchivedAt) > 5*time.Minute ||
		time.Since(st.UpToDateAt) > time.Minute {
		t.Fatalf("status file: %s (%v); want the last segment %s or later", data, err, last)
	}
	// The slot keeps everything after the last stored segment, nothing before.
	deadline = time.Now().Add(30 * time.Second)
	for slotRestart(t, pg, "tenantops_acme") != st.Confirmed {
		if time.Now().After(deadline) {
			t.Fatalf("slot restarts at %s, the receiver stored up to %s", slotRestart(t, pg, "tenantops_acme"), st.Confirmed)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("wal-receive after SIGTERM: %v; %s", err, explain())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("wal-receive did not stop within 30s of SIGTERM; %s", explain())
	}
	for _, seg := range segs {
		if !strings.Contains(stderr.String(), "wal-receive: "+seg.Name+" archived to 2 location(s)") {
			t.Fatalf("no line for %s at -v:\n%s", seg.Name, stderr.String())
		}
	}
	assertNoSecrets(t, stderr.String(), pg.Password, s3.SecretKey)
	t.Logf("receiver's stderr:\n%s", stderr.String())
}

// faultyStore is a storage location that the test can take down (every segment upload fails) or
// make hang in the middle of the next segment upload, as a stalled storage or a receiver killed
// mid-upload would. It records the files whose description it stored.
type faultyStore struct {
	storage.Store
	mu        sync.Mutex
	down      bool
	failed    int
	stallNext bool
	stalled   chan string
	described map[string]bool
}

func (f *faultyStore) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	segment := strings.HasSuffix(key, ".zst.age") && !strings.Contains(key, ".history")
	f.mu.Lock()
	down, stall := f.down && segment, f.stallNext && segment
	if down {
		f.failed++
	}
	if stall {
		f.stallNext = false
	}
	f.mu.Unlock()
	if down {
		return 0, errors.New("storage test double: service unavailable")
	}
	if stall {
		// Part of the object goes up, then storage stops answering until the receiver is stopped.
		r = &stallingReader{r: r, after: 1 << 10, ctx: ctx, stalled: func() { f.stalled <- key }}
	}
	n, err := f.Store.Put(ctx, key, r)
	if err == nil && strings.HasSuffix(key, ".json") {
		f.mu.Lock()
		f.described[strings.TrimSuffix(filepath.Base(key), ".json")] = true
		f.mu.Unlock()
	}
	return n, err
}

func (f *faultyStore) hasDescription(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.described[name]
}

type stallingReader struct {
	r       io.Reader
	after   int64
	read    int64
	ctx     context.Context
	stalled func()
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.read >= s.after {
		s.stalled()
		<-s.ctx.Done()
		return 0, s.ctx.Err()
	}
	if int64(len(p)) > s.after-s.read {
		p = p[:s.after-s.read]
	}
	n, err := s.r.Read(p)
	s.read += int64(n)
	return n, err
}

// receiver runs ReceiveWAL in the test, as wal-receive does.
type receiver struct {
	cancel context.CancelFunc
	done   chan error
	stats  *backup.WALReceiveStats
	log    *syncBuffer
}

func startReceiver(t *testing.T, pg *stack.Postgres, stores []storage.Store, k key, sg signer) *receiver {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &receiver{cancel: cancel, done: make(chan error, 1), stats: &backup.WALReceiveStats{}, log: &syncBuffer{}}
	o := backup.WALReceiveOptions{DSN: pg.DSN, Slot: "tenantops_acme", Stores: stores,
		Archive:        backup.WALArchiveOptions{Tenant: "acme", Recipients: []string{k.recipient}, SigningKey: readSigningKeyFile(t, sg.keyFile)},
		StatusInterval: time.Second, Log: r.log, Errors: r.log, RetryMin: 100 * time.Millisecond, RetryMax: time.Second, Stats: r.stats}
	go func() { r.done <- backup.ReceiveWAL(ctx, o) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *receiver) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("ReceiveWAL: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("ReceiveWAL did not return within 30s of being stopped:\n%s", r.log.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWALReceiverSurvivesKillsAndOutages stops the receiver in the middle of a segment upload
// and takes storage away for a while, on PostgreSQL 18 and S3. Throughout, a watcher checks that
// the slot never lets the server recycle a segment the storage does not have. The stopped upload
// leaves nothing visible, and the restarted receiver archives that segment; during the outage the
// receiver holds at most two segments (its own count) while the server writes four, and once
// storage is back the archive catches up with no segment missing.
func TestWALReceiverSurvivesKillsAndOutages(t *testing.T) {
	t.Parallel()
	s3 := stack.StartS3(t)
	k, sg := newKey(t), newSigner(t)
	loc := s3.Location("backups")
	// A server that drops a receiver silent for 3s: the outage below lasts longer.
	pg := startStreaming(t, "wal_sender_timeout = '3s'")
	pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", `CREATE TABLE items (id int PRIMARY KEY, v text)`)
	plain := openS3Store(t, s3, loc)
	store := &faultyStore{Store: plain, stalled: make(chan string, 1), described: map[string]bool{}}
	const segSize = 16 << 20

	// The watcher: whenever the slot says the server may recycle the segments before a point,
	// the last of them is stored with its description.
	var first catalog.LSN
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watchErr := make(chan error, 1)
	watch := func() {
		for watchCtx.Err() == nil {
			lsn, err := readSlotRestart(pg, "tenantops_acme")
			if err != nil {
				watchErr <- err
				return
			}
			if lsn > first && lsn%segSize == 0 {
				prev := catalog.SegmentName(1, uint64(lsn/segSize)-1, segSize)
				if !store.hasDescription(prev) {
					watchErr <- fmt.Errorf("the slot restarts at %s, but %s is not stored", lsn, prev)
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		watchErr <- nil
	}

	rc := startReceiver(t, pg, []storage.Store{store}, k, sg)
	deadline := time.Now().Add(time.Minute)
	for first = slotRestart(t, pg, "tenantops_acme"); first == 0; first = slotRestart(t, pg, "tenantops_acme") {
		if time.Now().After(deadline) {
			t.Fatalf("no replication slot after a minute:\n%s", rc.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	go watch()
	explain := func() string { return "receiver's log:\n" + rc.log.String() }
	seg := switchWAL(t, pg, 1, 1000)
	waitArchivedIn(t, plain, sg, seg, time.Minute, explain)

	// Stopped in the middle of an upload.
	store.mu.Lock()
	store.stallNext = true
	store.mu.Unlock()
	killedSeg := switchWAL(t, pg, 1001, 2000)
	var stalled string
	select {
	case stalled = <-store.stalled:
	case <-time.After(time.Minute):
		t.Fatalf("no upload of %s began; %s", killedSeg, explain())
	}
	rc.stop(t)
	if !strings.Contains(stalled, killedSeg) {
		t.Fatalf("the upload stopped was %s, want %s's", stalled, killedSeg)
	}
	objs, err := plain.List(context.Background(), "acme/wal")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if strings.Contains(o.Key, killedSeg) {
			t.Fatalf("the stopped upload of %s left %s visible", killedSeg, o.Key)
		}
	}
	if got := slotRestart(t, pg, "tenantops_acme"); got > catalog.LSN(mustSegNo(t, killedSeg)*segSize) {
		t.Fatalf("after the stopped upload the slot restarts at %s, past the start of %s", got, killedSeg)
	}
	rc = startReceiver(t, pg, []storage.Store{store}, k, sg)
	waitArchivedIn(t, plain, sg, killedSeg, time.Minute, explain)

	// Storage down while the server writes four segments, then back.
	store.mu.Lock()
	store.down = true
	store.mu.Unlock()
	var lastSeg string
	for i := range 4 {
		lastSeg = switchWAL(t, pg, 2001+i*1000, 3000+i*1000)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		store.mu.Lock()
		failed := store.failed
		store.mu.Unlock()
		if failed >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d failed uploads in a minute; %s", failed, explain())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Longer than wal_sender_timeout: the receiver reads nothing now, but keeps the connection.
	time.Sleep(8 * time.Second)
	if n := rc.stats.SegmentBuffers.Load(); n > 2 {
		t.Fatalf("during the outage the receiver allocated %d segment buffers, want at most 2", n)
	}
	if got := rc.log.String(); strings.Count(got, "service unavailable") != 1 {
		t.Fatalf("the outage should be logged once:\n%s", got)
	}
	store.mu.Lock()
	store.down = false
	store.mu.Unlock()
	segs := waitArchivedIn(t, plain, sg, lastSeg, 2*time.Minute, explain)
	if n := rc.stats.SegmentBuffers.Load(); n > 2 {
		t.Fatalf("the receiver allocated %d segment buffers, want at most 2", n)
	}
	if strings.Contains(rc.log.String(), "replication failed") {
		t.Fatalf("the server dropped the receiver during the outage:\n%s", rc.log.String())
	}
	if !strings.Contains(rc.log.String(), "works again") {
		t.Fatalf("the end of the outage is not logged:\n%s", rc.log.String())
	}
	rc.stop(t)
	stopWatch()
	if err := <-watchErr; err != nil {
		t.Fatalf("%v; %s", err, explain())
	}
	t.Logf("%d segments archived, %s to %s; receiver's log:\n%s", len(segs), segs[0].Name, segs[len(segs)-1].Name, rc.log.String())
}

func mustSegNo(t *testing.T, name string) uint64 {
	t.Helper()
	n, err := catalog.ParseWALName(name)
	if err != nil {
		t.Fatal(err)
	}
	return n.SegNo(16 << 20)
}

// TestWALReceiverFollowsAPromotion streams from a standby of a PostgreSQL 18 server, then
// promotes the standby, as a failover (or the end of a restore) does: the standby's walsender
// ends timeline 1 at the switch point, and the receiver archives 00000002.history, archives the
// segment that holds the switch under timeline 2's name, and goes on archiving timeline 2.
func TestWALReceiverFollowsAPromotion(t *testing.T) {
	t.Parallel()
	s3 := stack.StartS3(t)
	k, sg := newKey(t), newSigner(t)
	primary := startStreaming(t)
	primary.CreateDatabase(t, "app")
	primary.Exec(t, "app", `CREATE TABLE items (id int PRIMARY KEY, v text)`)

	// The standby: a base backup of the primary that follows it, on a socket of its own, where
	// the receiver may connect for replication.
	dir := shared(t)
	dataDir, runDir := filepath.Join(dir, "standby"), filepath.Join(dir, "run")
	for _, d := range []string{runDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	bb := exec.Command(filepath.Join(primary.BinDir, "pg_basebackup"), "-D", dataDir, "-R", "-X", "stream", "--checkpoint=fast",
		"-d", fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s", primary.Port, primary.Password))
	if out, err := bb.CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	hba := filepath.Join(runDir, "standby_hba.conf")
	writeFile(t, hba, []byte("local all all trust\nlocal replication all trust\n"))
	if err := pgcluster.Chown(dir, ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	standby, err := pgcluster.StartDataDir(ctx, pgcluster.DataDirOptions{BinDir: primary.BinDir, DataDir: dataDir, RunDir: runDir,
		Settings: map[string]string{"hba_file": hba}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = standby.Shutdown(context.Background()) })
	if err := standby.WaitAccepting(ctx, time.Minute, func() {}); err != nil {
		t.Fatalf("standby: %v\n%s", err, standby.LogTail(20))
	}

	store := openS3Store(t, s3, s3.Location("backups"))
	ctxR, stopR := context.WithCancel(context.Background())
	log := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- backup.ReceiveWAL(ctxR, backup.WALReceiveOptions{DSN: standby.DSN("postgres", "postgres"), Slot: "tenantops_acme", Stores: []storage.Store{store},
			Archive:        backup.WALArchiveOptions{Tenant: "acme", Recipients: []string{k.recipient}, SigningKey: readSigningKeyFile(t, sg.keyFile)},
			StatusInterval: time.Second, Log: log, Errors: log, RetryMin: 100 * time.Millisecond, RetryMax: time.Second})
	}()
	defer func() {
		stopR()
		if err := <-done; err != nil {
			t.Errorf("ReceiveWAL: %v", err)
		}
	}()
	explain := func() string {
		return "receiver's log:\n" + log.String() + "\nstandby's log:\n" + standby.LogTail(20)
	}

	var seg string
	for i := range 2 {
		seg = switchWAL(t, primary, 1+i*1000, 1000+i*1000)
	}
	waitArchivedIn(t, store, sg, seg, time.Minute, explain)

	// Rows the standby has replayed when it is promoted, mid-segment: the switch point falls
	// inside a segment, which begins on timeline 1 and ends on timeline 2.
	primary.Exec(t, "app", `INSERT INTO items SELECT g, 'before the promotion' FROM generate_series(2001, 2500) g`)
	var primaryLSN string
	query(t, primary.DSN, `SELECT pg_current_wal_insert_lsn()::text`, &primaryLSN) // commits are asynchronous here: the insert position is past them
	deadline := time.Now().Add(time.Minute)
	for {
		var caughtUp bool
		query(t, standby.DSN("postgres", "postgres"), fmt.Sprintf(`SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn`, primaryLSN), &caughtUp)
		if caughtUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby did not replay up to %s in a minute; %s", primaryLSN, explain())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var promoted bool
	query(t, standby.DSN("postgres", "postgres"), `SELECT pg_promote()`, &promoted)
	if !promoted {
		t.Fatalf("the standby was not promoted; %s", explain())
	}
	var switchLSN, segOnTwo string
	query(t, standby.DSN("postgres", "app"), `INSERT INTO items SELECT g, 'promoted' FROM generate_series(2501, 3000) g RETURNING 1`, new(int))
	query(t, standby.DSN("postgres", "postgres"), `SELECT pg_walfile_name(pg_switch_wal())`, &segOnTwo)
	if !strings.HasPrefix(segOnTwo, "00000002") {
		t.Fatalf("after the promotion the server writes %s, want timeline 2", segOnTwo)
	}
	segs := waitArchivedIn(t, store, sg, segOnTwo, time.Minute, explain)

	wal, err := catalog.ListWAL(context.Background(), store, "acme", catalog.WithTrust(catalog.Trust{Keys: parsePublicKeys(t, sg.publicKey)}))
	if err != nil {
		t.Fatal(err)
	}
	var history *catalog.WALFile
	for i := range wal {
		if wal[i].Name == "00000002.history" {
			history = &wal[i]
		}
	}
	if history == nil || len(history.History) != 1 || history.History[0].Parent != 1 {
		t.Fatalf("archive lacks 00000002.history with its switch point from timeline 1: %+v", history)
	}
	switchLSN = history.History[0].Switch.String()
	// Timeline 1 up to the segment of the switch, then timeline 2 from it: the segment holding
	// the switch is archived under timeline 2's name (as PostgreSQL would), none is missing.
	switchSeg := catalog.SegmentName(2, uint64(history.History[0].Switch)/(16<<20), 16<<20)
	var names []string
	for _, s := range segs {
		names = append(names, s.Name)
	}
	if !strings.Contains(strings.Join(names, " "), switchSeg) || !strings.Contains(log.String(), "timeline 1 ends at "+switchLSN+"; following timeline 2") {
		t.Fatalf("switch at %s: archived %v; want %s; %s", switchLSN, names, switchSeg, explain())
	}
	if history.History[0].Switch%(16<<20) == 0 {
		t.Fatalf("the switch at %s is at a segment's start; the test wants it inside one", switchLSN)
	}
	// That segment, as archived, is byte for byte the promoted server's own file.
	ids, err := backup.ReadIdentities(k.identityFile)
	if err != nil {
		t.Fatal(err)
	}
	restoreDir := t.TempDir()
	if _, err := backup.RestoreWAL(context.Background(), backup.WALRestoreOptions{Store: store, Tenant: "acme", Name: switchSeg, Path: "RECOVERYXLOG",
		DataDir: restoreDir, SystemID: systemIDOf(t, primary), Identities: ids, Trust: catalog.Trust{Keys: parsePublicKeys(t, sg.publicKey)}}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(restoreDir, "RECOVERYXLOG"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", switchSeg))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("archived %s (%d bytes) differs from the server's (%d bytes)", switchSeg, len(got), len(want))
	}
	t.Logf("archived %v; receiver's log:\n%s", names, log.String())
}

// TestWALReceiveRefusesItsConfiguration: wal-receive exits non-zero only for what retrying
// cannot fix, with one line that names the flag.
func TestWALReceiveRefusesItsConfiguration(t *testing.T) {
	t.Parallel()
	sg, k := newSigner(t), newKey(t)
	dir := t.TempDir()
	base := []string{"wal-receive", "--dsn", "postgres://u@127.0.0.1:1/app", "--storage", "file://" + dir, "--tenant", "acme",
		"--recipient", k.recipient, "--signing-key-file", sg.keyFile}
	for want, extra := range map[string][]string{
		"--slot is required":          nil,
		`--slot "Bad-Name"`:           {"--slot", "Bad-Name"},
		`--zstd-level "ludicrous"`:    {"--slot", "s", "--zstd-level", "ludicrous"},
		"--status-interval 10ms":      {"--slot", "s", "--status-interval", "10ms"},
		"is not an age public key":    {"--slot", "s", "--recipient", "not-a-key"},
		"read signing key":            {"--slot", "s", "--signing-key-file", filepath.Join(dir, "missing")},
		`unexpected argument "stray"`: {"--slot", "s", "stray"},
	} {
		args := append(append([]string(nil), base...), extra...)
		failAgent(t, nil, want, args...)
	}
}
