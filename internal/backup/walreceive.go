package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// WALReceiveOptions configure ReceiveWAL.
type WALReceiveOptions struct {
	// DSN is the server, as a role with the REPLICATION attribute that pg_hba.conf lets in for
	// replication; a password may come from PGPASSWORD.
	DSN string
	// Slot is the physical replication slot that keeps the server's WAL until it is archived;
	// created (reserving WAL) when missing.
	Slot string
	// Stores are where every segment goes; a segment counts as stored once all of them have it.
	Stores []storage.Store
	// Archive is what ArchiveWALContent takes besides Store and Name: tenant, keys, signing key,
	// compression level.
	Archive WALArchiveOptions
	// StatusInterval is how often the server hears our position, at least; it must be well under
	// the server's wal_sender_timeout. Zero means 10s.
	StatusInterval time.Duration
	// StatusFile, when set, is rewritten after every archived segment (see WALReceiveStatus).
	StatusFile string
	// Log gets a line per archived segment; Errors gets every failure, once per kind until it
	// clears.
	Log, Errors io.Writer
	// RetryMin and RetryMax bound the back-off between attempts to upload or to connect. Zero
	// means 1s and 30s.
	RetryMin, RetryMax time.Duration
	// Stats, when set, is kept up to date as the receiver works.
	Stats *WALReceiveStats
}

// WALReceiveStats counts what a receiver did, for tests and the status file.
type WALReceiveStats struct {
	// SegmentBuffers is how many segment buffers were ever allocated: one being received and one
	// being uploaded, so at most two while the segment size stays the same.
	SegmentBuffers atomic.Int64
	// Archived is how many segments every location stored.
	Archived atomic.Int64
	// Confirmed is the position the server was last told is stored (flush and apply).
	Confirmed atomic.Uint64
}

// WALReceiveStatus is the status file: what a readiness probe or a person reads to see progress.
type WALReceiveStatus struct {
	SystemID    string      `json:"systemID"`
	Timeline    uint32      `json:"timeline"`
	LastSegment string      `json:"lastSegment"`
	ArchivedAt  time.Time   `json:"archivedAt"`
	Confirmed   catalog.LSN `json:"confirmedLSN"`
	Locations   int         `json:"locations"`
	// UpToDateAt is the last time the receiver was streaming with every complete segment it
	// had received stored: its readiness probe (wal-receive-status) reads it. A database that
	// writes nothing leaves ArchivedAt behind but keeps this fresh; a storage outage or a lost
	// connection lets it age.
	UpToDateAt time.Time `json:"upToDateAt"`
}

// WALReceiveConfigError is a mistake in the receiver's configuration, which retrying cannot
// fix: wal-receive exits non-zero on it, and on nothing else.
type WALReceiveConfigError struct{ Err error }

func (e *WALReceiveConfigError) Error() string { return e.Err.Error() }
func (e *WALReceiveConfigError) Unwrap() error { return e.Err }

// slotNameRE is what PostgreSQL accepts as a replication slot name; it also makes the name safe
// to put unquoted in a replication command.
var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// pollInterval bounds how long the receiver waits on a quiet connection before it looks whether
// an upload finished, so that the server learns soon that a segment may be recycled.
const pollInterval = time.Second

