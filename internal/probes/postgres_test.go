package probes

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/test/stack"
)

// TestPostgresProbe runs the database probe against real PostgreSQL 15 servers: one with TLS
// on, using a certificate for the service name db.tenant-a.svc and the address 127.0.0.1 signed
// by a CA made here, and one that only speaks plaintext.
func TestPostgresProbe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ca := newTestCA(t, "Database CA")
	otherCA := newTestCA(t, "Somebody Else's CA")
	cert := ca.issue(t, leaf{dns: []string{"db.tenant-a.svc"}, ips: []net.IP{net.IPv4(127, 0, 0, 1)}})

	tlsServer := stack.StartPostgres(t, "15")
	plainServer := stack.StartPostgres(t, "15")
	tlsServer.EnableTLS(t, cert.certPEM, cert.keyPEM)
	for _, pg := range []*stack.Postgres{tlsServer, plainServer} {
		pg.Exec(t, "postgres", "CREATE ROLE tenant LOGIN PASSWORD 'tenant-secret'")
		pg.Exec(t, "postgres", "CREATE DATABASE app OWNER tenant")
	}

	silent := silentServer(t)
	target := func(pg *stack.Postgres, host string) DatabaseTarget {
		return DatabaseTarget{Host: host, Port: uint16(pg.Port), Database: "app", User: "tenant", Password: "tenant-secret", RootCAs: ca.pool}
	}
	port := func(pg *stack.Postgres) string { return strconv.Itoa(pg.Port) }

	tests := []struct {
		name         string
		target       DatabaseTarget
		edit         func(*DatabaseTarget)
		env          map[string]string
		timeout      time.Duration
		wantSuccess  bool
		wantReason   string
		wantMessage  string
		wantNotAfter bool
	}{
		{
			name:         "verify-full by an address the certificate names",
			target:       target(tlsServer, "127.0.0.1"),
			wantSuccess:  true,
			wantNotAfter: true,
		},
		{
			// Each of these would send the probe elsewhere or make it fail if it were read.
			name:   "the manager's PG* environment does not change the probe",
			target: target(tlsServer, "127.0.0.1"),
			env: map[string]string{
				"PGHOST": "nowhere.invalid", "PGPORT": "1", "PGDATABASE": "gone", "PGUSER": "nobody",
				"PGPASSWORD": "wrong", "PGSSLMODE": "disable", "PGSSLNEGOTIATION": "direct",
				"PGTARGETSESSIONATTRS": "standby", "PGCONNECT_TIMEOUT": "1",
			},
			wantSuccess:  true,
			wantNotAfter: true,
		},
		{
			name:         "verify-ca by a name the certificate lacks",
			target:       target(tlsServer, "localhost"),
			edit:         func(d *DatabaseTarget) { d.SSLMode = SSLModeVerifyCA },
			wantSuccess:  true,
			wantNotAfter: true,
		},
		{
			name:         "verify-full by a name the certificate lacks",
			target:       target(tlsServer, "localhost"),
			wantReason:   ReasonHostnameMismatch,
			wantMessage:  "the certificate of localhost:" + port(tlsServer) + " is for db.tenant-a.svc, 127.0.0.1",
			wantNotAfter: true,
		},
		{
			name:         "verify-full with a CA that did not sign the certificate",
			target:       target(tlsServer, "127.0.0.1"),
			edit:         func(d *DatabaseTarget) { d.RootCAs = otherCA.pool },
			wantReason:   ReasonCertificateUntrusted,
			wantMessage:  `is signed by "CN=Database CA", which is not trusted`,
			wantNotAfter: true,
		},
		{
			name:         "verify-ca with a CA that did not sign the certificate",
			target:       target(tlsServer, "127.0.0.1"),
			edit:         func(d *DatabaseTarget) { d.RootCAs = otherCA.pool; d.SSLMode = SSLModeVerifyCA },
			wantReason:   ReasonCertificateUntrusted,
			wantNotAfter: true,
		},
		{
			name:        "wrong password",
			target:      target(tlsServer, "127.0.0.1"),
			edit:        func(d *DatabaseTarget) { d.Password = "guess" },
			wantReason:  ReasonAuthenticationFailed,
			wantMessage: `refused the credentials: password authentication failed for user "tenant" (SQLSTATE 28P01)`,
		},
		{
			name:        "a database that does not exist",
			target:      target(tlsServer, "127.0.0.1"),
			edit:        func(d *DatabaseTarget) { d.Database = "gone" },
			wantReason:  ReasonDatabaseError,
			wantMessage: `database "gone" does not exist (SQLSTATE 3D000)`,
		},
		{
			name:        "a server that only speaks plaintext is refused",
			target:      target(plainServer, "127.0.0.1"),
			wantReason:  ReasonTLSNotOffered,
			wantMessage: "127.0.0.1:" + port(plainServer) + " does not offer TLS",
		},
		{
			name:        "a plaintext server is refused with verify-ca too",
			target:      target(plainServer, "127.0.0.1"),
			edit:        func(d *DatabaseTarget) { d.SSLMode = SSLModeVerifyCA },
			wantReason:  ReasonTLSNotOffered,
			wantMessage: "does not offer TLS",
		},
		{
			name:        "nothing listening",
			target:      DatabaseTarget{Host: "127.0.0.1", Port: closedPortNumber(t), Database: "app", User: "tenant", RootCAs: ca.pool},
			wantReason:  ReasonConnectionRefused,
			wantMessage: "refused the connection",
		},
		{
			name:        "a server that never answers",
			target:      DatabaseTarget{Host: "127.0.0.1", Port: silent, Database: "app", User: "tenant", RootCAs: ca.pool},
			timeout:     300 * time.Millisecond,
			wantReason:  ReasonTimeout,
			wantMessage: "no answer from 127.0.0.1:" + strconv.Itoa(int(silent)) + " within 300ms",
		},
		{
			name:        "a target without a user",
			target:      DatabaseTarget{Host: "127.0.0.1", Database: "app"},
			wantReason:  ReasonInvalidTarget,
			wantMessage: "host, user and database are required",
		},
		{
			name:        "an unknown sslmode",
			target:      target(tlsServer, "127.0.0.1"),
			edit:        func(d *DatabaseTarget) { d.SSLMode = "prefer" },
			wantReason:  ReasonInvalidTarget,
			wantMessage: `sslmode "prefer" is neither verify-full nor verify-ca`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target
			if tt.edit != nil {
				tt.edit(&target)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			p := NewPostgresProber(PostgresOptions{Timeout: tt.timeout})
			before := time.Now()
			r := p.Probe(context.Background(), target)
			t.Logf("%s %s: %s", r.Reason, r.Latency, r.Message)
			checkResult(t, r, before, tt.wantSuccess, tt.wantReason, tt.wantMessage)
			if tt.wantNotAfter && !r.CertificateNotAfter.Equal(cert.notAfter) {
				t.Errorf("CertificateNotAfter = %v, want the served certificate's %v", r.CertificateNotAfter, cert.notAfter)
			}
			if !tt.wantNotAfter && !r.CertificateNotAfter.IsZero() {
				t.Errorf("CertificateNotAfter = %v without a certificate check", r.CertificateNotAfter)
			}
			if r.StatusCode != 0 {
				t.Errorf("StatusCode = %d for a database", r.StatusCode)
			}
		})
	}
}

func closedPortNumber(t *testing.T) uint16 {
	_, p, _ := net.SplitHostPort(closedPort(t))
	n, _ := strconv.Atoi(p)
	return uint16(n)
}

// silentServer accepts connections and never says a word, like a server stuck at start.
func silentServer(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return uint16(l.Addr().(*net.TCPAddr).Port)
}
