package storage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/stack"
)

// Both implementations must behave the same; every test below runs against each, the S3 one on a
// real versitygw.
func stores(t *testing.T) map[string]func(t *testing.T) (storage.Store, *stack.S3) {
	return map[string]func(t *testing.T) (storage.Store, *stack.S3){
		"volume": func(t *testing.T) (storage.Store, *stack.S3) {
			v, err := storage.OpenVolume(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return v, nil
		},
		"s3": func(t *testing.T) (storage.Store, *stack.S3) {
			srv := stack.StartS3(t)
			loc, err := storage.ParseLocation(srv.Location("team/backups"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := storage.OpenS3(context.Background(), loc,
				storage.Credentials{AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey},
				storage.WithPartSize(storage.MinPartSize))
			if err != nil {
				t.Fatal(err)
			}
			return s, srv
		},
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func get(t *testing.T, s storage.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func TestStoreRoundTrip(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, _ := open(t)
			ctx := context.Background()
			small := []byte(`{"hello":"world"}`)
			// Larger than two parts and not a multiple of the part size: three parts, the last short.
			big := randomBytes(t, 2*storage.MinPartSize+12345)
			for key, data := range map[string][]byte{"t1/s/1/manifest.json": small, "t1/s/1/data": big, "t2/s/9/manifest.json": small} {
				n, err := s.Put(ctx, key, bytes.NewReader(data))
				if err != nil {
					t.Fatalf("put %s: %v", key, err)
				}
				if n != int64(len(data)) {
					t.Fatalf("put %s stored %d bytes, want %d", key, n, len(data))
				}
			}
			if got := get(t, s, "t1/s/1/data"); !bytes.Equal(got, big) {
				t.Fatalf("multipart object differs: %d bytes back, want %d", len(got), len(big))
			}
			if got := get(t, s, "t1/s/1/manifest.json"); !bytes.Equal(got, small) {
				t.Fatalf("small object = %q", got)
			}
			st, err := s.Stat(ctx, "t1/s/1/data")
			if err != nil || st.Size != int64(len(big)) || st.Key != "t1/s/1/data" {
				t.Fatalf("stat = %+v, %v", st, err)
			}

			list, err := s.List(ctx, "t1")
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(list); got != "t1/s/1/data t1/s/1/manifest.json" {
				t.Fatalf("list t1 = %s", got)
			}
			all, err := s.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(all); got != "t1/s/1/data t1/s/1/manifest.json t2/s/9/manifest.json" {
				t.Fatalf("list all = %s", got)
			}
			// A directory that only shares a name prefix is not listed under another.
			if l, err := s.List(ctx, "t"); err != nil || len(l) != 0 {
				t.Fatalf("list t = %v, %v", keys(l), err)
			}

			// Replacing an object is whole.
			if _, err := s.Put(ctx, "t2/s/9/manifest.json", strings.NewReader("v2")); err != nil {
				t.Fatal(err)
			}
			if got := get(t, s, "t2/s/9/manifest.json"); string(got) != "v2" {
				t.Fatalf("replaced object = %q", got)
			}

			if err := s.Delete(ctx, "t1/s/1/data"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "t1/s/1/data"); err != nil {
				t.Fatalf("deleting a missing key: %v", err)
			}
			if _, err := s.Get(ctx, "t1/s/1/data"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("get after delete: %v, want ErrNotFound", err)
			}
			if _, err := s.Stat(ctx, "t1/s/1/data"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("stat after delete: %v, want ErrNotFound", err)
			}
			if _, err := s.Put(ctx, "../escape", strings.NewReader("x")); err == nil {
				t.Fatal("a key outside the store was accepted")
			}
		})
	}
}

func keys(objs []storage.Object) string {
	var k []string
	for _, o := range objs {
		k = append(k, o.Key)
	}
	return strings.Join(k, " ")
}

// failingReader yields n random bytes and then an error, like a pg_dump that dies halfway.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	_, _ = rand.Read(p)
	f.n -= len(p)
	return len(p), nil
}

// cancelAfter cancels a context once n bytes have been read, like a SIGTERM mid-upload.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestStoreFailedPutLeavesNothing(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, srv := open(t)
			boom := errors.New("pg_dump died")
			for _, tc := range []struct {
				name string
				run  func() error
			}{
				{"reader fails after two parts", func() error {
					_, err := s.Put(context.Background(), "t/s/x/data", &failingReader{n: 2*storage.MinPartSize + 100, err: boom})
					if !errors.Is(err, boom) {
						return fmt.Errorf("error %v does not carry the reader's", err)
					}
					return nil
				}},
				{"reader fails within the first part", func() error {
					_, err := s.Put(context.Background(), "t/s/x/data", &failingReader{n: 1000, err: boom})
					if !errors.Is(err, boom) {
						return fmt.Errorf("error %v does not carry the reader's", err)
					}
					return nil
				}},
				{"context cancelled mid-upload", func() error {
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					r := &cancelAfter{r: bytes.NewReader(randomBytes(t, 3*storage.MinPartSize)), n: storage.MinPartSize + 10, cancel: cancel}
					_, err := s.Put(ctx, "t/s/x/data", r)
					if !errors.Is(err, context.Canceled) {
						return fmt.Errorf("error %v, want context.Canceled", err)
					}
					return nil
				}},
			} {
				if err := tc.run(); err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if _, err := s.Stat(context.Background(), "t/s/x/data"); !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("%s: object exists after a failed put (%v)", tc.name, err)
				}
				if l, err := s.List(context.Background(), ""); err != nil || len(l) != 0 {
					t.Fatalf("%s: list = %v, %v; want nothing", tc.name, keys(l), err)
				}
				assertNoLeftovers(t, name, s, srv)
			}
		})
	}
}