// ReceiveWAL streams the server's WAL over a physical replication connection and archives each
// segment, once complete, to every store through ArchiveWALContent, the path wal-archive takes.
// Only when every store has a segment (data and signed description) does the server hear that
// it may recycle it, through the replication slot: a receiver stopped at any moment loses
// nothing, and the segment it was sending is sent again, which archiving takes as done already.
//
// The segment being received and the one being uploaded are the only WAL held, in memory;
// while an upload is retried the receiver stops reading but keeps answering the server. Lost
// connections are reopened from the slot's position. It returns nil when ctx ends, and an error
// only for a WALReceiveConfigError.
func ReceiveWAL(ctx context.Context, o WALReceiveOptions) error {
	if !slotNameRE.MatchString(o.Slot) {
		return &WALReceiveConfigError{fmt.Errorf("replication slot name %q: want 1 to 63 lower-case letters, digits and underscores", o.Slot)}
	}
	if len(o.Stores) == 0 {
		return &WALReceiveConfigError{errors.New("no storage location to archive to")}
	}
	if err := catalog.ValidateName("tenant", o.Archive.Tenant); err != nil {
		return &WALReceiveConfigError{err}
	}
	keys, err := encryptionKeys(o.Archive.Recipients, o.Archive.DataKey, o.Archive.TenantUID)
	if err == nil {
		_, _, err = ParseRecipients(keys)
	}
	if err != nil {
		return &WALReceiveConfigError{err}
	}
	ci, err := parseConnInfo(o.DSN)
	if err != nil {
		return &WALReceiveConfigError{err}
	}
	cfg, err := pgconn.ParseConfig(ci.dsn)
	if err != nil {
		return &WALReceiveConfigError{fmt.Errorf("invalid --dsn %s: %s", ci.Redacted(), ci.scrub(err.Error()))}
	}
	// A physical replication connection; the name shows in pg_stat_replication. It must never be
	// in synchronous_standby_names: it confirms a segment only once archived, minutes later.
	cfg.RuntimeParams["replication"] = "true"
	cfg.RuntimeParams["application_name"] = "tenantops-wal-receive"
	if o.StatusInterval <= 0 {
		o.StatusInterval = 10 * time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(30*time.Second, o.RetryMin)
	}
	if o.Stats == nil {
		o.Stats = &WALReceiveStats{}
	}
	o.Archive.Log = nil // one line per segment, ours

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &walReceiver{o: o, ci: ci, cfg: cfg, jobs: make(chan uploadJob), results: make(chan uploadResult, 1),
		fail: &failureLog{w: o.Errors}, history: pglogrepl.TimelineHistory}
	uploaderDone := make(chan struct{})
	go func() {
		defer close(uploaderDone)
		r.uploader(ctx)
	}()
	defer func() {
		cancel()
		<-uploaderDone
	}()

	backoff := o.RetryMin
	for {
		progressed, err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var ce *WALReceiveConfigError
		if errors.As(err, &ce) {
			return err
		}
		r.fail.report("replication", err)
		if progressed {
			backoff = o.RetryMin
		}
		if !sleepCtx(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, o.RetryMax)
	}
}

type walReceiver struct {
	o    WALReceiveOptions
	ci   connInfo
	cfg  *pgconn.Config
	fail *failureLog

	systemID string
	segSize  int64
	spare    *segmentBuffer

	// confirmed is the end of the last segment every store has, on timeline confirmedTLI: what
	// the server is told it may recycle.
	confirmed    catalog.LSN
	confirmedTLI uint32

	jobs    chan uploadJob
	results chan uploadResult
	busy    bool // a job is with the uploader and its result not yet taken

	// status is what the status file says; statusWritten when it was last written.
	status        WALReceiveStatus
	statusWritten time.Time

	// history is TIMELINE_HISTORY; tests replace it.
	history func(ctx context.Context, conn *pgconn.PgConn, tli int32) (pglogrepl.TimelineHistoryResult, error)
}

type uploadJob struct {
	buf      *segmentBuffer
	systemID string
}

type uploadResult struct {
	buf      *segmentBuffer
	systemID string
	err      error
}

