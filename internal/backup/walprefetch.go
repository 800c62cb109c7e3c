package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tenantops/tenant-operator/internal/catalog"
)

// WAL prefetch. PostgreSQL asks restore_command for one segment at a time and replays nothing
// while it waits, so every second that wal-restore spends on a segment (reading its signed
// description, fetching, checking, decrypting, decompressing) is added to the recovery. The
// restore that runs the server (runRecovery) therefore fetches the segments recovery is about to
// ask for ahead of it, in the background, into a spool directory, as pgBackRest's asynchronous
// archive-get does; restore_command, a new process for each segment, moves a segment found there
// into place (mv, then wal-restore, see restoreCommand) and fetches anything else itself, as
// before.
//
// The spool is a directory, so that nothing has to outlive a process but files:
//   - <segment name>: a segment fetched and checked exactly as wal-restore checks it (fetchWAL),
//     written under a temporary name beside it and renamed only then: a file by that name is
//     whole and checked, and nothing else in the directory is ever served. A prefetch that
//     fails, or is killed halfway, leaves no such file, and wal-restore fetches the segment
//     itself, with its own checks and its own error.
//   - .requested: the name of the last segment recovery asked for that was not spooled, which
//     wal-restore writes (whole, by rename) before it looks: with the segments taken from the
//     spool, it tells the prefetcher where recovery is, which segments to fetch next and which
//     it has passed.
//
// The prefetcher keeps at most ahead segments in the spool and in flight together, the ones
// following the last one asked for, so the spool takes at most ahead segments of disk. Segments
// recovery does not ask for (those after a time target, or after a segment missing from the
// archive, where recovery ends) cost a fetch and are removed with the spool at the end.

// walSpoolDir is where a restore prefetches WAL, relative to the data directory: inside pg_wal,
// so that a spooled segment moves to pg_wal/RECOVERYXLOG (restore_command's %p) by a rename on
// the same file system. PostgreSQL reads only the entries of pg_wal named as WAL files are.
const walSpoolDir = "pg_wal/tenantops-prefetch"

// walSpoolRequested is the spool's file naming the last segment recovery asked for.
const walSpoolRequested = ".requested"

// DefaultWALPrefetchBytes bounds the spool when PointInTimeOptions does not say: as many segments
// as fit (8 of the default 16 MiB), and at least one. pgBackRest's archive-get queue defaults to
// the same.
const DefaultWALPrefetchBytes = 128 << 20

// walPrefetchWorkers is how many segments are fetched at once: enough to hide a round trip to
// the storage, few enough to leave the replaying server its core.
const walPrefetchWorkers = 2

// walPrefetcher fetches plan's segments into dir ahead of recovery.
type walPrefetcher struct {
	src walSource
	// plan is the segments recovery will ask for, in order (catalog.RecoverySegments).
	plan []catalog.WALName
	dir  string
	// ahead is how many segments the spool holds at most, those in flight included; workers how
	// many are fetched at once.
	ahead, workers int
	// prepare runs on each checked file before it is renamed into the spool (see fetchWAL).
	prepare func(*os.File) error
	// poll is how often the spool is looked at for what recovery asked for and took.
	poll time.Duration
	log  io.Writer
}

// prefetchStats counts what a prefetcher did.
type prefetchStats struct {
	// Fetched segments were checked and spooled; Taken of them wal-restore moved into place;
	// Dropped ones recovery had passed (it fetched them itself) were removed; Failed ones could
	// not be fetched or did not check, and were left to wal-restore.
	Fetched, Taken, Dropped, Failed int
}

// run prefetches until ctx ends, or until every segment of the plan is fetched and taken or
// dropped. It returns once no fetch is running. What is left in the spool is the caller's to
// remove.
func (p *walPrefetcher) run(ctx context.Context) prefetchStats {
	var stats prefetchStats
	index := make(map[string]int, len(p.plan))
	for i, n := range p.plan {
		index[n.Name] = i
	}
	type result struct {
		i   int
		err error
	}
	results := make(chan result)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // runs before wg.Wait: in-flight fetches stop, and are waited for
	tick := time.NewTicker(p.poll)
	defer tick.Stop()

	pos, next := -1, 0 // pos: index of the last segment asked for; next: the next to fetch
	inflight := map[int]bool{}
	spooled := map[int]bool{}
	for {
		if i, ok := index[p.requested()]; ok && i > pos {
			pos = i
		}
		for i := range spooled {
			switch _, err := os.Lstat(filepath.Join(p.dir, p.plan[i].Name)); {
			case errors.Is(err, fs.ErrNotExist):
				// Taken: recovery has asked for it (restore_command's mv takes a spooled
				// segment without a word to .requested).
				delete(spooled, i)
				stats.Taken++
				pos = max(pos, i)
			case i < pos:
				// Recovery is past it: it asked for it before it was here, and fetched it itself.
				_ = os.Remove(filepath.Join(p.dir, p.plan[i].Name))
				delete(spooled, i)
				stats.Dropped++
			}
		}
		next = max(next, pos+1)
		for len(inflight) < p.workers && len(inflight)+len(spooled) < p.ahead && next < len(p.plan) && next <= pos+p.ahead {
			i := next
			next++
			inflight[i] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := fetchWAL(ctx, p.src, p.plan[i], filepath.Join(p.dir, p.plan[i].Name), p.prepare)
				select {
				case results <- result{i, err}:
				case <-ctx.Done():
				}
			}()
		}
		if next >= len(p.plan) && len(inflight) == 0 && len(spooled) == 0 {
			return stats
		}
		select {
		case <-ctx.Done():
			return stats
		case r := <-results:
			delete(inflight, r.i)
			name := p.plan[r.i].Name
			switch {
			case r.err == nil:
				spooled[r.i] = true
				stats.Fetched++
			case ctx.Err() != nil:
			case catalog.IsNotArchived(r.err):
				stats.Failed++
				logf(p.log, "restore: prefetch: %s is not archived (any more); recovery ends there unless it finds it itself", name)
			default:
				stats.Failed++
				logf(p.log, "restore: prefetch of %s failed, recovery fetches it itself: %v", name, r.err)
			}
		case <-tick.C:
		}
	}
}

// requested is the name in the spool's .requested, or "".
func (p *walPrefetcher) requested() string {
	data, err := os.ReadFile(filepath.Join(p.dir, walSpoolRequested))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// takeSpooled is wal-restore's side of the spool: it records that recovery asks for n, then moves
// n's spooled copy, checked when it was written, to dest. It returns false when there is none to
// take (not prefetched, or not yet): the caller fetches n itself.
func takeSpooled(spool string, n catalog.WALName, dest string) (bool, error) {
	if n.Kind == catalog.WALSegment {
		// Whole or not at all: written under a name of this process's, then renamed.
		tmp := filepath.Join(spool, walSpoolRequested+"."+strconv.Itoa(os.Getpid()))
		if err := os.WriteFile(tmp, []byte(n.Name+"\n"), 0o600); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil // no spool (any more): nothing prefetches
			}
			return false, fmt.Errorf("prefetch spool: %w", err)
		}
		if err := os.Rename(tmp, filepath.Join(spool, walSpoolRequested)); err != nil {
			_ = os.Remove(tmp)
			return false, fmt.Errorf("prefetch spool: %w", err)
		}
	}
	err := os.Rename(filepath.Join(spool, n.Name), dest)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("prefetch spool: %w", err)
	}
	return true, nil
}