// assertNoLeftovers checks below the interface: no multipart upload left open on the server, no
// temporary file on the volume.
func assertNoLeftovers(t *testing.T, name string, s storage.Store, srv *stack.S3) {
	t.Helper()
	if srv != nil {
		for u := range srv.Client.ListIncompleteUploads(context.Background(), srv.Bucket, "", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			t.Fatalf("incomplete multipart upload left behind: %s", u.Key)
		}
		return
	}
	root := strings.TrimPrefix(s.String(), "file://")
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Fatalf("file left behind on the volume: %s", p)
		}
		return nil
	})
}

func TestRemoveIncomplete(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, srv := open(t)
			ctx := context.Background()
			// What a killed process leaves: an upload started and never finished.
			if srv != nil {
				core := minio.Core{Client: srv.Client}
				if _, err := core.NewMultipartUpload(ctx, srv.Bucket, "team/backups/t/s/x/data", minio.PutObjectOptions{}); err != nil {
					t.Fatal(err)
				}
				if _, err := core.NewMultipartUpload(ctx, srv.Bucket, "team/backups/other/s/y/data", minio.PutObjectOptions{}); err != nil {
					t.Fatal(err)
				}
			} else {
				root := strings.TrimPrefix(s.String(), "file://")
				for _, dir := range []string{"t/s/x", "other/s/y"} {
					if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(root, dir, ".data.partial-123"), []byte("half"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			if l, err := s.List(ctx, ""); err != nil || len(l) != 0 {
				t.Fatalf("incomplete writes are listed: %v, %v", keys(l), err)
			}
			// Too recent to be called abandoned: kept.
			removed, err := s.RemoveIncomplete(ctx, "t", time.Now().Add(-time.Hour))
			if err != nil || len(removed) != 0 {
				t.Fatalf("RemoveIncomplete(recent) = %v, %v; want nothing removed", removed, err)
			}
			removed, err = s.RemoveIncomplete(ctx, "t", time.Now().Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(removed, " ") != "t/s/x/data" {
				t.Fatalf("RemoveIncomplete removed %v, want [t/s/x/data]", removed)
			}
			// Only under the directory asked for.
			removed, err = s.RemoveIncomplete(ctx, "", time.Now().Add(time.Minute))
			if err != nil || strings.Join(removed, " ") != "other/s/y/data" {
				t.Fatalf("RemoveIncomplete(all) = %v, %v", removed, err)
			}
			assertNoLeftovers(t, name, s, srv)
		})
	}
}

func TestOpenUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = storage.Open(ctx, "s3://bkt/p?insecure=true&endpoint="+addr)
	var ue *storage.UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("Open of a dead endpoint: %v, want an UnreachableError", err)
	}
	if !strings.HasPrefix(ue.Error(), "storage unreachable: "+addr) {
		t.Fatalf("message %q", ue.Error())
	}

	_, err = storage.Open(ctx, "file:///nonexistent/volume")
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "is the volume mounted?") {
		t.Fatalf("Open of a missing volume: %v", err)
	}
}

