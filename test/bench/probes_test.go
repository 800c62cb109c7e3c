package bench

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/tenantops/tenant-operator/internal/probes/probetest"
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

// serveProbes serves https://127.0.0.1:PORT/<class>/<tenant> (probetest's certificate names the
// IP, so no DNS is needed) and /stats with what it answered by class.
func serveProbes() {
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
	probetest.Serve(mux)
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
	srv := probetest.Start(b, probeServerEnv)
	caFile := filepath.Join(dir, "probe-ca.pem")
	if err := os.WriteFile(caFile, srv.CAPEM, 0o600); err != nil {
		b.Fatal(err)
	}
	return &probeServer{addr: srv.Addr, caFile: caFile, pid: srv.PID,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.RootCAs}}, Timeout: 10 * time.Second}}
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
