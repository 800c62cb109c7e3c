// Package faultproxy is an HTTP proxy that tests put in front of an S3 server (the local stack's
// versitygw) to make it fail while clients talk to it: refuse connections, drop them, answer
// slowly, answer S3 errors, or lie in its object listings. The test switches the behaviour at run
// time with Set, and reads what went through with Requests.
//
// The proxy is transparent: it forwards every request unchanged, Host header included. A client
// signs its requests (SigV4) for the host it talks to, the proxy's; the server checks the
// signature against the Host header it receives, so it must be the client's. Nothing is signed
// again, and no credential is needed here.
//
// Requests are expected path-style (/BUCKET/KEY), as the operator's and the agent's S3 clients
// make them.
package faultproxy

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Kind is what the proxy does to the requests a Fault applies to.
type Kind int

const (
	// Pass forwards every request.
	Pass Kind = iota
	// Refuse closes the listening socket and every open connection: clients get "connection
	// refused", as from a server that is down. It applies to every operation (Ops is ignored),
	// and nothing is counted while it lasts, since nothing arrives.
	Refuse
	// Reset accepts each request and closes its connection at once (TCP RST) without an answer,
	// like a load balancer whose backend is gone. Such requests are counted.
	Reset
	// Slow holds each request for Delay before forwarding it.
	Slow
	// Error answers with an S3 error (Status and Code) without forwarding.
	Error
	// PartialList forwards object listings and removes from their answer the entries Drop
	// chooses, saying the listing is complete (IsTruncated false, no continuation): a server
	// that silently forgets objects. Other requests pass.
	PartialList
)

func (k Kind) String() string {
	return [...]string{"Pass", "Refuse", "Reset", "Slow", "Error", "PartialList"}[k]
}

// Op is the S3 operation a request makes, as far as faults need to tell them apart.
type Op string

// Operations.
const (
	OpListObjects  Op = "ListObjects" // GET on a bucket, V1 or V2
	OpListUploads  Op = "ListMultipartUploads"
	OpHeadBucket   Op = "HeadBucket"
	OpGetObject    Op = "GetObject"
	OpHeadObject   Op = "HeadObject"
	OpPutObject    Op = "PutObject" // a single PUT, or a multipart upload's create, part or complete
	OpDeleteObject Op = "DeleteObject"
	OpAbortUpload  Op = "AbortMultipartUpload"
	OpOther        Op = "Other" // bucket creation, location, policies, the admin API
)

// OpOf tells the operation of a path-style S3 request.
func OpOf(r *http.Request) Op {
	path := strings.TrimPrefix(r.URL.Path, "/")
	_, key, _ := strings.Cut(path, "/")
	q := r.URL.Query()
	if key == "" {
		switch {
		case r.Method == http.MethodHead:
			return OpHeadBucket
		case r.Method == http.MethodGet && q.Has("uploads"):
			return OpListUploads
		case r.Method == http.MethodGet && len(q) > 0 && !q.Has("list-type") && !q.Has("prefix") && !q.Has("marker") &&
			!q.Has("delimiter") && !q.Has("max-keys") && !q.Has("encoding-type"):
			return OpOther // ?location, ?policy, ...
		case r.Method == http.MethodGet:
			return OpListObjects
		case r.Method == http.MethodPost && q.Has("delete"):
			return OpDeleteObject
		}
		return OpOther
	}
	switch r.Method {
	case http.MethodGet:
		if q.Has("uploadId") {
			return OpOther // list parts
		}
		return OpGetObject
	case http.MethodHead:
		return OpHeadObject
	case http.MethodPut, http.MethodPost:
		return OpPutObject
	case http.MethodDelete:
		if q.Has("uploadId") {
			return OpAbortUpload
		}
		return OpDeleteObject
	}
	return OpOther
}

// Fault is the proxy's behaviour.
type Fault struct {
	Kind Kind
	// Ops are the operations it applies to; every operation when empty. The others pass.
	Ops []Op
	// Delay is how long Slow holds each request.
	Delay time.Duration
	// Status and Code make Error's answer: 500 InternalError when unset (503 SlowDown is S3's
	// "reduce your request rate").
	Status int
	Code   string
	// Drop chooses the listed keys (the bucket's keys, prefix included) that PartialList leaves
	// out. It is called from the proxy's goroutines: see DropRandomly.
	Drop func(key string) bool
}

func (f Fault) String() string {
	s := f.Kind.String()
	switch f.Kind {
	case Slow:
		s += " " + f.Delay.String()
	case Error:
		status, code := f.answer()
		s += fmt.Sprintf(" %d %s", status, code)
	}
	if len(f.Ops) > 0 {
		ops := make([]string, len(f.Ops))
		for i, op := range f.Ops {
			ops[i] = string(op)
		}
		s += " on " + strings.Join(ops, ",")
	}
	return s
}