func TestOpenS3Refusals(t *testing.T) {
	srv := stack.StartS3(t)
	ctx := context.Background()
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if _, err := storage.Open(ctx, srv.Location("p")); err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("no credentials: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
	if _, err := storage.Open(ctx, srv.Location("p")); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("wrong secret: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKNOBODYKNOWS")
	// versitygw answers an unknown key with 404 "XAdminUserNotFound" (AWS with 403
	// InvalidAccessKeyId): either way not a missing bucket.
	if _, err := storage.Open(ctx, srv.Location("p")); err == nil || strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "access key") {
		t.Fatalf("unknown access key: %v", err)
	}
	srv.SetEnv(t)
	loc := strings.Replace(srv.Location("p"), "s3://"+srv.Bucket, "s3://nobucket", 1)
	if _, err := storage.Open(ctx, loc); err == nil || !strings.Contains(err.Error(), `bucket "nobucket" does not exist`) {
		t.Fatalf("missing bucket: %v", err)
	}
	if _, err := storage.Open(ctx, srv.Location("p")); err != nil {
		t.Fatalf("right credentials: %v", err)
	}
}

// TestOpenS3WithNarrowCredential: a credential that may only put under its prefix (a backup
// writer) opens the store, though HEAD on the bucket is refused to it, and the requests it may not
// make fail as ErrAccessDenied, which callers can tell from other failures.
func TestOpenS3WithNarrowCredential(t *testing.T) {
	srv := stack.StartS3(t, stack.WithIAM())
	writer := srv.CreateUser(t)
	srv.SetBucketPolicy(t, `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["`+writer.AccessKey+`"]},
		"Action": ["s3:PutObject"], "Resource": ["arn:aws:s3:::`+srv.Bucket+`/p/*"]}]}`)
	ctx := context.Background()
	loc, err := storage.ParseLocation(srv.Location("p"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ClientFor(t, writer).BucketExists(ctx, srv.Bucket); err == nil {
		t.Fatal("HEAD on the bucket is allowed to the writer; this test needs it refused")
	}
	s, err := storage.OpenS3(ctx, loc, storage.Credentials{AccessKeyID: writer.AccessKey, SecretAccessKey: writer.SecretKey})
	if err != nil {
		t.Fatalf("open with a put-only credential: %v", err)
	}
	if _, err := s.Put(ctx, "a/b", strings.NewReader("x")); err != nil {
		t.Fatalf("put: %v", err)
	}
	_, err = s.List(ctx, "a")
	if !errors.Is(err, storage.ErrAccessDenied) || !strings.Contains(err.Error(), "list a: S3 access denied (AccessDenied)") {
		t.Fatalf("list: %v", err)
	}
	if err := s.Delete(ctx, "a/b"); !errors.Is(err, storage.ErrAccessDenied) {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.Get(ctx, "a/b"); !errors.Is(err, storage.ErrAccessDenied) {
		t.Fatalf("get: %v", err)
	}
}
