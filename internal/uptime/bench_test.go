package uptime

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/tenantops/tenant-operator/internal/probes"
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

// serveBenchTenants serves *.bench.test over TLS: up-* answer 200, down-* 503, and flap-* fail
// two requests in four, so they go down and come back every minute at a 15 s interval.
func serveBenchTenants() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"}, DNSNames: []string{"*.bench.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[r.Host]++
			n := seen[r.Host]
			mu.Unlock()
			if strings.HasPrefix(r.Host, "down-") || (strings.HasPrefix(r.Host, "flap-") && n%4 < 2) {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ok"))
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s\n%s", l.Addr(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	_ = srv.ServeTLS(l, "", "")
}

func startBenchServer(b *testing.B) (string, *x509.CertPool) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	r := bufio.NewReader(stdout)
	addr, err := r.ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	var rest []byte
	for !strings.Contains(string(rest), "END CERTIFICATE") {
		more, err := r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		rest = append(rest, more...)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(rest) {
		b.Fatalf("bench server sent no CA")
	}
	return strings.TrimSpace(addr), pool
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
	addr, pool := startBenchServer(b)
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
