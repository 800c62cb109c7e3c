package probes

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"k8s.io/utils/clock"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/tenantops/tenant-operator/internal/probes/probetest"
)

// benchServerEnv makes the test binary serve the benchmark's tenants instead of running tests:
// the server runs in its own process so that the CPU the benchmark measures is the prober's
// alone, not the TLS server's.
const benchServerEnv = "PROBES_BENCH_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) == "1" {
		serveBenchTenants()
		return
	}
	os.Exit(m.Run())
}

// serveBenchTenants serves every *.bench.test name on one loopback port (probetest's
// certificate). Hosts named flap-* answer 503 to every other request.
func serveBenchTenants() {
	var mu sync.Mutex
	flaps := map[string]int{}
	probetest.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Host, "flap-") {
			mu.Lock()
			flaps[r.Host]++
			n := flaps[r.Host]
			mu.Unlock()
			if n%2 == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok"))
	}), "*.bench.test")
}

// BenchmarkProbe1000Tenants probes 1000 tenants at the default interval of 15 s: the Scheduler and
// the HTTPS probe (a new connection and TLS handshake each time) against a server in another
// process. 2 % of the tenants flap between up and down on every probe. What the uptime Monitor
// adds to each result is measured by internal/uptime's BenchmarkMonitor1000Tenants.
//
// One iteration is one minute, four intervals. The "simulated" run steps a fake clock through it a
// second at a time, as fast as the probes go; the "realtime" run (PROBES_BENCH_REALTIME=1) waits
// the real minute. Both report the CPU time of this process per probe (getrusage, user + system)
// and the share of one core that means at 1000 tenants every 15 s. A first, unmeasured interval
// makes every tenant's first probe.
func BenchmarkProbe1000Tenants(b *testing.B) {
	b.Run("simulated", func(b *testing.B) { benchProbes(b, false) })
	b.Run("realtime", func(b *testing.B) {
		if os.Getenv("PROBES_BENCH_REALTIME") != "1" {
			b.Skip("set PROBES_BENCH_REALTIME=1 to wait a real minute per iteration")
		}
		benchProbes(b, true)
	})
}

func benchProbes(b *testing.B, realtime bool) {
	const (
		tenants  = 1000
		flapping = 20
		interval = 15 * time.Second
	)
	srv := probetest.Start(b, benchServerEnv)
	addr, pool := srv.Addr, srv.RootCAs

	var clk clock.WithTicker = clock.RealClock{}
	fake := testingclock.NewFakeClock(time.Now())
	if !realtime {
		clk = fake
	}
	prober := NewHTTPProber(HTTPOptions{RootCAs: pool, DialContext: dialTo(addr), Clock: clk})

	var delivered, failures atomic.Int64
	var progress sync.Mutex
	cond := sync.NewCond(&progress)
	s := NewScheduler(SchedulerOptions{Clock: clk}, func(key string, r Result) {
		if !r.Success {
			failures.Add(1)
		}
		progress.Lock()
		delivered.Add(1)
		cond.Broadcast()
		progress.Unlock()
	})
	type target struct {
		key, url string
		offset   time.Duration
	}
	var targets []target
	for i := 0; i < tenants; i++ {
		key, host := fmt.Sprintf("tenant-%04d", i), fmt.Sprintf("tenant-%04d.bench.test", i)
		if i < flapping {
			host = fmt.Sprintf("flap-%04d.bench.test", i)
		}
		url := "https://" + host + "/"
		targets = append(targets, target{key: key, url: url, offset: offsetOf(key, interval)})
		if err := s.Set(Target{Key: key, Interval: interval, Probe: func(ctx context.Context) Result { return prober.Probe(ctx, url) }}); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Start(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// oneInterval lets 15 s pass: on the fake clock a second at a time, each step waiting for the
	// probes it made due (counted from the targets' offsets) to be delivered.
	oneInterval := func() {
		if realtime {
			time.Sleep(interval)
			return
		}
		for step := 0; step < int(interval/time.Second); step++ {
			for !fake.HasWaiters() {
				time.Sleep(100 * time.Microsecond)
			}
			before := fake.Now()
			fake.Step(time.Second)
			due := 0
			for _, t := range targets {
				if !nextRun(before, interval, t.offset).After(fake.Now()) {
					due++
				}
			}
			want := delivered.Load() + int64(due)
			progress.Lock()
			for delivered.Load() < want {
				cond.Wait()
			}
			progress.Unlock()
		}
	}

	oneInterval() // every tenant's first probe
	delivered.Store(0)
	failures.Store(0)
	var before syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &before); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range time.Minute / interval {
			oneInterval()
		}
	}
	b.StopTimer()
	var after syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &after); err != nil {
		b.Fatal(err)
	}
	cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
	probes := delivered.Load()
	if probes == 0 {
		b.Fatal("no probes delivered")
	}
	elapsed := time.Duration(b.N) * time.Minute
	perProbe := cpu / time.Duration(probes)
	// At 1000 tenants every 15 s the manager probes 1000/15 times a second.
	core := float64(perProbe) * float64(tenants) / float64(interval) * 100
	b.ReportMetric(float64(perProbe.Microseconds()), "cpu-µs/probe")
	b.ReportMetric(core, "%core@1000/15s")
	b.ReportMetric(float64(probes)/elapsed.Minutes(), "probes/min")
	b.ReportMetric(float64(failures.Load())/float64(probes)*100, "%failed")
}
