package probes

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tenantURL is what the tests probe; dialTo sends its connections to the local test server, so
// the name in the URL is the one the certificate must carry.
const tenantURL = "https://app.tenant.test/healthz"

func tlsServer(t *testing.T, cert tls.Certificate, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	// Refused handshakes are what several tests are about; their log lines are noise.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func dialTo(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }

// closedPort is a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestHTTPProbe(t *testing.T) {
	ca := newTestCA(t, "Tenant Test CA")
	otherCA := newTestCA(t, "Somebody Else's CA")
	good := ca.issue(t, leaf{dns: []string{"app.tenant.test"}})
	expired := ca.issue(t, leaf{dns: []string{"app.tenant.test"}, notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})
	early := ca.issue(t, leaf{dns: []string{"app.tenant.test"}, notBefore: time.Now().Add(time.Hour), notAfter: time.Now().Add(48 * time.Hour)})
	misnamed := ca.issue(t, leaf{dns: []string{"other.tenant.test", "www.other.tenant.test"}})
	untrusted := otherCA.issue(t, leaf{dns: []string{"app.tenant.test"}})

	tests := []struct {
		name string
		// serve starts what the probe reaches and returns its address; empty means no redirect of
		// the dial (the URL's host is dialled).
		serve        func(t *testing.T) string
		url          string
		timeout      time.Duration
		wantSuccess  bool
		wantReason   string
		wantStatus   int
		wantNotAfter time.Time
		wantMessage  string
	}{
		{
			name: "healthy",
			serve: func(t *testing.T) string {
				return tlsServer(t, good.tls, http.HandlerFunc(ok)).Listener.Addr().String()
			},
			wantSuccess:  true,
			wantStatus:   200,
			wantNotAfter: good.notAfter,
		},
		{
			name: "a redirect is up, and not followed",
			serve: func(t *testing.T) string {
				return tlsServer(t, good.tls, http.RedirectHandler("https://login.elsewhere.test/", http.StatusFound)).Listener.Addr().String()
			},
			wantSuccess:  true,
			wantStatus:   302,
			wantNotAfter: good.notAfter,
		},
		{
			name: "server error",
			serve: func(t *testing.T) string {
				return tlsServer(t, good.tls, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					w.WriteHeader(http.StatusServiceUnavailable)
				})).Listener.Addr().String()
			},
			wantReason:   ReasonHTTPStatus,
			wantStatus:   503,
			wantNotAfter: good.notAfter,
			wantMessage:  "GET https://app.tenant.test/healthz answered 503 Service Unavailable",
		},
		{
			name: "not found",
			serve: func(t *testing.T) string {
				return tlsServer(t, good.tls, http.NotFoundHandler()).Listener.Addr().String()
			},
			wantReason:  ReasonHTTPStatus,
			wantStatus:  404,
			wantMessage: "answered 404 Not Found",
		},
		{
			name: "slower than the timeout",
			serve: func(t *testing.T) string {
				return tlsServer(t, good.tls, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					select {
					case <-time.After(10 * time.Second):
					case <-r.Context().Done():
					}
				})).Listener.Addr().String()
			},
			timeout:      300 * time.Millisecond,
			wantReason:   ReasonTimeout,
			wantNotAfter: time.Time{},
			wantMessage:  "no answer from app.tenant.test within 300ms",
		},
		{
			name: "expired certificate",
			serve: func(t *testing.T) string {
				return tlsServer(t, expired.tls, http.HandlerFunc(ok)).Listener.Addr().String()
			},
			wantReason:   ReasonCertificateExpired,
			wantNotAfter: expired.notAfter,
			wantMessage:  "the certificate of app.tenant.test expired at " + expired.notAfter.UTC().Format(time.RFC3339),
		},
		{
			name: "certificate not yet valid",
			serve: func(t *testing.T) string {
				return tlsServer(t, early.tls, http.HandlerFunc(ok)).Listener.Addr().String()
			},
			wantReason:   ReasonCertificateNotYetValid,
			wantNotAfter: early.notAfter,
			wantMessage:  "the certificate of app.tenant.test is valid only from",
		},
		{
			name: "wrong hostname",
			serve: func(t *testing.T) string {
				return tlsServer(t, misnamed.tls, http.HandlerFunc(ok)).Listener.Addr().String()
			},
			wantReason:   ReasonHostnameMismatch,
			wantNotAfter: misnamed.notAfter,
			wantMessage:  "the certificate of app.tenant.test is for other.tenant.test, www.other.tenant.test",
		},
		{
			name: "untrusted authority",
			serve: func(t *testing.T) string {
				return tlsServer(t, untrusted.tls, http.HandlerFunc(ok)).Listener.Addr().String()
			},
			wantReason:   ReasonCertificateUntrusted,
			wantNotAfter: untrusted.notAfter,
			wantMessage:  `the certificate of app.tenant.test is signed by "CN=Somebody Else's CA", which is not trusted`,
		},
		{
			name: "plain HTTP where HTTPS was expected",
			serve: func(t *testing.T) string {
				srv := httptest.NewServer(http.HandlerFunc(ok))
				t.Cleanup(srv.Close)
				return srv.Listener.Addr().String()
			},
			wantReason:  ReasonTLSHandshakeFailed,
			wantMessage: "app.tenant.test does not speak TLS",
		},
		{
			name:        "nothing listening",
			serve:       closedPort,
			wantReason:  ReasonConnectionRefused,
			wantMessage: "app.tenant.test refused the connection",
		},
		{
			name: "connection closed without an answer",
			serve: func(t *testing.T) string {
				return tlsServer(t, good.tls, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					conn, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						conn.Close()
					}
				})).Listener.Addr().String()
			},
			wantReason:  ReasonConnectionFailed,
			wantMessage: "app.tenant.test closed the connection",
		},
		{
			name:        "a name that does not resolve",
			url:         "https://no-such-tenant.invalid/",
			wantReason:  ReasonNameNotResolved,
			wantMessage: "no-such-tenant.invalid does not resolve",
		},
		{
			name:        "not an https URL",
			url:         "http://app.tenant.test/",
			wantReason:  ReasonInvalidTarget,
			wantMessage: `"http://app.tenant.test/" is not an https URL`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := HTTPOptions{RootCAs: ca.pool, Timeout: tt.timeout}
			if tt.serve != nil {
				opts.DialContext = dialTo(tt.serve(t))
			}
			url := tt.url
			if url == "" {
				url = tenantURL
			}
			p := NewHTTPProber(opts)
			before := time.Now()
			r := p.Probe(context.Background(), url)
			t.Logf("%s %s: %s", r.Reason, r.Latency, r.Message)
			checkResult(t, r, before, tt.wantSuccess, tt.wantReason, tt.wantMessage)
			if r.StatusCode != tt.wantStatus {
				t.Errorf("StatusCode = %d, want %d", r.StatusCode, tt.wantStatus)
			}
			if !tt.wantNotAfter.IsZero() && !r.CertificateNotAfter.Equal(tt.wantNotAfter) {
				t.Errorf("CertificateNotAfter = %v, want %v", r.CertificateNotAfter, tt.wantNotAfter)
			}
			if tt.wantSuccess || tt.wantReason == ReasonInvalidTarget {
				return
			}
			// The same failure again gives the same message: nothing in it changes per probe
			// (no local port, no latency), so a condition built from it does not churn.
			if again := p.Probe(context.Background(), url); again.Message != r.Message || again.Reason != r.Reason {
				t.Errorf("a second probe says %s: %q, the first %s: %q", again.Reason, again.Message, r.Reason, r.Message)
			}
		})
	}
}

