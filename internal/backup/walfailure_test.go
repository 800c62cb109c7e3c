package backup_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/test/stack"
)

// TestWALArchivingSurvivesFailures kills the agent in the middle of a WAL upload and then takes
// storage away for a while, on PostgreSQL 15: no segment is ever half visible, PostgreSQL keeps
// what it could not archive and retries, the archive catches up once storage is back, and a
// restore to its end has every row. Base backup and WAL are encrypted to the tenant's data key
// only, and the restore opens both with the platform identity through the key's escrow copy.
func TestWALArchivingSurvivesFailures(t *testing.T) {
	t.Parallel()
	s3 := stack.StartS3(t)
	proxy := startStorageSwitch(t, s3.Endpoint)
	k, sg := newKey(t), newSigner(t) // k is the platform's key, which the tenant key is wrapped to
	tenantKey, err := datakey.Generate([]string{k.recipient})
	if err != nil {
		t.Fatal(err)
	}
	const uid = "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
	direct := s3.Location("backups")
	viaProxy := strings.Replace(direct, s3.Endpoint, proxy.addr, 1)
	pg := startArchiving(t, "15", newArchiver(t, s3, viaProxy, "acme", k, sg).withDataKey(t, tenantKey, uid))
	env := append(append(s3.Env(), "PG_BIN_DIR="+pg.BinDir), sg.env()...)
	app := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", `CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'base' FROM generate_series(1, 1000) g`)
	base := mustAgent(t, env, "backup", "--method", "physical", "--dsn", app, "--storage", direct, "--tenant", "acme", "--schedule", "nightly",
		"--tenant-uid", uid, "--data-key", writeDataKeyDir(t, tenantKey)).lastLine()
	if m := readManifest(t, s3, "backups/acme/nightly/"+base+"/manifest.json"); m.DataKeyID != tenantKey.ID || len(m.Recipients) != 1 || m.TenantUID != uid {
		t.Fatalf("physical backup's manifest: dataKeyID %q, recipients %v, uid %q; want the tenant key %s only", m.DataKeyID, m.Recipients, m.TenantUID, tenantKey.ID)
	}
	first := switchAndWait(t, pg)
	info, _, err := catalog.DecodeWALSidecar(readS3Object(t, s3, "backups/acme/wal/"+systemIDOf(t, pg)+"/00000001/"+first+".json"),
		catalog.Trust{Keys: parsePublicKeys(t, sg.publicKey)})
	if err != nil || info.DataKeyID != tenantKey.ID || len(info.Recipients) != 1 || info.TenantUID != uid {
		t.Fatalf("description of %s: %+v, %v; want encrypted to the tenant key %s only", first, info, err, tenantKey.ID)
	}
	archivedObjects := func() []string {
		var out []string
		for o := range s3.Client.ListObjects(context.Background(), s3.Bucket, minio.ListObjectsOptions{Prefix: "backups/acme/wal/", Recursive: true}) {
			out = append(out, o.Key)
		}
		return out
	}

	// Killed halfway: storage holds the upload of the segment and never answers; the agent is
	// killed.
	proxy.set(stall)
	pg.Exec(t, "app", `INSERT INTO items SELECT g, 'killed' FROM generate_series(1001, 2000) g`)
	var killedSeg string
	query(t, pg.DSN, `SELECT pg_walfile_name(pg_switch_wal())`, &killedSeg)
	killed := killArchiver(t, killedSeg)
	for _, key := range archivedObjects() {
		if strings.Contains(key, killedSeg) {
			t.Fatalf("the killed upload of %s left %s in storage", killedSeg, key)
		}
	}

	// Storage down: PostgreSQL keeps failing, and keeps the segments.
	proxy.set(refuse)
	var downSeg string
	for i := 0; i < 2; i++ {
		pg.Exec(t, "app", fmt.Sprintf(`INSERT INTO items SELECT g, 'down' FROM generate_series(%d, %d) g`, 2001+100*i, 2100+100*i))
		query(t, pg.DSN, `SELECT pg_walfile_name(pg_switch_wal())`, &downSeg)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var failed int64
		var last string
		query(t, pg.DSN, `SELECT failed_count, coalesce(last_archived_wal, '') FROM pg_stat_archiver`, &failed, &last)
		if last >= killedSeg {
			t.Fatalf("segment %s counts as archived while storage was unreachable", last)
		}
		if failed >= 2 {
			// PostgreSQL keeps every segment it could not archive, waiting for a zero exit.
			for _, seg := range []string{killedSeg, downSeg} {
				if _, err := os.Stat(filepath.Join(pg.DataDir(), "pg_wal", "archive_status", seg+".ready")); err != nil {
					t.Fatalf("segment %s is not waiting to be archived while storage is down: %v", seg, err)
				}
				if _, err := os.Stat(filepath.Join(pg.DataDir(), "pg_wal", seg)); err != nil {
					t.Fatalf("segment %s is gone from pg_wal while storage is down: %v", seg, err)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("archiving did not fail while storage was down (%d failures)", failed)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Storage back: the archive catches up, without a gap.
	proxy.set(pass)
	pg.Exec(t, "app", `INSERT INTO items SELECT g, 'back' FROM generate_series(3001, 3100) g`)
	last := switchAndWait(t, pg)
	if last <= downSeg {
		t.Fatalf("last archived %s, want after %s", last, downSeg)
	}
	objects := strings.Join(archivedObjects(), "\n")
	for _, seg := range []string{killedSeg, downSeg, last} {
		if !strings.Contains(objects, seg+".json") || !strings.Contains(objects, seg+".zst.age") {
			t.Fatalf("segment %s is not archived after storage came back:\n%s", seg, objects)
		}
	}
	want := contentOf(t, app, "items")
	dataDir := shared(t) + "/latest"
	r := mustAgent(t, env, "restore", "--storage", direct, "--tenant", "acme", "--identity-file", k.identityFile, "--data-dir", dataDir, "--to-latest")
	restoreOutput(t, r, "database app has 1 tables, 2300 rows")
	if got := contentOf(t, restoredServer(t, pg.BinDir, dataDir, "app"), "items"); got != want {
		t.Fatalf("restored: %s, want %s", got, want)
	}
	t.Logf("killed wal-archive pid %d on %s; %d objects archived", killed, killedSeg, len(archivedObjects()))
}

// killArchiver waits for the agent's wal-archive of seg to be running (stuck in its upload) and
// kills it with SIGKILL: nothing it could do on the way out.
func killArchiver(t *testing.T, seg string) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil {
				continue
			}
			args := strings.Split(string(cmdline), "\x00")
			if len(args) > 2 && args[0] == agentBinary && args[1] == "wal-archive" && strings.Contains(string(cmdline), seg) {
				time.Sleep(500 * time.Millisecond) // well into its upload, which the proxy holds
				pid, _ := strconv.Atoi(e.Name())
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Fatalf("kill wal-archive %d: %v", pid, err)
				}
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no wal-archive of %s ran within a minute", seg)
	return 0
}

// storageSwitch is an HTTP proxy in front of storage that passes requests, holds WAL uploads
// (reads the start of the body, then neither forwards nor answers) or refuses every request by
// dropping its connection, as storage that went away would.
type storageSwitch struct {
	addr    string
	mode    atomic.Int32
	changed chan struct{} // closed and replaced on every set, to wake held requests
	mu      sync.Mutex
}

const (
	pass int32 = iota
	stall
	refuse
)

func (s *storageSwitch) set(mode int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode.Store(mode)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *storageSwitch) wake() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func startStorageSwitch(t *testing.T, upstream string) *storageSwitch {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &storageSwitch{addr: l.Addr().String(), changed: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: upstream})
	drop := func(w http.ResponseWriter) {
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch s.mode.Load() {
		case refuse:
			drop(w)
			return
		case stall:
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, ".zst.age") {
				_, _ = io.CopyN(io.Discard, r.Body, 4<<10)
				select {
				case <-r.Context().Done():
				case <-s.wake():
				}
				drop(w)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}
