package probes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"k8s.io/utils/clock"
)

// SSLMode is how a database probe verifies the server's certificate; both refuse plaintext.
type SSLMode string

const (
	// SSLModeVerifyFull checks the certificate's chain and that it names the host (libpq's
	// verify-full).
	SSLModeVerifyFull SSLMode = "verify-full"
	// SSLModeVerifyCA checks the certificate's chain only (libpq's verify-ca), for servers
	// reached by an address their certificate does not name.
	SSLModeVerifyCA SSLMode = "verify-ca"
)

// DatabaseTarget is a tenant's database as the probe reaches it, with the tenant's credentials.
type DatabaseTarget struct {
	Host string
	// Port is 5432 when 0.
	Port     uint16
	Database string
	User     string
	Password string
	// SSLMode is SSLModeVerifyFull when empty.
	SSLMode SSLMode
	// RootCAs are the authorities trusted to sign the server's certificate, usually the
	// database issuer's CA; nil means the system's.
	RootCAs *x509.CertPool
}

// address is host:port as messages name it.
func (t DatabaseTarget) address() string {
	port := t.Port
	if port == 0 {
		port = 5432
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(int(port)))
}

// PostgresOptions configure a PostgresProber.
type PostgresOptions struct {
	// Timeout bounds one probe from dialling to the query's answer; DefaultTimeout when 0.
	Timeout time.Duration
	// Clock stamps results; the real clock when nil.
	Clock clock.PassiveClock
}

// PostgresProber connects to PostgreSQL over TLS and runs SELECT 1. It is safe for concurrent
// use; one serves all tenants.
type PostgresProber struct {
	timeout time.Duration
	clock   clock.PassiveClock
}

// NewPostgresProber returns a prober with the options' defaults filled in.
func NewPostgresProber(o PostgresOptions) *PostgresProber {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return &PostgresProber{timeout: o.Timeout, clock: o.Clock}
}

// Probe opens a new connection (TLS required, certificate verified), runs SELECT 1 with the
// target's credentials and closes it. The latency covers all of it: what a new client waits
// before its first answer.
func (p *PostgresProber) Probe(ctx context.Context, t DatabaseTarget) Result {
	r := Result{Time: p.clock.Now()}
	server := t.address()
	cfg, err := p.config(t)
	if err != nil {
		r.Reason, r.Message = ReasonInvalidTarget, oneLine(fmt.Sprintf("database %s: %v", server, err))
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		r.Latency = p.clock.Since(r.Time)
		r.failure(err, server, p.timeout)
		return r
	}
	defer conn.Close(ctx) // runs before cancel: a clean goodbye, bounded by the probe's timeout
	if tlsConn, ok := conn.Conn().(*tls.Conn); ok {
		if certs := tlsConn.ConnectionState().PeerCertificates; len(certs) > 0 {
			r.CertificateNotAfter = certs[0].NotAfter
		}
	}
	_, err = conn.Exec(ctx, "SELECT 1").ReadAll()
	r.Latency = p.clock.Since(r.Time)
	if err != nil {
		r.failure(err, server, p.timeout)
		return r
	}
	r.Success = true
	return r
}

// config builds the connection settings from the target: the URL we parse names every setting
// that decides where and how we connect, and the password and TLS are set after parsing, so the
// manager's PG* environment and ~/.pgpass cannot redirect or weaken the probe.
func (p *PostgresProber) config(t DatabaseTarget) (*pgconn.Config, error) {
	if t.Host == "" || t.User == "" || t.Database == "" {
		return nil, errors.New("host, user and database are required")
	}
	mode := t.SSLMode
	if mode == "" {
		mode = SSLModeVerifyFull
	}
	if mode != SSLModeVerifyFull && mode != SSLModeVerifyCA {
		return nil, fmt.Errorf("sslmode %q is neither verify-full nor verify-ca", mode)
	}
	u := url.URL{
		Scheme: "postgres",
		User:   url.User(t.User),
		Host:   t.address(),
		Path:   "/" + t.Database,
		// Parsed without TLS; the TLS settings are ours, below, because pgconn reads a CA only
		// from a file.
		RawQuery: url.Values{
			"sslmode":              {"disable"},
			"sslnegotiation":       {"postgres"}, // not direct TLS, which only PostgreSQL 17+ accepts
			"target_session_attrs": {"any"},
			"application_name":     {"tenant-operator-uptime"},
		}.Encode(),
	}
	cfg, err := pgconn.ParseConfig(u.String())
	if err != nil {
		return nil, err
	}
	cfg.Password = t.Password
	cfg.ConnectTimeout = p.timeout
	cfg.Fallbacks = nil
	cfg.TLSConfig = &tls.Config{RootCAs: t.RootCAs, MinVersion: tls.VersionTLS12}
	if mode == SSLModeVerifyFull {
		cfg.TLSConfig.ServerName = t.Host
	} else {
		verifyChainOnly(cfg.TLSConfig)
	}
	return cfg, nil
}

// verifyChainOnly makes c check the server's chain against its RootCAs but not the name, as
// libpq's verify-ca does, the way pgconn and crypto/tls's VerifyConnection example do it.
func verifyChainOnly(c *tls.Config) {
	c.InsecureSkipVerify = true // only the name check is skipped; the chain is checked below
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the server presented no certificate")
		}
		opts := x509.VerifyOptions{Roots: c.RootCAs, Intermediates: x509.NewCertPool()}
		for _, cert := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(cert)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
}
