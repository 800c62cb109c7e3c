package probetest

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

const serveEnv = "PROBETEST_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) == "1" {
		Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("served " + r.Host))
		}), "*.bench.test")
		return
	}
	os.Exit(m.Run())
}

// The child answers over TLS on the address it reported, with a certificate the reported CA
// trusts for 127.0.0.1 and for the DNS names asked for.
func TestStartRunsTheServerInAChild(t *testing.T) {
	srv := Start(t, serveEnv)
	if srv.PID == os.Getpid() || srv.PID == 0 {
		t.Fatalf("server pid %d: not a child of %d", srv.PID, os.Getpid())
	}
	// By IP, and by one of the DNS names (served on the same loopback address).
	for _, serverName := range []string{"", "up-1.bench.test"} {
		client := &http.Client{Timeout: 10 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.RootCAs, ServerName: serverName}}}
		resp, err := client.Get("https://" + srv.Addr + "/")
		if err != nil {
			t.Fatalf("GET %s as %q: %v", srv.Addr, serverName, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "served ") {
			t.Fatalf("GET %s as %q: %d %q", srv.Addr, serverName, resp.StatusCode, body)
		}
	}
}