// session is one replication connection, from IDENTIFY_SYSTEM until it fails or ctx ends.
// progressed says whether it streamed at all, to restart the back-off.
func (r *walReceiver) session(ctx context.Context) (progressed bool, err error) {
	// A segment still being uploaded may be the one the slot starts from: receiving it again
	// while it uploads would hold a third segment. Storage decides when we go on.
	if err := r.waitUploader(ctx); err != nil {
		return false, err
	}
	conn, err := pgconn.ConnectConfig(ctx, r.cfg)
	if err != nil {
		return false, fmt.Errorf("connect for replication to %s: %s", r.ci.Redacted(), r.ci.scrub(connectFailure(err)))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return false, fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	segSize, err := walSegmentSize(ctx, conn)
	if err != nil {
		return false, err
	}
	if r.systemID != "" && r.systemID != sys.SystemID {
		logf(r.o.Errors, "wal-receive: the server is database system %s now, was %s; archiving its WAL from its slot's position", sys.SystemID, r.systemID)
	}
	if r.systemID != sys.SystemID || r.segSize != segSize {
		r.systemID, r.segSize, r.spare, r.confirmed, r.confirmedTLI = sys.SystemID, segSize, nil, 0, 0
	}
	restart, tli, err := r.slotPosition(ctx, conn)
	if err != nil {
		return false, err
	}
	if restart == 0 { // a slot that reserves nothing yet: from where the server is now
		restart, tli = catalog.LSN(sys.XLogPos), uint32(sys.Timeline)
	}
	if tli == 0 {
		tli = uint32(sys.Timeline)
	}
	start := restart - restart%catalog.LSN(segSize)
	if r.confirmedTLI == tli && r.confirmed > start {
		// The slot did not hear of our last segment before the connection went.
		start = r.confirmed
	}
	r.confirmed, r.confirmedTLI = start, tli
	// Recovery follows timelines through their history files; archive them before their WAL.
	for _, t := range uniqueTimelines(uint32(sys.Timeline), tli) {
		if err := r.archiveHistory(ctx, conn, t); err != nil {
			return false, err
		}
	}
	buf := r.takeBuffer()
	buf.reset(start, tli)
	return r.stream(ctx, conn, buf)
}

func uniqueTimelines(tlis ...uint32) []uint32 {
	var out []uint32
	for _, t := range tlis {
		if t > 1 && (len(out) == 0 || out[len(out)-1] != t) {
			out = append(out, t)
		}
	}
	return out
}

// stream runs START_REPLICATION from buf's position and receives, timeline after timeline,
// until the connection fails or ctx ends.
func (r *walReceiver) stream(ctx context.Context, conn *pgconn.PgConn, buf *segmentBuffer) (progressed bool, err error) {
	for {
		err := pglogrepl.StartReplication(ctx, conn, r.o.Slot, pglogrepl.LSN(buf.pos()),
			pglogrepl.StartReplicationOptions{Timeline: int32(buf.timeline), Mode: pglogrepl.PhysicalReplication})
		if next, at, ok := pglogrepl.IsErrEndTimeline(err); ok {
			// The timeline ends exactly where we start: go on on the next one.
			if err := r.nextTimeline(ctx, conn, buf, uint32(next), catalog.LSN(at)); err != nil {
				return progressed, err
			}
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				return progressed, fmt.Errorf("START_REPLICATION SLOT %s at %s on timeline %d: %w", r.o.Slot, buf.pos(), buf.timeline, err)
			}
			return progressed, err
		}
		progressed = true
		r.fail.recovered("replication", fmt.Sprintf("streaming from %s on timeline %d", buf.pos(), buf.timeline))
		if err := r.sendStatus(conn); err != nil {
			return progressed, err
		}
		var next uint32
		var at catalog.LSN
		buf, next, at, err = r.receive(ctx, conn, buf)
		if err != nil {
			return progressed, err
		}
		if err := r.nextTimeline(ctx, conn, buf, next, at); err != nil {
			return progressed, err
		}
	}
}

