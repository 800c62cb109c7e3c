// Package probes checks a tenant the way its users reach it: its URL over HTTPS with the
// certificate verified, and its database over TLS with a trivial query. A Scheduler runs the
// probes of many tenants, each on its own interval, spread so that they do not fire together.
//
// A probe never returns an error: every failure is a Result with a short CamelCase reason and a
// one-line message. The message names what failed and how (the host, the certificate's expiry,
// the HTTP status) but nothing that changes from one probe to the next, such as a latency or a
// local port, so that it can go into a condition without making every status write a change.
package probes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Result is what one probe observed.
type Result struct {
	// Time is when the probe started, by the prober's clock; a Scheduler sets it to the turn the
	// probe was scheduled for.
	Time time.Time
	// Success is true when the target answered as it should: an HTTP status of 2xx or 3xx, or
	// the database's answer to the query.
	Success bool
	// StatusCode is the HTTP status; 0 for the database and when no response came.
	StatusCode int
	// Latency is how long the probe took, up to the response's headers or the query's answer.
	Latency time.Duration
	// CertificateNotAfter is when the leaf certificate the server presented expires, also when
	// verifying it failed (expired, wrong host); zero when no certificate was seen.
	CertificateNotAfter time.Time
	// Reason says in one CamelCase word why the probe failed; empty on success.
	Reason string
	// Message says in one line what failed; empty on success.
	Message string
}

// Reasons a probe fails.
const (
	// ReasonInvalidTarget: the URL or database address cannot be probed as given.
	ReasonInvalidTarget = "InvalidTarget"
	// ReasonNameNotResolved: DNS has no address for the host.
	ReasonNameNotResolved = "NameNotResolved"
	// ReasonConnectionRefused: nothing listens on the port.
	ReasonConnectionRefused = "ConnectionRefused"
	// ReasonConnectionFailed: the connection broke for another reason (reset, unreachable).
	ReasonConnectionFailed = "ConnectionFailed"
	// ReasonTimeout: no answer within the probe's timeout.
	ReasonTimeout = "Timeout"
	// ReasonTLSHandshakeFailed: the server does not speak TLS there, or ended the handshake.
	ReasonTLSHandshakeFailed = "TLSHandshakeFailed"
	// ReasonTLSNotOffered: the database server refused to start TLS; it only accepts plaintext.
	ReasonTLSNotOffered = "TLSNotOffered"
	// ReasonCertificateExpired: the server's certificate is past its NotAfter.
	ReasonCertificateExpired = "CertificateExpired"
	// ReasonCertificateNotYetValid: the server's certificate is before its NotBefore.
	ReasonCertificateNotYetValid = "CertificateNotYetValid"
	// ReasonHostnameMismatch: the certificate does not name the host that was probed.
	ReasonHostnameMismatch = "HostnameMismatch"
	// ReasonCertificateUntrusted: the certificate is not signed by a trusted authority.
	ReasonCertificateUntrusted = "CertificateUntrusted"
	// ReasonCertificateInvalid: the certificate is refused for another reason.
	ReasonCertificateInvalid = "CertificateInvalid"
	// ReasonHTTPStatus: the server answered with a status other than 2xx or 3xx.
	ReasonHTTPStatus = "HTTPStatus"
	// ReasonAuthenticationFailed: the database refused the tenant's credentials.
	ReasonAuthenticationFailed = "AuthenticationFailed"
	// ReasonDatabaseError: the database answered with another error (not started, no such
	// database, the query failed).
	ReasonDatabaseError = "DatabaseError"
)

// failure fills in the reason and message for err, an error from reaching server (host:port or
// host, as the user wrote it) within timeout.
func (r *Result) failure(err error, server string, timeout time.Duration) {
	r.Success = false
	r.Reason, r.Message = classify(err, server, timeout, r.Time)
	r.Message = oneLine(r.Message)
	if r.CertificateNotAfter.IsZero() {
		if leaf := presentedLeaf(err); leaf != nil {
			r.CertificateNotAfter = leaf.NotAfter
		}
	}
}

