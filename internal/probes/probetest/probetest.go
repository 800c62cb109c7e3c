// Package probetest runs the HTTPS server that probe benchmarks probe, in a child process: the
// benchmarks measure the prober's CPU, and a TLS handshake a probe costs the server as much as
// the client. The test binary is its own child: its TestMain calls Serve when the environment
// variable it chose is set, and the benchmark calls Start with that variable.
package probetest

import (
	"bufio"
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
	"strings"
	"testing"
	"time"
)

// Serve serves handler over TLS on a loopback port, with a self-signed certificate for 127.0.0.1
// and dnsNames, writes the address and the certificate (PEM) to standard output for Start, and
// exits once standard input closes: when the parent ends, so does the server.
func Serve(handler http.Handler, dnsNames ...string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "probe benchmark"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: dnsNames,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	srv := &http.Server{
		Handler:   handler,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		// Probes time out and hang up by design; the server has nothing to say about it.
		ErrorLog: log.New(io.Discard, "", 0),
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

// Server is the child process, as the benchmark sees it.
type Server struct {
	// Addr is the server's host:port.
	Addr string
	// CAPEM is its certificate, which is its own CA; RootCAs holds it.
	CAPEM   []byte
	RootCAs *x509.CertPool
	// PID is the child's, for measuring its CPU apart.
	PID int
}

// Start runs the test binary again with env=1 and no tests or benchmarks to run, so that its
// TestMain calls Serve, and reads the address and certificate it writes. The child stops when the
// test ends.
func Start(tb testing.TB, env string) *Server {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), env+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start the probe server: %v", err)
	}
	tb.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	r := bufio.NewReader(stdout)
	addr, err := r.ReadString('\n')
	if err != nil {
		tb.Fatalf("probe server's address: %v", err)
	}
	var caPEM []byte
	for !strings.Contains(string(caPEM), "-----END CERTIFICATE-----") {
		line, err := r.ReadString('\n')
		if err != nil {
			tb.Fatalf("probe server's certificate: %v", err)
		}
		caPEM = append(caPEM, line...)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		tb.Fatal("the probe server sent no certificate")
	}
	return &Server{Addr: strings.TrimSpace(addr), CAPEM: caPEM, RootCAs: pool, PID: cmd.Process.Pid}
}