// receive is the COPY loop: WAL into buf, each complete segment to the uploader, status updates
// out. It returns when the server ends the timeline (with the next one and where it starts), or
// on failure.
func (r *walReceiver) receive(ctx context.Context, conn *pgconn.PgConn, buf *segmentBuffer) (_ *segmentBuffer, next uint32, at catalog.LSN, err error) {
	nextStatus := time.Now().Add(r.o.StatusInterval)
	var pending pglogrepl.XLogData // bytes received that the current segment has not taken yet
	for {
		select {
		case res := <-r.results:
			r.done(res)
			if err := r.sendStatus(conn); err != nil {
				return buf, 0, 0, err
			}
			nextStatus = time.Now().Add(r.o.StatusInterval)
		default:
		}
		if time.Now().After(nextStatus) {
			if err := r.sendStatus(conn); err != nil {
				return buf, 0, 0, err
			}
			nextStatus = time.Now().Add(r.o.StatusInterval)
		}
		if buf.complete() {
			if r.busy {
				// Storage is behind: read no further, which bounds memory to two segments, but
				// keep telling the server we are here, or wal_sender_timeout drops us.
				wait := time.NewTimer(time.Until(nextStatus))
				select {
				case res := <-r.results:
					r.done(res)
					if err := r.sendStatus(conn); err != nil {
						wait.Stop()
						return buf, 0, 0, err
					}
					nextStatus = time.Now().Add(r.o.StatusInterval)
				case <-wait.C:
				case <-ctx.Done():
					wait.Stop()
					return buf, 0, 0, ctx.Err()
				}
				wait.Stop()
				continue
			}
			end, tli := buf.end(), buf.timeline
			select {
			case r.jobs <- uploadJob{buf: buf, systemID: r.systemID}:
			case <-ctx.Done():
				return buf, 0, 0, ctx.Err()
			}
			r.busy = true
			buf = r.takeBuffer()
			buf.reset(end, tli)
			continue
		}
		if len(pending.WALData) > 0 {
			n, err := buf.add(catalog.LSN(pending.WALStart), pending.WALData, pending.ServerTime)
			if err != nil {
				return buf, 0, 0, err
			}
			pending.WALStart += pglogrepl.LSN(n)
			pending.WALData = pending.WALData[n:]
			continue
		}

		deadline := time.Now().Add(pollInterval)
		if nextStatus.Before(deadline) {
			deadline = nextStatus
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil {
				continue
			}
			return buf, 0, 0, fmt.Errorf("receive WAL: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return buf, 0, 0, fmt.Errorf("keepalive: %w", err)
				}
				if ka.ReplyRequested {
					if err := r.sendStatus(conn); err != nil {
						return buf, 0, 0, err
					}
					nextStatus = time.Now().Add(r.o.StatusInterval)
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return buf, 0, 0, fmt.Errorf("WAL message: %w", err)
				}
				// The message's buffer is the connection's, reused by the next read; it is
				// copied into the segment before that.
				pending = xld
			}
		case *pgproto3.CopyDone:
			// The server ends a timeline that is not its latest: it says which comes next.
			cdr, err := pglogrepl.SendStandbyCopyDone(ctx, conn)
			if err != nil {
				return buf, 0, 0, fmt.Errorf("end of timeline %d: %w", buf.timeline, err)
			}
			if cdr == nil {
				return buf, 0, 0, fmt.Errorf("the server ended timeline %d without naming the next", buf.timeline)
			}
			return buf, uint32(cdr.Timeline), catalog.LSN(cdr.LSN), nil
		case *pgproto3.ErrorResponse:
			return buf, 0, 0, pgconn.ErrorResponseToPgError(msg)
		}
	}
}

// nextTimeline follows the server from one timeline to the next, which starts at at: its
// history file is archived, and the segment that holds the switch goes on under the new
// timeline's name (the new timeline's first segment begins with the old one's bytes).
func (r *walReceiver) nextTimeline(ctx context.Context, conn *pgconn.PgConn, buf *segmentBuffer, next uint32, at catalog.LSN) error {
	if next <= buf.timeline || at != buf.pos() {
		return fmt.Errorf("the server switches to timeline %d at %s, but the stream is at %s on timeline %d", next, at, buf.pos(), buf.timeline)
	}
	if err := r.archiveHistory(ctx, conn, next); err != nil {
		return err
	}
	logf(r.o.Log, "wal-receive: timeline %d ends at %s; following timeline %d", buf.timeline, at, next)
	buf.timeline = next
	return nil
}

// archiveHistory fetches timeline tli's history file from the server and archives it everywhere.
func (r *walReceiver) archiveHistory(ctx context.Context, conn *pgconn.PgConn, tli uint32) error {
	h, err := r.history(ctx, conn, int32(tli))
	if err != nil {
		return fmt.Errorf("TIMELINE_HISTORY %d: %w", tli, err)
	}
	return r.archiveHistoryFile(ctx, tli, h.FileName, h.Content)
}

func (r *walReceiver) archiveHistoryFile(ctx context.Context, tli uint32, name string, content []byte) error {
	if want := fmt.Sprintf("%08X.history", tli); name != want {
		return fmt.Errorf("TIMELINE_HISTORY %d: the server sent %q, want %s", tli, name, want)
	}
	c := WALContent{SystemID: r.systemID, Data: bytes.NewReader(content), Size: int64(len(content)), WrittenAt: time.Now()}
	if err := r.archiveEverywhere(ctx, name, c); err != nil {
		return err
	}
	logf(r.o.Log, "wal-receive: %s archived", name)
	return nil
}

