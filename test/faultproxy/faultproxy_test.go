package faultproxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tenantops/tenant-operator/test/faultproxy"
	"github.com/tenantops/tenant-operator/test/stack"
)

// through is a client of s3 that talks to the proxy, signing for the proxy's address, and does
// not retry, so that each call is one request.
func through(t *testing.T, s3 *stack.S3, p *faultproxy.Proxy) *minio.Client {
	t.Helper()
	c, err := minio.New(p.Addr(), &minio.Options{Creds: credentials.NewStaticV4(s3.AccessKey, s3.SecretKey, ""), Region: s3.Region,
		BucketLookup: minio.BucketLookupPath, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func put(t *testing.T, c *minio.Client, bucket, key string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.PutObject(ctx, bucket, key, bytes.NewReader([]byte("data of "+key)), int64(len("data of "+key)), minio.PutObjectOptions{})
	return err
}

func list(c *minio.Client, bucket, prefix string, maxKeys int) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, MaxKeys: maxKeys}) {
		if o.Err != nil {
			return keys, o.Err
		}
		keys = append(keys, o.Key)
	}
	return keys, nil
}

// The proxy forwards signed requests unchanged to versitygw and applies each fault to the
// operations it names.
func TestProxyOnVersitygw(t *testing.T) {
	s3 := stack.StartS3(t)
	p := faultproxy.Start(t, s3.Endpoint)
	c := through(t, s3, p)

	var all []string
	for i := range 6 {
		key := fmt.Sprintf("dir/k%d", i)
		if err := put(t, c, s3.Bucket, key); err != nil {
			t.Fatalf("put %s through the proxy: %v (the Host header must reach the server as signed)", key, err)
		}
		all = append(all, key)
	}
	if got, err := list(c, s3.Bucket, "dir/", 0); err != nil || !slices.Equal(got, all) {
		t.Fatalf("listing through the proxy = %v, %v; want %v", got, err, all)
	}

	t.Run("errors on one operation", func(t *testing.T) {
		p.Set(faultproxy.Fault{Kind: faultproxy.Error, Ops: []faultproxy.Op{faultproxy.OpDeleteObject}, Status: http.StatusServiceUnavailable, Code: "SlowDown"})
		defer p.Set(faultproxy.Fault{})
		err := c.RemoveObject(context.Background(), s3.Bucket, "dir/k0", minio.RemoveObjectOptions{})
		var resp minio.ErrorResponse
		if !errors.As(err, &resp) || resp.Code != "SlowDown" || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("delete under SlowDown: %v, want a 503 SlowDown", err)
		}
		if err := put(t, c, s3.Bucket, "dir/other"); err != nil {
			t.Errorf("put while only deletes fail: %v", err)
		}
		if err := s3.Client.RemoveObject(context.Background(), s3.Bucket, "dir/other", minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s3.Client.StatObject(context.Background(), s3.Bucket, "dir/k0", minio.StatObjectOptions{}); err != nil {
			t.Errorf("dir/k0 is gone although its delete was answered with an error: %v", err)
		}
	})

	t.Run("slow", func(t *testing.T) {
		p.Set(faultproxy.Fault{Kind: faultproxy.Slow, Delay: 300 * time.Millisecond})
		defer p.Set(faultproxy.Fault{})
		start := time.Now()
		if _, err := list(c, s3.Bucket, "dir/", 0); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 300*time.Millisecond {
			t.Errorf("a listing took %v through a proxy that delays 300ms", took)
		}
	})

	t.Run("partial listings", func(t *testing.T) {
		p.Set(faultproxy.Fault{Kind: faultproxy.PartialList, Drop: func(key string) bool { return key == "dir/k1" || key == "dir/k4" }})
		defer p.Set(faultproxy.Fault{})
		want := []string{"dir/k0", "dir/k2", "dir/k3", "dir/k5"}
		if got, err := list(c, s3.Bucket, "dir/", 0); err != nil || !slices.Equal(got, want) {
			t.Errorf("partial listing = %v, %v; want %v", got, err, want)
		}
		// Pages of two: the first answer claims to be complete, so the client stops there.
		if got, err := list(c, s3.Bucket, "dir/", 2); err != nil || !slices.Equal(got, []string{"dir/k0"}) {
			t.Errorf("paged partial listing = %v, %v; want only dir/k0", got, err)
		}
		// Reads of the dropped keys still work: only listings lie.
		if _, err := c.StatObject(context.Background(), s3.Bucket, "dir/k1", minio.StatObjectOptions{}); err != nil {
			t.Errorf("stat of a key the listing hides: %v", err)
		}
		dropped := 0
		for _, r := range p.Requests() {
			if r.Fault == faultproxy.PartialList {
				dropped += r.Dropped
			}
		}
		if dropped < 3 {
			t.Errorf("the log counts %d dropped entries, want at least 3", dropped)
		}
	})

	t.Run("date skew", func(t *testing.T) {
		p.SkewDate(-3 * time.Hour)
		defer p.SkewDate(0)
		resp, err := http.Head("http://" + p.Addr() + "/" + s3.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		date, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			t.Fatalf("answer's Date %q: %v", resp.Header.Get("Date"), err)
		}
		if off := time.Until(date); off > -3*time.Hour+5*time.Second || off < -3*time.Hour-5*time.Second {
			t.Errorf("the answer's Date is %v from now, want -3h", off.Round(time.Second))
		}
	})

	t.Run("reset", func(t *testing.T) {
		p.Set(faultproxy.Fault{Kind: faultproxy.Reset})
		defer p.Set(faultproxy.Fault{})
		before := len(p.Requests())
		if _, err := list(c, s3.Bucket, "dir/", 0); err == nil {
			t.Fatal("a listing succeeded through a proxy that hangs up")
		}
		if n := len(p.Requests()) - before; n == 0 {
			t.Error("the hung-up requests were not counted")
		}
	})

	t.Run("refuse and return", func(t *testing.T) {
		p.Set(faultproxy.Fault{Kind: faultproxy.Refuse})
		_, err := list(c, s3.Bucket, "dir/", 0)
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("listing while refused: %v, want connection refused", err)
		}
		p.Set(faultproxy.Fault{})
		if got, err := list(c, s3.Bucket, "dir/", 0); err != nil || len(got) != len(all) {
			t.Fatalf("listing after the proxy listens again = %v, %v", got, err)
		}
	})
}

