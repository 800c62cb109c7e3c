package backup

import (
	"cmp"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// BenchmarkSealCodecs seals real PostgreSQL data files as a base backup is sealed (codec, age,
// sha256) with each codec, and reports the CPU it took per MiB (cpu-MiB/s: MiB sealed per CPU
// second of the process, steadier than wall time on a shared machine) and how much smaller the
// result is. The files come from $TENANTOPS_BENCH_DATA, a data directory (say base/16384 of
// hack/bench-physical.sh's cluster), 256 MiB of them, largest first:
//
//	TENANTOPS_BENCH_DATA=/var/tmp/tenant-operator-bench/pg18-physical-*/data/base/16384 \
//	  GOMAXPROCS=1 go test ./internal/backup/ -run '^$' -bench SealCodecs -benchtime 3x
func BenchmarkSealCodecs(b *testing.B) {
	dir := os.Getenv("TENANTOPS_BENCH_DATA")
	if dir == "" {
		b.Skip("set TENANTOPS_BENCH_DATA to a directory of PostgreSQL data files")
	}
	data := readBenchData(b, dir, 256<<20)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	for _, codec := range []string{CompressionS2, CompressionZstd} {
		b.Run(codec, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var stored int64
			cpu0 := cpuTime()
			for b.Loop() {
				pl, err := newSealPipeline(nil, io.Discard, []age.Recipient{id.Recipient()}, codec, zstd.SpeedFastest)
				if err != nil {
					b.Fatal(err)
				}
				// In pieces of 1 MiB, as the base tar reaches the compressor.
				for off := 0; off < len(data); off += 1 << 20 {
					if _, err := pl.enc.Write(data[off:min(off+1<<20, len(data))]); err != nil {
						b.Fatal(err)
					}
				}
				if err := pl.finish(); err != nil {
					b.Fatal(err)
				}
				stored = pl.stored.n
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(len(data))*float64(b.N)/(1<<20)/cpu.Seconds(), "cpu-MiB/s")
			b.ReportMetric(float64(len(data))/float64(stored), "x-smaller")
		})
	}
}

func readBenchData(b *testing.B, dir string, limit int) []byte {
	b.Helper()
	var files []string
	sizes := map[string]int64{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files, sizes[path] = append(files, path), info.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// Largest first: the tables and indexes that make most of a cluster, at most half of the
	// sample from any one.
	slices.SortFunc(files, func(x, y string) int { return cmp.Compare(sizes[y], sizes[x]) })
	var data []byte
	for _, f := range files {
		if len(data) >= limit {
			break
		}
		fh, err := os.Open(f)
		if err != nil {
			b.Fatal(err)
		}
		chunk, err := io.ReadAll(io.LimitReader(fh, int64(min(limit-len(data), limit/2))))
		fh.Close()
		if err != nil {
			b.Fatal(err)
		}
		data = append(data, chunk...)
	}
	if len(data) == 0 {
		b.Fatalf("no data files in %s", dir)
	}
	return data
}

// cpuTime is the CPU time, user and system, the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