// slotPosition reads the slot, creating it when missing: where its WAL starts, on which
// timeline (0 when the server did not say).
func (r *walReceiver) slotPosition(ctx context.Context, conn *pgconn.PgConn) (catalog.LSN, uint32, error) {
	for attempt := 0; ; attempt++ {
		res, err := conn.Exec(ctx, "READ_REPLICATION_SLOT "+r.o.Slot).ReadAll()
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "42601" {
				return 0, 0, &WALReceiveConfigError{fmt.Errorf("READ_REPLICATION_SLOT: %s (wal-receive needs PostgreSQL 15 or later)", pgErr.Message)}
			}
			return 0, 0, fmt.Errorf("READ_REPLICATION_SLOT %s: %w", r.o.Slot, err)
		}
		if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 3 {
			return 0, 0, fmt.Errorf("READ_REPLICATION_SLOT %s: unexpected answer", r.o.Slot)
		}
		row := res[0].Rows[0]
		if row[0] != nil {
			if typ := string(row[0]); typ != "physical" {
				return 0, 0, &WALReceiveConfigError{fmt.Errorf("replication slot %s is a %s slot; wal-receive needs a physical one", r.o.Slot, typ)}
			}
			var lsn catalog.LSN
			var tli uint64
			if row[1] != nil {
				if lsn, err = catalog.ParseLSN(string(row[1])); err != nil {
					return 0, 0, fmt.Errorf("READ_REPLICATION_SLOT %s: %w", r.o.Slot, err)
				}
			}
			if row[2] != nil {
				if tli, err = strconv.ParseUint(string(row[2]), 10, 32); err != nil {
					return 0, 0, fmt.Errorf("READ_REPLICATION_SLOT %s: timeline %q", r.o.Slot, row[2])
				}
			}
			return lsn, uint32(tli), nil
		}
		if attempt > 0 {
			return 0, 0, fmt.Errorf("replication slot %s was created but cannot be read", r.o.Slot)
		}
		// RESERVE_WAL: from now on the server keeps every segment until we confirm it.
		_, err = conn.Exec(ctx, "CREATE_REPLICATION_SLOT "+r.o.Slot+" PHYSICAL RESERVE_WAL").ReadAll()
		var pgErr *pgconn.PgError
		if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42710") { // created meanwhile
			return 0, 0, fmt.Errorf("create replication slot %s: %w", r.o.Slot, err)
		}
		if err == nil {
			logf(r.o.Log, "wal-receive: created physical replication slot %s", r.o.Slot)
		}
	}
}

// walSegmentSize asks the server its segment size, which it shows as "16MB".
func walSegmentSize(ctx context.Context, conn *pgconn.PgConn) (int64, error) {
	res, err := conn.Exec(ctx, "SHOW wal_segment_size").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("SHOW wal_segment_size: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return 0, errors.New("SHOW wal_segment_size: unexpected answer")
	}
	return parseSegmentSize(string(res[0].Rows[0][0]))
}

func parseSegmentSize(s string) (int64, error) {
	units := map[string]int64{"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	n, err := strconv.ParseInt(num, 10, 64)
	mult, ok := units[strings.TrimSpace(s[len(num):])]
	size := n * mult
	// PostgreSQL allows powers of two from 1 MB to 1 GB.
	if err != nil || !ok || size < 1<<20 || size > 1<<30 || size&(size-1) != 0 {
		return 0, fmt.Errorf("wal_segment_size %q: not a segment size", s)
	}
	return size, nil
}

// sendStatus tells the server what every store has: write, flush and apply are all the end of
// the last archived segment, so the slot keeps everything after it.
func (r *walReceiver) sendStatus(conn *pgconn.PgConn) error {
	if r.confirmed == 0 {
		// pglogrepl would report an unset position as the write position; never report one.
		return errors.New("no position to report")
	}
	pos := pglogrepl.LSN(r.confirmed)
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos})
	if err != nil {
		return fmt.Errorf("send status update: %w", err)
	}
	r.o.Stats.Confirmed.Store(uint64(r.confirmed))
	if !r.busy {
		// Streaming, with nothing complete waiting for storage: up to date.
		now := r.o.Archive.now().UTC()
		r.status.UpToDateAt = now
		if now.Sub(r.statusWritten) >= r.o.StatusInterval/2 {
			r.writeStatus()
		}
	}
	return nil
}

// writeStatus rewrites the status file, when there is one.
func (r *walReceiver) writeStatus() {
	if r.o.StatusFile == "" {
		return
	}
	if err := writeStatusFile(r.o.StatusFile, r.status); err != nil {
		r.fail.report("status file", err)
		return
	}
	r.fail.recovered("status file", "")
	r.statusWritten = r.o.Archive.now()
}

// takeBuffer is the spare segment buffer, or a new one.
func (r *walReceiver) takeBuffer() *segmentBuffer {
	if b := r.spare; b != nil {
		r.spare = nil
		return b
	}
	r.o.Stats.SegmentBuffers.Add(1)
	return newSegmentBuffer(r.segSize)
}

