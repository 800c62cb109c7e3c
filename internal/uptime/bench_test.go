package uptime

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/tenantops/tenant-operator/internal/probes"
	"github.com/tenantops/tenant-operator/internal/probes/probetest"
)

// benchServerEnv makes the test binary serve the benchmark's tenants instead of running tests, in a
// process of its own, so that the CPU measured is the Monitor's alone.
const benchServerEnv = "UPTIME_BENCH_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) == "1" {
		serveBenchTenants()
		return
	}
	os.Exit(m.Run())
}

// serveBenchTenants serves *.bench.test: up-* answer 200, down-* 503, and flap-* fail two
// requests in four, so they go down and come back every minute at a 15 s interval.
func serveBenchTenants() {
	var mu sync.Mutex
	seen := map[string]int{}
	probetest.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Host]++
		n := seen[r.Host]
		mu.Unlock()
		if strings.HasPrefix(r.Host, "down-") || (strings.HasPrefix(r.Host, "flap-") && n%4 < 2) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}), "*.bench.test")
}

// BenchmarkMonitor1000Tenants runs the Monitor as the manager does, with its defaults (15 s
// interval, two failures to be down, figures refreshed every 10 minutes), on 1000 tenants probed
// over HTTPS against a server in another process, in real time: 500 answer, 480 stay down and 20
// flap (down and back every minute). Each iteration is one minute after a minute of warm-up. It
// reports the Monitor's CPU (this process, user + system) as a share of one core, the heap it
// holds, and how often it woke the reconciler per tenant-hour in each group: every wake is a
// status write. A steady-up tenant must not wake it at all, a steady-down one at most 6 times an
// hour (its 10-minute refresh), a flapping one once per transition.
func BenchmarkMonitor1000Tenants(b *testing.B) {
	const up, down, flap = 500, 480, 20
	srv := probetest.Start(b, benchServerEnv)
	addr, pool := srv.Addr, srv.RootCAs
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	var mu sync.Mutex
	wakes := map[string]int{}
	mon := NewMonitor(MonitorOptions{
		HTTP:   probes.NewHTTPProber(probes.HTTPOptions{RootCAs: pool, DialContext: dial}),
		Clock:  clock.RealClock{},
		Notify: func(tenant string) { mu.Lock(); wakes[strings.SplitN(tenant, "-", 2)[0]]++; mu.Unlock() },
	})
	objective, _ := ParseObjective("99.5")
	for group, n := range map[string]int{"up": up, "down": down, "flap": flap} {
		for i := range n {
			name := fmt.Sprintf("%s-%04d", group, i)
			if err := mon.Track(name, Targets{URL: "https://" + name + ".bench.test/", Objective: objective}); err != nil {
				b.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = mon.Start(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	time.Sleep(time.Minute) // first probes, the down ones going down, the first figures
	mu.Lock()
	clear(wakes)
	mu.Unlock()
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for range b.N {
		time.Sleep(time.Minute)
	}
	b.StopTimer()
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
	hours := float64(b.N) / 60
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(cpu.Seconds()/(float64(b.N)*60)*100, "%core")
	b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(wakes["up"])/up/hours, "wakes/steady-up-tenant-hour")
	b.ReportMetric(float64(wakes["down"])/down/hours, "wakes/steady-down-tenant-hour")
	b.ReportMetric(float64(wakes["flap"])/flap/hours, "wakes/flapping-tenant-hour")
}