func (f Fault) answer() (int, string) {
	status, code := f.Status, f.Code
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if code == "" {
		code = "InternalError"
	}
	return status, code
}

func (f Fault) appliesTo(op Op) bool {
	return len(f.Ops) == 0 || slices.Contains(f.Ops, op)
}

// DropRandomly is a Drop that leaves out each key with probability p, drawing from a generator
// seeded with seed, safely from many goroutines.
func DropRandomly(seed uint64, p float64) func(string) bool {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	return func(string) bool {
		mu.Lock()
		defer mu.Unlock()
		return rng.Float64() < p
	}
}

// Request is one request the proxy received.
type Request struct {
	At     time.Time
	Op     Op
	Method string
	Path   string
	// Fault is the kind of fault applied to it; Pass when it was forwarded untouched.
	Fault Kind
	// Status is the answer's status code; 0 when the connection was closed without one.
	Status int
	// Dropped is how many listed entries PartialList removed from the answer.
	Dropped int
}

// Proxy is a running fault proxy; see the package doc.
type Proxy struct {
	t      testing.TB
	addr   string
	target *url.URL
	srv    *http.Server
	rp     *httputil.ReverseProxy

	mu    sync.Mutex
	fault Fault
	// dateSkew moves the Date of every answer: the server's clock as clients see it.
	dateSkew time.Duration
	log      []Request
	ln       net.Listener
	conns    map[net.Conn]bool
}

// Start listens on a free loopback port and forwards to target (host:port of an S3 server over
// plain HTTP) until the test ends. It fails the test when it cannot listen.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listen: %v", err)
	}
	p := &Proxy{t: t, addr: ln.Addr().String(), target: &url.URL{Scheme: "http", Host: target}, conns: map[net.Conn]bool{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.target)
			pr.Out.Host = pr.In.Host // what the client signed
		},
		ModifyResponse: p.modifyResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client gave up (its timeout); nobody reads an answer
			}
			writeS3Error(w, r, http.StatusBadGateway, "BadGateway", "faultproxy: "+err.Error())
		},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(c net.Conn, s http.ConnState) {
			p.mu.Lock()
			defer p.mu.Unlock()
			switch s {
			case http.StateNew:
				p.conns[c] = true
			case http.StateClosed, http.StateHijacked:
				delete(p.conns, c)
			}
		}}
	p.serveOn(ln)
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

func (p *Proxy) serveOn(ln net.Listener) {
	p.mu.Lock()
	p.ln = &resetListener{Listener: ln, p: p}
	l := p.ln
	p.mu.Unlock()
	go func() { _ = p.srv.Serve(l) }()
}

// Addr is the proxy's host:port, the endpoint clients use instead of the server's.
func (p *Proxy) Addr() string { return p.addr }

// Set switches the proxy to f for the requests that arrive from now on. Switching to Refuse closes
// the listener and every connection; switching away from it listens again on the same address.
func (p *Proxy) Set(f Fault) {
	p.t.Helper()
	p.mu.Lock()
	was := p.fault
	p.fault = f
	var closing []net.Conn
	var ln net.Listener
	if f.Kind == Refuse && was.Kind != Refuse {
		ln, p.ln = p.ln, nil
		for c := range p.conns {
			closing = append(closing, c)
		}
	}
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
		for _, c := range closing {
			_ = c.Close()
		}
	}
	if f.Kind != Refuse && was.Kind == Refuse {
		deadline := time.Now().Add(10 * time.Second)
		for {
			ln, err := net.Listen("tcp", p.addr)
			if err == nil {
				p.serveOn(ln)
				break
			}
			if time.Now().After(deadline) {
				p.t.Fatalf("faultproxy: listen again on %s: %v", p.addr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// SkewDate moves the Date header of every answer by d from now on, as if the server's clock were
// d ahead (behind, when negative) of the clients'. Objects' times (Last-Modified, listings) are
// left as the server wrote them.
func (p *Proxy) SkewDate(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dateSkew = d
}

func (p *Proxy) skew() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dateSkew
}

// Fault is the behaviour set last.
func (p *Proxy) Fault() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

// Requests returns the requests received so far, in order of arrival.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.log)
}

// Count is how many requests arrived in [from, to) for the given operations (all when none).
func (p *Proxy) Count(from, to time.Time, ops ...Op) int {
	n := 0
	for _, r := range p.Requests() {
		if !r.At.Before(from) && r.At.Before(to) && (len(ops) == 0 || slices.Contains(ops, r.Op)) {
			n++
		}
	}
	return n
}

func (p *Proxy) record(r Request) {
	p.mu.Lock()
	p.log = append(p.log, r)
	p.mu.Unlock()
}

type faultKey struct{}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	f := p.Fault()
	op := OpOf(r)
	entry := Request{At: time.Now(), Op: op, Method: r.Method, Path: r.URL.Path}
	if !f.appliesTo(op) || f.Kind == Pass || f.Kind == Refuse {
		p.forward(w, r, entry, f)
		return
	}
	entry.Fault = f.Kind
	switch f.Kind {
	case Reset:
		p.record(entry)
		hangUp(w)
	case Slow:
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			p.record(entry)
			return
		}
		p.forward(w, r, entry, f)
	case Error:
		status, code := f.answer()
		entry.Status = status
		p.record(entry)
		w.Header().Set("Date", time.Now().Add(p.skew()).UTC().Format(http.TimeFormat))
		writeS3Error(w, r, status, code, "faultproxy: injected "+code)
	case PartialList:
		if op != OpListObjects {
			entry.Fault = Pass
		}
		p.forward(w, r, entry, f)
	}
}