func TestOpOf(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		want           faultproxy.Op
	}{
		{"GET", "/b?list-type=2&prefix=x%2F&encoding-type=url", faultproxy.OpListObjects},
		{"GET", "/b/", faultproxy.OpListObjects},
		{"GET", "/b?location=", faultproxy.OpOther},
		{"GET", "/b?uploads=&prefix=x", faultproxy.OpListUploads},
		{"HEAD", "/b", faultproxy.OpHeadBucket},
		{"GET", "/b/t/s/id/manifest.json", faultproxy.OpGetObject},
		{"HEAD", "/b/t/s/id/manifest.json", faultproxy.OpHeadObject},
		{"PUT", "/b/t/s/id/backup.dump.zst.age?partNumber=1&uploadId=u", faultproxy.OpPutObject},
		{"POST", "/b/t/s/id/backup.dump.zst.age?uploads=", faultproxy.OpPutObject},
		{"DELETE", "/b/t/s/id/manifest.json", faultproxy.OpDeleteObject},
		{"DELETE", "/b/t/s/id/backup.dump.zst.age?uploadId=u", faultproxy.OpAbortUpload},
		{"POST", "/b?delete=", faultproxy.OpDeleteObject},
	} {
		if got := faultproxy.OpOf(httptest.NewRequest(tc.method, tc.target, io.NopCloser(strings.NewReader("")))); got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.method, tc.target, got, tc.want)
		}
	}
}
