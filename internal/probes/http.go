package probes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"k8s.io/utils/clock"
)

// DefaultTimeout bounds a probe when the options give none: long enough for a slow but working
// site, short enough that a dead one does not hold a probe slot for long.
const DefaultTimeout = 10 * time.Second

// HTTPOptions configure an HTTPProber.
type HTTPOptions struct {
	// RootCAs are the authorities trusted to sign tenants' certificates; nil means the system's.
	RootCAs *x509.CertPool
	// Timeout bounds one probe from dialling to the response's headers; DefaultTimeout when 0.
	Timeout time.Duration
	// DialContext connects to an address; nil dials the URL's host. Set it to reach tenants
	// through an in-cluster ingress service while still asking for, and verifying, their names.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Clock stamps results; the real clock when nil.
	Clock clock.PassiveClock
	// UserAgent is sent with every probe, so tenants can tell probes from users in their logs.
	UserAgent string
}

// HTTPProber probes URLs with GET over HTTPS. It is safe for concurrent use; one serves all
// tenants.
type HTTPProber struct {
	client    *http.Client
	timeout   time.Duration
	clock     clock.PassiveClock
	userAgent string
}

// NewHTTPProber returns a prober with the options' defaults filled in.
func NewHTTPProber(o HTTPOptions) *HTTPProber {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.UserAgent == "" {
		o.UserAgent = "tenant-operator-uptime"
	}
	if o.DialContext == nil {
		o.DialContext = (&net.Dialer{KeepAlive: -1}).DialContext
	}
	transport := &http.Transport{
		// A probe asks the tenant directly, never through the manager's proxy settings.
		Proxy:       nil,
		DialContext: o.DialContext,
		TLSClientConfig: &tls.Config{
			RootCAs:    o.RootCAs,
			MinVersion: tls.VersionTLS12,
			// X25519 alone, not Go's default hybrid with ML-KEM: the post-quantum share protects
			// a conversation's secrecy for years to come, and a probe's GET and status code have
			// none to keep, while its key generation and decapsulation were a third of a
			// handshake's CPU (at 10,000 tenants every 15 s, most of the manager's). P-256 is
			// kept for servers without X25519.
			CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
		},
		TLSHandshakeTimeout: o.Timeout,
		// Every probe makes a new connection, with a TLS handshake, as a new visitor would: a
		// kept-alive connection would hide a listener that stopped accepting, a certificate that
		// was replaced, or a DNS change. The benchmark shows what it costs.
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &HTTPProber{
		client: &http.Client{
			Transport: transport,
			// A redirect is an answer: 3xx counts as up, and following it would probe another URL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout:   o.Timeout,
		clock:     o.Clock,
		userAgent: o.UserAgent,
	}
}

// Probe sends GET to rawURL, an https URL, and reports the status, the latency up to the response
// headers and the expiry of the certificate served. The body is not read.
func (p *HTTPProber) Probe(ctx context.Context, rawURL string) Result {
	r := Result{Time: p.clock.Now()}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		r.Reason, r.Message = ReasonInvalidTarget, fmt.Sprintf("%q is not an https URL", rawURL)
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		r.Reason, r.Message = ReasonInvalidTarget, fmt.Sprintf("%q cannot be requested: %v", rawURL, err)
		return r
	}
	req.Header.Set("User-Agent", p.userAgent)

	resp, err := p.client.Do(req)
	r.Latency = p.clock.Since(r.Time)
	if err != nil {
		r.failure(err, u.Host, p.timeout)
		return r
	}
	resp.Body.Close()
	r.StatusCode = resp.StatusCode
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		r.CertificateNotAfter = resp.TLS.PeerCertificates[0].NotAfter
	}
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		r.Reason = ReasonHTTPStatus
		r.Message = fmt.Sprintf("GET %s answered %s", u.Redacted(), resp.Status)
		return r
	}
	r.Success = true
	return r
}