// forward sends r to the server and records it with the answer's status.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, entry Request, f Fault) {
	rec := &recorded{entry: entry}
	if entry.Fault == PartialList {
		r = r.WithContext(context.WithValue(r.Context(), faultKey{}, rec))
		rec.drop = f.Drop
	}
	sw := &statusWriter{ResponseWriter: w}
	p.rp.ServeHTTP(sw, r)
	rec.entry.Status = sw.status
	p.record(rec.entry)
}

// recorded carries a request's entry and its Drop to modifyResponse.
type recorded struct {
	entry Request
	drop  func(string) bool
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func hangUp(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("faultproxy: connection cannot be hijacked")
	}
	c, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST, not FIN
	}
	_ = c.Close()
}

// writeS3Error answers as S3 does: the status and an XML error body (none to HEAD).
func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	w.Header().Set("Content-Type", "application/xml")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	_ = xml.NewEncoder(&b).Encode(struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string
		Message   string
		Resource  string
		RequestID string `xml:"RequestId"`
	}{Code: code, Message: message, Resource: r.URL.Path, RequestID: "faultproxy"})
	_, _ = w.Write(b.Bytes())
}

var (
	contentsRE  = regexp.MustCompile(`(?s)<Contents>.*?</Contents>`)
	truncatedRE = regexp.MustCompile(`<IsTruncated>\s*true\s*</IsTruncated>`)
	nextRE      = regexp.MustCompile(`(?s)<(NextContinuationToken|NextMarker)>.*?</(NextContinuationToken|NextMarker)>`)
	keyCountRE  = regexp.MustCompile(`<KeyCount>\d+</KeyCount>`)
)

// modifyResponse removes the entries Drop chooses from a listing's answer and says it is complete.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	if d := p.skew(); d != 0 {
		date, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			date = time.Now()
		}
		resp.Header.Set("Date", date.Add(d).UTC().Format(http.TimeFormat))
	}
	rec, _ := resp.Request.Context().Value(faultKey{}).(*recorded)
	if rec == nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	urlEncoded := bytes.Contains(body, []byte("<EncodingType>url</EncodingType>"))
	kept := 0
	body = contentsRE.ReplaceAllFunc(body, func(entry []byte) []byte {
		var c struct{ Key string }
		if err := xml.Unmarshal(entry, &c); err == nil {
			key := c.Key
			if urlEncoded {
				if k, err := url.QueryUnescape(key); err == nil {
					key = k
				}
			}
			if rec.drop != nil && rec.drop(key) {
				rec.entry.Dropped++
				return nil
			}
		}
		kept++
		return entry
	})
	body = truncatedRE.ReplaceAll(body, []byte("<IsTruncated>false</IsTruncated>"))
	body = nextRE.ReplaceAll(body, nil)
	body = keyCountRE.ReplaceAll(body, []byte("<KeyCount>"+strconv.Itoa(kept)+"</KeyCount>"))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("Content-Encoding")
	return nil
}

// resetListener hangs up each new connection at once while the fault is Reset for every
// operation, so that even a client's first request gets no answer.
type resetListener struct {
	net.Listener
	p *Proxy
}

func (l *resetListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		f := l.p.Fault()
		if f.Kind == Reset && len(f.Ops) == 0 {
			l.p.record(Request{At: time.Now(), Op: OpOther, Method: "CONNECT", Fault: Reset})
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		}
		return c, nil
	}
}
