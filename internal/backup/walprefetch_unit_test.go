package backup

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// prefetchFixture is a WAL archive of segments 1 to archived of timeline 1 in a storage volume
// (small segments, random content), with the keys to read it, and a data directory with a spool.
type prefetchFixture struct {
	store    storage.Store
	src      walSource
	signing  ed25519.PrivateKey
	segments [][]byte // by segment number; nil for those not archived
	plan     []catalog.WALName
	dataDir  string
	spool    string
}

const (
	prefetchSystemID = "7412345678901234567"
	prefetchSegSize  = int64(256 << 10)
)

// newPrefetchFixture archives segments 1 to archived; the plan asks for 1 to planned.
func newPrefetchFixture(t *testing.T, archived, planned int) *prefetchFixture {
	t.Helper()
	ctx := context.Background()
	store, id := volumeAndIdentity(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &prefetchFixture{store: store, signing: priv, segments: make([][]byte, planned+1), dataDir: t.TempDir(),
		src: walSource{Store: store, Tenant: "acme", SystemID: prefetchSystemID, Identities: []age.Identity{id},
			Trust: catalog.Trust{Keys: []ed25519.PublicKey{pub}}, keys: &keyCache{}}}
	srcDir := t.TempDir() // the archived cluster's data directory: its pg_control names the system
	control := make([]byte, 8192)
	binary.NativeEndian.PutUint64(control, 7412345678901234567)
	for _, dir := range []string{"global", "pg_wal"} {
		if err := os.MkdirAll(filepath.Join(srcDir, dir), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(srcDir, "global", "pg_control"), control, 0o600); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= planned; n++ {
		name := catalog.SegmentName(1, uint64(n), prefetchSegSize)
		w, err := catalog.ParseWALName(name)
		if err != nil {
			t.Fatal(err)
		}
		f.plan = append(f.plan, w)
		if n > archived {
			continue
		}
		data := make([]byte, prefetchSegSize)
		_, _ = rand.Read(data)
		binary.NativeEndian.PutUint64(data[24:], 7412345678901234567)
		binary.NativeEndian.PutUint32(data[32:], uint32(prefetchSegSize))
		if err := os.WriteFile(filepath.Join(srcDir, "pg_wal", name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ArchiveWAL(ctx, WALArchiveOptions{Store: store, Tenant: "acme", Recipients: []string{id.Recipient().String()},
			SigningKey: priv, Path: "pg_wal/" + name, Name: name, DataDir: srcDir}); err != nil {
			t.Fatal(err)
		}
		f.segments[n] = data
	}
	f.spool = filepath.Join(f.dataDir, walSpoolDir)
	if err := os.MkdirAll(f.spool, 0o700); err != nil {
		t.Fatal(err)
	}
	return f
}

// start runs a prefetcher on the fixture until the test ends. stop ends it and returns its
// stats; finished waits until it ends by itself (the plan done), and returns them.
func (f *prefetchFixture) start(t *testing.T, ahead int) (stop, finished func() prefetchStats) {
	t.Helper()
	p := &walPrefetcher{src: f.src, plan: f.plan, dir: f.spool, ahead: ahead, workers: 2, poll: 2 * time.Millisecond, log: testLog{t}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan prefetchStats, 1)
	go func() { done <- p.run(ctx) }()
	var once sync.Once
	var stats prefetchStats
	stop = func() prefetchStats {
		once.Do(func() { cancel(); stats = <-done })
		return stats
	}
	finished = func() prefetchStats {
		once.Do(func() {
			select {
			case stats = <-done:
			case <-time.After(10 * time.Second):
				t.Error("the prefetcher did not end in 10 s once its plan was done")
				cancel()
				stats = <-done
			}
		})
		return stats
	}
	t.Cleanup(func() { stop() })
	return stop, finished
}

// restore is wal-restore as recovery runs it: segment n to pg_wal/RECOVERYXLOG, through the spool.
func (f *prefetchFixture) restore(n int) ([]byte, error) {
	dest := filepath.Join(f.dataDir, "pg_wal", "RECOVERYXLOG")
	_ = os.Remove(dest)
	_, err := RestoreWAL(context.Background(), WALRestoreOptions{Store: f.store, Tenant: "acme", SystemID: prefetchSystemID,
		Name: f.plan[n-1].Name, Path: "pg_wal/RECOVERYXLOG", DataDir: f.dataDir, Identities: f.src.Identities, Trust: f.src.Trust,
		Spool: walSpoolDir})
	if err != nil {
		if _, statErr := os.Stat(dest); statErr == nil {
			return nil, errors.New("a failed restore left RECOVERYXLOG behind")
		}
		return nil, err
	}
	return os.ReadFile(dest)
}

// spooled lists the spool's entries but .requested: segment names, and temporary files.
func (f *prefetchFixture) spooled(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(f.spool)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != walSpoolRequested {
			out = append(out, e.Name())
		}
	}
	return out
}

// waitSpooled waits until segment n is in the spool, checking meanwhile that the spool never
// holds more than ahead files nor any segment outside the window after the last one asked for.
func (f *prefetchFixture) waitSpooled(t *testing.T, n, asked, ahead int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		names := f.spooled(t)
		if len(names) > ahead {
			t.Fatalf("the spool holds %d files, more than %d: %v", len(names), ahead, names)
		}
		for _, name := range names {
			if strings.HasPrefix(name, ".") {
				continue // a fetch in flight
			}
			i := slices.IndexFunc(f.plan, func(w catalog.WALName) bool { return w.Name == name }) + 1
			if i <= asked || i > asked+ahead {
				t.Fatalf("the spool holds segment %d (%s) while recovery asked for %d last, %d ahead: %v", i, name, asked, ahead, names)
			}
		}
		if slices.Contains(names, f.plan[n-1].Name) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %d was not prefetched in 10 s; the spool holds %v", n, names)
		}
		time.Sleep(time.Millisecond)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestWALPrefetchServesInOrderWithinItsBound plays recovery against a prefetcher: each segment,
// asked for in order, is found in the spool and moved into place byte for byte, by a bare rename
// as restore_command's mv does (nothing written to .requested: the prefetcher follows what is
// taken); the spool never holds more than ahead segments (in flight included), and only the ones
// after the last asked for; once recovery has taken every segment the prefetcher ends with nothing
// left.
func TestWALPrefetchServesInOrderWithinItsBound(t *testing.T) {
	t.Parallel()
	const segments, ahead = 12, 3
	f := newPrefetchFixture(t, segments, segments)
	_, finished := f.start(t, ahead)
	for n := 1; n <= segments; n++ {
		f.waitSpooled(t, n, n-1, ahead)
		if err := os.Rename(filepath.Join(f.spool, f.plan[n-1].Name), filepath.Join(f.dataDir, "pg_wal", "RECOVERYXLOG")); err != nil {
			t.Fatalf("segment %d: %v; want it from the spool", n, err)
		}
		got, err := os.ReadFile(filepath.Join(f.dataDir, "pg_wal", "RECOVERYXLOG"))
		if err != nil || !bytes.Equal(got, f.segments[n]) {
			t.Fatalf("segment %d from the spool: %d bytes, equal %v, %v", n, len(got), bytes.Equal(got, f.segments[n]), err)
		}
	}
	st := finished()
	if left := f.spooled(t); len(left) > 0 {
		t.Errorf("after recovery took every segment the spool holds %v", left)
	}
	if st.Fetched != segments || st.Taken != segments || st.Dropped != 0 || st.Failed != 0 {
		t.Errorf("stats %+v, want %d fetched and taken", st, segments)
	}
}

// TestWALPrefetchNeverServesWhatDoesNotCheck damages one segment's stored object and signs
// another's description with a key the restore does not trust: the prefetcher spools neither,
// and wal-restore, finding nothing in the spool, fetches them itself and refuses them as it always
// has. A fetch that breaks halfway leaves nothing in the spool either.
func TestWALPrefetchNeverServesWhatDoesNotCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const segments, ahead = 6, 6
	f := newPrefetchFixture(t, segments, segments)
	// 2: the stored object damaged.
	key2 := catalog.WALObjectKey("acme", prefetchSystemID, f.plan[1])
	rc, err := f.store.Get(ctx, key2)
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := io.ReadAll(rc)
	rc.Close()
	obj[len(obj)/2] ^= 0xff
	if _, err := f.store.Put(ctx, key2, bytes.NewReader(obj)); err != nil {
		t.Fatal(err)
	}
	// 4: its description re-signed by another key.
	info, err := catalog.ReadWALInfo(ctx, f.store, "acme", prefetchSystemID, f.plan[3], f.src.Trust)
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if err := catalog.WriteWALSidecar(ctx, f.store, info, other); err != nil {
		t.Fatal(err)
	}
	// 5: the download breaks halfway.
	f.src.Store = &breakingStore{Store: f.store, key: catalog.WALObjectKey("acme", prefetchSystemID, f.plan[4])}

	_, finished := f.start(t, ahead)
	f.waitSpooled(t, 6, 0, ahead)
	// Every fetch ends (the failed ones leaving nothing), with 1, 3 and 6 alone in the spool.
	want := []string{f.plan[0].Name, f.plan[2].Name, f.plan[5].Name}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(f.spooled(t), want) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if names := f.spooled(t); !slices.Equal(names, want) {
		t.Fatalf("the spool holds %v, want segments 1, 3 and 6 only", names)
	}
	// Recovery asks in order; it would stop at 2, but the others are checked too.
	for n := 1; n <= segments; n++ {
		got, err := f.restore(n)
		var mismatch *ChecksumMismatchError
		var sigErr *catalog.WALSignatureError
		switch {
		case n == 2 && !errors.As(err, &mismatch):
			t.Errorf("restore of the damaged segment 2: %v, want a checksum mismatch", err)
		case n == 4 && !errors.As(err, &sigErr):
			t.Errorf("restore of segment 4, signed by another key: %v, want a signature error", err)
		case n != 2 && n != 4 && (err != nil || !bytes.Equal(got, f.segments[n])):
			t.Errorf("restore of segment %d: equal %v, %v", n, bytes.Equal(got, f.segments[n]), err)
		}
	}
	if st := finished(); st.Fetched != 3 || st.Taken != 3 || st.Failed != 3 {
		t.Errorf("stats %+v, want 3 fetched and taken, 3 failed", st)
	}
}

// breakingStore fails the download of one key halfway.
type breakingStore struct {
	storage.Store
	key string
}

func (s *breakingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.Store.Get(ctx, key)
	if err != nil || key != s.key {
		return rc, err
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	return io.NopCloser(io.MultiReader(bytes.NewReader(data[:len(data)/2]), errReader{errors.New("connection reset by peer")})), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestWALPrefetchPastTheEnd plans more segments than are archived, as a time target before the
// archive's end or a segment missing from it make recovery stop short: the prefetcher fetches
// what there is, spools nothing for the rest, and wal-restore says the first missing segment is
// not archived, which ends recovery as before.
func TestWALPrefetchPastTheEnd(t *testing.T) {
	t.Parallel()
	const archived, planned, ahead = 3, 6, 8
	f := newPrefetchFixture(t, archived, planned)
	_, finished := f.start(t, ahead)
	for n := 1; n <= archived; n++ {
		f.waitSpooled(t, n, n-1, ahead)
		if got, err := f.restore(n); err != nil || !bytes.Equal(got, f.segments[n]) {
			t.Fatalf("restore of segment %d: equal %v, %v", n, bytes.Equal(got, f.segments[n]), err)
		}
	}
	if _, err := f.restore(archived + 1); !catalog.IsNotArchived(err) {
		t.Fatalf("restore of segment %d, not archived: %v, want not archived", archived+1, err)
	}
	st := finished()
	if st.Failed != planned-archived || st.Fetched != archived || st.Taken != archived {
		t.Errorf("stats %+v, want %d fetched and taken, %d failed", st, archived, planned-archived)
	}
	for _, name := range f.spooled(t) {
		t.Errorf("left in the spool: %s", name)
	}
}

// TestWALPrefetchFollowsRecovery asks for a segment far ahead of what was prefetched, as recovery
// does when it fetched segments itself while the prefetcher was behind: the prefetcher drops what
// recovery has passed and fetches after the segment asked for.
func TestWALPrefetchFollowsRecovery(t *testing.T) {
	t.Parallel()
	const segments, ahead = 10, 2
	f := newPrefetchFixture(t, segments, segments)
	// Recovery asked for 5 before the prefetcher started: fetched directly.
	if got, err := f.restore(5); err != nil || !bytes.Equal(got, f.segments[5]) {
		t.Fatalf("restore of segment 5: equal %v, %v", bytes.Equal(got, f.segments[5]), err)
	}
	_, finished := f.start(t, ahead)
	f.waitSpooled(t, 6, 5, ahead)
	f.waitSpooled(t, 7, 5, ahead)
	if got, err := f.restore(6); err != nil || !bytes.Equal(got, f.segments[6]) {
		t.Fatalf("restore of segment 6: equal %v, %v", bytes.Equal(got, f.segments[6]), err)
	}
	f.waitSpooled(t, 8, 6, ahead)
	// Now it jumps: 10 is asked for while 7 and 8 wait in the spool.
	if got, err := f.restore(10); err != nil || !bytes.Equal(got, f.segments[10]) {
		t.Fatalf("restore of segment 10: equal %v, %v", bytes.Equal(got, f.segments[10]), err)
	}
	st := finished()
	if left := f.spooled(t); len(left) > 0 {
		t.Errorf("segments recovery passed are still spooled: %v", left)
	}
	if st.Dropped != 2 || st.Taken != 1 || st.Fetched != 3 {
		t.Errorf("stats %+v, want 6, 7 and 8 fetched, 6 taken, 7 and 8 dropped", st)
	}
}

// TestWALPrefetchLeftoversAreHarmless is what an agent killed mid-prefetch leaves: a temporary
// file (half a segment) and a .requested naming a segment: wal-restore never serves the
// temporary file, fetches the segment itself, and writes it whole. A spool that is gone (the
// restore ended, or never had one) is no error either.
func TestWALPrefetchLeftoversAreHarmless(t *testing.T) {
	t.Parallel()
	f := newPrefetchFixture(t, 2, 2)
	half := f.segments[1][:prefetchSegSize/2]
	if err := os.WriteFile(filepath.Join(f.spool, "."+f.plan[0].Name+".tenantops-123"), half, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.spool, walSpoolRequested), []byte(f.plan[1].Name+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := f.restore(1); err != nil || !bytes.Equal(got, f.segments[1]) {
		t.Fatalf("restore of segment 1 beside a half-written copy: %d bytes, equal %v, %v", len(got), bytes.Equal(got, f.segments[1]), err)
	}
	if err := os.RemoveAll(f.spool); err != nil {
		t.Fatal(err)
	}
	if got, err := f.restore(2); err != nil || !bytes.Equal(got, f.segments[2]) {
		t.Fatalf("restore of segment 2 without a spool: equal %v, %v", bytes.Equal(got, f.segments[2]), err)
	}
}

// TestStartWALPrefetchCleansUp starts the prefetch of a restore on a data directory where an
// earlier attempt left a spool: it starts afresh, prefetches, and its stop removes the spool with
// whatever recovery did not take.
func TestStartWALPrefetchCleansUp(t *testing.T) {
	t.Parallel()
	f := newPrefetchFixture(t, 4, 4)
	stale := filepath.Join(f.spool, "000000010000000000000099")
	if err := os.WriteFile(stale, []byte("from an earlier attempt"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := PointInTimeOptions{Store: f.store, Tenant: "acme", Identities: f.src.Identities, Trust: f.src.Trust, DataDir: f.dataDir,
		WALPrefetchBytes: 2 * prefetchSegSize, Log: testLog{t}}
	last := catalog.Backup{Manifest: catalog.Manifest{Physical: &catalog.PhysicalInfo{SystemID: prefetchSystemID, WALSegmentSize: prefetchSegSize}}}
	stop, err := startWALPrefetch(context.Background(), o, last, f.plan, walSpoolDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the earlier attempt's spool is still there: %v", err)
	}
	f.waitSpooled(t, 2, 0, 2)
	stop()
	stop()
	if _, err := os.Stat(f.spool); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the spool outlived the prefetch: %v", err)
	}
}

// TestRestoreCommandTakesSpooledSegmentsWithoutTheAgent runs the restore_command of a restore with
// a spool through sh, as PostgreSQL does (its %f and %p replaced), in a data directory: a spooled
// segment is moved into place without starting the agent; anything else runs the agent with the
// file's name and destination.
func TestRestoreCommandTakesSpooledSegmentsWithoutTheAgent(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	spool := filepath.Join(dataDir, walSpoolDir)
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	calls := filepath.Join(t.TempDir(), "calls")
	agent := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(agent, []byte("#!/bin/sh\necho \"$@\" >>"+calls+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	command := restoreCommand(agent, PointInTimeOptions{Location: "s3://bucket/p?x=%1", Tenant: "acme"}, "7", "/keys/id.txt", walSpoolDir)
	run := func(name string) {
		t.Helper()
		line := strings.NewReplacer("%f", name, "%p", "pg_wal/RECOVERYXLOG", "%%", "%").Replace(command)
		cmd := exec.Command("/bin/sh", "-c", line)
		cmd.Dir = dataDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", line, err, out)
		}
	}
	const seg = "000000010000000000000005"
	if err := os.WriteFile(filepath.Join(spool, seg), []byte("checked"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(seg)
	if got, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", "RECOVERYXLOG")); err != nil || string(got) != "checked" {
		t.Fatalf("spooled segment: RECOVERYXLOG %q, %v", got, err)
	}
	if _, err := os.Stat(calls); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the agent ran for a spooled segment (%v)", err)
	}
	run("000000010000000000000006")
	run("00000002.history")
	got, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	want := "wal-restore --storage s3://bucket/p?x=%1 --tenant acme --system-id 7 --identity-file /keys/id.txt --spool " + walSpoolDir + " 000000010000000000000006 pg_wal/RECOVERYXLOG\n" +
		"wal-restore --storage s3://bucket/p?x=%1 --tenant acme --system-id 7 --identity-file /keys/id.txt --spool " + walSpoolDir + " 00000002.history pg_wal/RECOVERYXLOG\n"
	if string(got) != want {
		t.Errorf("the agent ran with\n%s\nwant\n%s", got, want)
	}
}
