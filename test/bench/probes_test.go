package bench

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// probeServerEnv makes the test binary serve the tenants' uptime probes instead of running the
// benchmark: the server runs in a process of its own, so that its CPU (a TLS handshake per probe)
// is not counted as the operator's.
const probeServerEnv = "BENCH_PROBE_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(probeServerEnv) == "1" {
		serveProbes()
		return
	}
	// The benchmark's clients log nothing worth reading.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// The tenants' classes: how their URL answers the operator's probes.
const (
	// steadyUp tenants answer 200 to every probe.
	steadyUp = "up"
	// steadyDown tenants fail their first probe, answer the second and fail every one after:
	// down since their fourth probe, with a little uptime in their history, so that their uptime
	// figures change at every refresh (a tenant down since its first probe shows 0 % throughout
	// and its status is never written again). Their objective is missed from their first figures
	// on, so the idle window sees their steady state, not the one change from ObjectiveMet to
	// ObjectiveMissed (a write and an event) that the first refresh after an outage brings.
	steadyDown = "down"
	// flapping tenants fail two probes, answer two, and so on: at the default interval of 15 s
	// they go down (after two failures) and come back once a minute.
	flapping = "flap"
)

var classes = []string{steadyUp, steadyDown, flapping}

// classOf is the class of the i-th bench tenant: one in fifty flaps, the others are up and down
// in turn, so that each class is spread over the order of creation.
func classOf(i int) string {
	switch {
	case i%50 == 49:
		return flapping
	case i%2 == 0:
		return steadyUp
	default:
		return steadyDown
	}
}

// failuresToDown is the operator's rule (internal/uptime.DefaultFailureThreshold): a tenant is
// down after this many failed probes in a row. The server judges its answers by it to count the
// transitions the operator should report.
const failuresToDown = 2

// probeStats are what the server answered one class: probes, failed probes, and transitions
// (down or up) as the operator judges them.
type probeStats struct {
	Probes, Failures, Transitions int
}

// pathState is the server's view of one tenant: its answers so far and its state as the
// operator judges it.
type pathState struct {
	probes, failures, transitions int
	failuresInRow                 int
	down                          bool
}

// serveProbes serves https://127.0.0.1:PORT/<class>/<tenant> with a certificate for the IP
// 127.0.0.1, so that no DNS is needed, and /stats with what it answered by class. It prints its
// address and CA and stops when its standard input closes.
func serveProbes() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench probes"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	var mu sync.Mutex
	paths := map[string]*pathState{}
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		out := map[string]*probeStats{}
		mu.Lock()
		for path, s := range paths {
			class, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
			if out[class] == nil {
				out[class] = &probeStats{}
			}
			out[class].Probes += s.probes
			out[class].Failures += s.failures
			out[class].Transitions += s.transitions
		}
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		class, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		mu.Lock()
		s := paths[r.URL.Path]
		if s == nil {
			s = &pathState{}
			paths[r.URL.Path] = s
		}
		fail := (class == steadyDown && s.probes != 1) || (class == flapping && s.probes%4 < 2)
		s.probes++
		if fail {
			s.failures++
			s.failuresInRow++
			if s.failuresInRow == failuresToDown && !s.down {
				s.down = true
				s.transitions++
			}
		} else {
			s.failuresInRow = 0
			if s.down {
				s.down = false
				s.transitions++
			}
		}
		mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	srv := &http.Server{
		Handler:   mux,
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

// probeServer is the probe server's process, as the benchmark sees it.
type probeServer struct {
	addr   string
	caFile string
	pid    int
	client *http.Client
}

// startProbeServer starts the test binary as the probe server and writes its CA into dir, for
// the operator's --probe-ca-file. It stops when the benchmark ends.
func startProbeServer(b *testing.B, dir string) *probeServer {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), probeServerEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	r := bufio.NewReader(stdout)
	addr, err := r.ReadString('\n')
	if err != nil {
		b.Fatalf("probe server: %v", err)
	}
	var ca []byte
	for !strings.Contains(string(ca), "END CERTIFICATE") {
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatalf("probe server's CA: %v", err)
		}
		ca = append(ca, line...)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		b.Fatal("the probe server sent no CA")
	}
	caFile := filepath.Join(dir, "probe-ca.pem")
	if err := os.WriteFile(caFile, ca, 0o600); err != nil {
		b.Fatal(err)
	}
	return &probeServer{addr: strings.TrimSpace(addr), caFile: caFile, pid: cmd.Process.Pid,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}}
}

// url is what a tenant of the class sets as spec.monitoring.url.
func (s *probeServer) url(class, tenant string) string {
	return "https://" + s.addr + "/" + class + "/" + tenant
}

// stats is what the server has answered so far, by class.
func (s *probeServer) stats(b *testing.B) map[string]probeStats {
	resp, err := s.client.Get("https://" + s.addr + "/stats")
	if err != nil {
		b.Fatalf("probe server stats: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]probeStats{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		b.Fatalf("probe server stats: %v", err)
	}
	return out
}
