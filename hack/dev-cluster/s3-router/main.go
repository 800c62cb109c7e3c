// Command s3-router serves several S3 servers behind one endpoint, choosing by bucket: the sample
// BackupPolicy keeps its hot and cold buckets at one endpoint but in two regions with two sets of
// credentials, and versitygw serves one region and one key pair. make demo runs a versitygw per
// bucket and this router in front of them on 127.0.0.1:9000.
//
// Requests are path-style (/BUCKET/KEY) and forwarded unchanged, Host header included, so each
// server checks the client's SigV4 signature itself.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
)

// routes maps a bucket to the server that holds it; --route BUCKET=URL, repeated.
type routes map[string]*url.URL

func (r routes) String() string { return fmt.Sprint(map[string]*url.URL(r)) }

func (r routes) Set(v string) error {
	bucket, target, ok := strings.Cut(v, "=")
	if !ok || bucket == "" {
		return errors.New("want BUCKET=URL")
	}
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("invalid URL %q", target)
	}
	r[bucket] = u
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "Address to serve on.")
	r := routes{}
	flag.Var(r, "route", "BUCKET=URL of the S3 server holding BUCKET; repeat for each bucket.")
	flag.Parse()
	if len(r) == 0 {
		fmt.Fprintln(os.Stderr, "error: no --route")
		os.Exit(2)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(r[bucketOf(pr.In.URL.Path)])
			pr.Out.Host = pr.In.Host // signed by the client
		},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, ok := r[bucketOf(req.URL.Path)]; !ok {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>`)
			return
		}
		proxy.ServeHTTP(w, req)
	})
	log.Printf("Routing %s on %s", r, *listen)
	log.Fatal(http.ListenAndServe(*listen, handler))
}

// bucketOf is the first segment of a path-style request path.
func bucketOf(path string) string {
	bucket, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return bucket
}