// classify names what went wrong. The order matters: a certificate or database error is more
// specific than the network error that may wrap it, and a timeout is reported as one whatever
// layer noticed it.
func classify(err error, server string, timeout time.Duration, now time.Time) (reason, message string) {
	var (
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		unknown  x509.UnknownAuthorityError
		pgErr    *pgconn.PgError
		dnsErr   *net.DNSError
		opErr    *net.OpError
		record   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		if invalid.Cert != nil && now.Before(invalid.Cert.NotBefore) {
			return ReasonCertificateNotYetValid, fmt.Sprintf("the certificate of %s is valid only from %s",
				server, invalid.Cert.NotBefore.UTC().Format(time.RFC3339))
		}
		if invalid.Cert != nil {
			return ReasonCertificateExpired, fmt.Sprintf("the certificate of %s expired at %s",
				server, invalid.Cert.NotAfter.UTC().Format(time.RFC3339))
		}
		return ReasonCertificateExpired, fmt.Sprintf("the certificate of %s has expired or is not yet valid", server)
	case errors.As(err, &hostname):
		return ReasonHostnameMismatch, fmt.Sprintf("the certificate of %s is for %s", server, certificateNames(hostname.Certificate))
	case errors.As(err, &unknown):
		issuer := "an unknown authority"
		if unknown.Cert != nil && unknown.Cert.Issuer.String() != "" {
			issuer = fmt.Sprintf("%q", unknown.Cert.Issuer.String())
		}
		return ReasonCertificateUntrusted, fmt.Sprintf("the certificate of %s is signed by %s, which is not trusted", server, issuer)
	case errors.As(err, &invalid):
		return ReasonCertificateInvalid, fmt.Sprintf("the certificate of %s is refused: %v", server, invalid)
	case isTimeout(err):
		return ReasonTimeout, fmt.Sprintf("no answer from %s within %s", server, timeout)
	case errors.As(err, &pgErr):
		if strings.HasPrefix(pgErr.Code, "28") { // invalid_authorization_specification, invalid_password
			return ReasonAuthenticationFailed, fmt.Sprintf("%s refused the credentials: %s (SQLSTATE %s)", server, pgErr.Message, pgErr.Code)
		}
		return ReasonDatabaseError, fmt.Sprintf("%s answered: %s (SQLSTATE %s)", server, pgErr.Message, pgErr.Code)
	case strings.Contains(err.Error(), "server refused TLS connection"):
		// pgconn's error for a server that answers the SSLRequest with "N"; it is not exported.
		return ReasonTLSNotOffered, fmt.Sprintf("%s does not offer TLS", server)
	case errors.As(err, &dnsErr):
		return ReasonNameNotResolved, fmt.Sprintf("%s does not resolve: %s", dnsErr.Name, dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonConnectionRefused, fmt.Sprintf("%s refused the connection", server)
	case errors.As(err, &record) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// net/http turns the RecordHeaderError of a plain HTTP answer into an error of its own.
		return ReasonTLSHandshakeFailed, fmt.Sprintf("%s does not speak TLS", server)
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		// The server sent a TLS alert, e.g. it has no certificate for the name we asked for.
		return ReasonTLSHandshakeFailed, fmt.Sprintf("%s ended the TLS handshake: %v", server, opErr.Err)
	case errors.As(err, &opErr):
		// Not opErr.Error(): it names our local port, which changes with every probe.
		return ReasonConnectionFailed, fmt.Sprintf("%s %s: %v", opErr.Op, server, opErr.Err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonConnectionFailed, fmt.Sprintf("%s closed the connection", server)
	default:
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return ReasonConnectionFailed, fmt.Sprintf("%s: %v", server, err)
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// presentedLeaf digs the server's leaf certificate out of a verification error, so that a
// probe can report when an expired or misnamed certificate expires.
func presentedLeaf(err error) *x509.Certificate {
	var verification *tls.CertificateVerificationError
	if errors.As(err, &verification) && len(verification.UnverifiedCertificates) > 0 {
		return verification.UnverifiedCertificates[0]
	}
	var (
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		unknown  x509.UnknownAuthorityError
	)
	switch {
	case errors.As(err, &invalid):
		return invalid.Cert
	case errors.As(err, &hostname):
		return hostname.Certificate
	case errors.As(err, &unknown):
		return unknown.Cert
	}
	return nil
}

// certificateNames lists the names a certificate is valid for, as a person reads them.
func certificateNames(c *x509.Certificate) string {
	if c == nil {
		return "other names"
	}
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no names"
	}
	const most = 5
	if len(names) > most {
		return strings.Join(names[:most], ", ") + fmt.Sprintf(" and %d more", len(names)-most)
	}
	return strings.Join(names, ", ")
}

// oneLine folds a message onto one line; some errors (pgconn's) span several.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