// done takes an upload's result: the segment is stored everywhere, the server may recycle it.
func (r *walReceiver) done(res uploadResult) {
	r.busy = false
	if res.buf.size == r.segSize && res.systemID == r.systemID {
		r.spare = res.buf
	}
	if res.err != nil || res.systemID != r.systemID {
		return
	}
	end := res.buf.end()
	if res.buf.timeline > r.confirmedTLI || end > r.confirmed {
		r.confirmed, r.confirmedTLI = end, res.buf.timeline
	}
	r.o.Stats.Archived.Add(1)
	logf(r.o.Log, "wal-receive: %s archived to %d location(s); the server may recycle WAL before %s", res.buf.name(), len(r.o.Stores), end)
	now := r.o.Archive.now().UTC()
	r.status = WALReceiveStatus{SystemID: r.systemID, Timeline: res.buf.timeline, LastSegment: res.buf.name(),
		ArchivedAt: now, Confirmed: end, Locations: len(r.o.Stores), UpToDateAt: now}
	r.writeStatus()
}

// waitUploader waits until no upload is in flight.
func (r *walReceiver) waitUploader(ctx context.Context) error {
	if !r.busy {
		return nil
	}
	select {
	case res := <-r.results:
		r.done(res)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// uploader archives the segments it is handed, one at a time, until ctx ends.
func (r *walReceiver) uploader(ctx context.Context) {
	for {
		select {
		case j := <-r.jobs:
			err := r.archiveEverywhere(ctx, j.buf.name(), j.buf.content(j.systemID))
			r.results <- uploadResult{buf: j.buf, systemID: j.systemID, err: err}
		case <-ctx.Done():
			return
		}
	}
}

// archiveEverywhere archives one file to every store, retrying each that fails with back-off
// until all have it or ctx ends. A store that has it is not asked again.
func (r *walReceiver) archiveEverywhere(ctx context.Context, name string, c WALContent) error {
	stored := make([]bool, len(r.o.Stores))
	backoff := r.o.RetryMin
	for {
		left := 0
		for i, s := range r.o.Stores {
			if stored[i] {
				continue
			}
			o := r.o.Archive
			o.Store, o.Name = s, name
			_, _, err := ArchiveWALContent(ctx, o, c)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			kind := "archive to " + s.String()
			if err != nil {
				r.fail.report(kind, fmt.Errorf("%s: %w", name, err))
				left++
				continue
			}
			stored[i] = true
			r.fail.recovered(kind, "")
		}
		if left == 0 {
			return nil
		}
		if !sleepCtx(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, r.o.RetryMax)
	}
}

// writeStatusFile replaces the status file in one rename, so a reader never sees half of it.
func writeStatusFile(path string, st WALReceiveStatus) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write status file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write status file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write status file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write status file: %w", err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// failureLog writes a failure when it starts or changes kind, not on every retry, and a line
// when it clears: a storage outage is a few lines, not one per attempt.
type failureLog struct {
	mu   sync.Mutex
	w    io.Writer
	last map[string]string
}

func (f *failureLog) report(kind string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		f.last = map[string]string{}
	}
	class := failureClass(err)
	if f.last[kind] == class {
		return
	}
	f.last[kind] = class
	logf(f.w, "wal-receive: %s failed, retrying: %s", kind, strings.Join(strings.Fields(err.Error()), " "))
}

// recovered ends a failure of kind, saying so (with what, if anything) when one was reported.
func (f *failureLog) recovered(kind, what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, failed := f.last[kind]; !failed {
		return
	}
	delete(f.last, kind)
	if what != "" {
		what = ": " + what
	}
	logf(f.w, "wal-receive: %s works again%s", kind, what)
}

// failureClass is the kind of a failure, for telling a new failure from the same one again.
func failureClass(err error) string {
	var (
		ur       *storage.UnreachableError
		conflict *WALConflictError
		pgErr    *pgconn.PgError
	)
	switch {
	case errors.As(err, &ur):
		return "unreachable"
	case errors.Is(err, storage.ErrAccessDenied):
		return "access denied"
	case errors.As(err, &conflict):
		return "conflict"
	case errors.As(err, &pgErr):
		return "server " + pgErr.Code
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return "timeout"
	}
	return "other"
}