func checkResult(t *testing.T, r Result, before time.Time, wantSuccess bool, wantReason, wantMessage string) {
	t.Helper()
	if r.Success != wantSuccess || r.Reason != wantReason {
		t.Fatalf("Success = %v, Reason = %q (%s), want %v, %q", r.Success, r.Reason, r.Message, wantSuccess, wantReason)
	}
	if !strings.Contains(r.Message, wantMessage) {
		t.Errorf("Message = %q, want it to contain %q", r.Message, wantMessage)
	}
	if strings.ContainsAny(r.Message, "\n\r") {
		t.Errorf("Message spans lines: %q", r.Message)
	}
	if r.Time.Before(before) || r.Time.After(time.Now()) {
		t.Errorf("Time = %v, want when the probe started", r.Time)
	}
	if r.Reason != ReasonInvalidTarget && r.Latency <= 0 {
		t.Errorf("Latency = %v, want it measured", r.Latency)
	}
}

// TestHTTPProbeFlapping probes a server that fails every other request: each probe reports what
// that request got, and the failures read the same.
func TestHTTPProbeFlapping(t *testing.T) {
	ca := newTestCA(t, "Tenant Test CA")
	var n atomic.Int64
	srv := tlsServer(t, ca.issue(t, leaf{dns: []string{"app.tenant.test"}}).tls, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	p := NewHTTPProber(HTTPOptions{RootCAs: ca.pool, DialContext: dialTo(srv.Listener.Addr().String())})
	var messages []string
	for i := 1; i <= 6; i++ {
		r := p.Probe(context.Background(), tenantURL)
		if wantUp := i%2 == 1; r.Success != wantUp {
			t.Fatalf("probe %d: Success = %v (%s %s), want %v", i, r.Success, r.Reason, r.Message, wantUp)
		}
		if !r.Success {
			messages = append(messages, r.Message)
		}
	}
	for _, m := range messages[1:] {
		if m != messages[0] {
			t.Fatalf("failure messages differ: %q and %q", messages[0], m)
		}
	}
}

// TestHTTPProbeUsesTheClock stamps results with the injected clock, so that the scheduler's fake
// time and the uptime buckets agree.
func TestHTTPProbeUsesTheClock(t *testing.T) {
	ca := newTestCA(t, "Tenant Test CA")
	srv := tlsServer(t, ca.issue(t, leaf{dns: []string{"app.tenant.test"}}).tls, http.HandlerFunc(ok))
	at := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
	p := NewHTTPProber(HTTPOptions{RootCAs: ca.pool, DialContext: dialTo(srv.Listener.Addr().String()), Clock: fixedClock{at}})
	if r := p.Probe(context.Background(), tenantURL); !r.Success || !r.Time.Equal(at) {
		t.Fatalf("Time = %v (success %v), want the clock's %v", r.Time, r.Success, at)
	}
}

// fixedClock is a clock.PassiveClock that never moves.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                  { return c.t }
func (c fixedClock) Since(t time.Time) time.Duration { return c.t.Sub(t) }

// A probe offers X25519 (and P-256) for its key exchange, not the hybrid with ML-KEM: the hybrid's
// key generation was a third of a probe's CPU, and a probe has no secret to keep for years. The
// server here sees what the client hello offers; the probe must still succeed.
func TestHTTPProbeOffersNoPostQuantumKeyShare(t *testing.T) {
	ca := newTestCA(t, "Tenant Test CA")
	var mu sync.Mutex
	var offered []tls.CurveID
	srv := httptest.NewUnstartedServer(http.HandlerFunc(ok))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, leaf{dns: []string{"app.tenant.test"}}).tls},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			offered = append([]tls.CurveID(nil), hello.SupportedCurves...)
			mu.Unlock()
			return nil, nil
		},
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p := NewHTTPProber(HTTPOptions{RootCAs: ca.pool, DialContext: dialTo(srv.Listener.Addr().String())})
	if r := p.Probe(context.Background(), tenantURL); !r.Success {
		t.Fatalf("probe failed: %s %s", r.Reason, r.Message)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(offered, []tls.CurveID{tls.X25519, tls.CurveP256}) {
		t.Errorf("the probe offered %v, want X25519 and P-256 only", offered)
	}
}
