package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// DefaultPartSize is the multipart part size. Two parts are in memory at once (one filling while the
// previous one uploads), so this bounds the agent's memory whatever the database size; 16 MiB
// allows objects up to 160 GiB within S3's 10,000-part limit.
const DefaultPartSize = 16 << 20

// MinPartSize is S3's smallest part (except the last).
const MinPartSize = 5 << 20

const maxParts = 10000

// S3 stores objects in a bucket of an S3-compatible server, under a prefix, using path-style
// requests (what self-hosted servers expect).
type S3 struct {
	loc      Location
	client   *minio.Client
	core     minio.Core
	partSize int
	clock    *serverClock
}

// S3Option tunes an S3 store.
type S3Option func(*S3)

// WithPartSize sets the multipart part size (at least MinPartSize).
func WithPartSize(n int) S3Option {
	return func(s *S3) {
		if n >= MinPartSize {
			s.partSize = n
		}
	}
}

// OpenS3 connects to the location's endpoint and checks that the bucket exists.
func OpenS3(ctx context.Context, loc Location, creds Credentials, opts ...S3Option) (*S3, error) {
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return nil, errors.New("S3 credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	transport, err := minio.DefaultTransport(!loc.Insecure)
	if err != nil {
		return nil, fmt.Errorf("S3 client for %s: %w", loc, err)
	}
	clock := &serverClock{}
	client, err := minio.New(loc.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken),
		Transport:    &dateRecorder{base: transport, clock: clock},
		Secure:       !loc.Insecure,
		Region:       loc.Region,
		BucketLookup: minio.BucketLookupPath,
		// minio-go's default of 10 retries turns a wrong endpoint into a long silent wait; a few
		// retries still ride out a server restart.
		MaxRetries: 4,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 client for %s: %w", loc, err)
	}
	s := &S3{loc: loc, client: client, core: minio.Core{Client: client}, partSize: DefaultPartSize, clock: clock}
	for _, o := range opts {
		o(s)
	}
	ok, err := client.BucketExists(ctx, loc.Bucket)
	if err != nil {
		if !errors.Is(s.classify("open", err), ErrAccessDenied) {
			return nil, s.classify("open", err)
		}
		// HEAD answers 403 without a body both to an unknown or wrong key and to a narrow credential
		// that may not list the bucket (a backup writer, a tenant's reader). A GET's answer names
		// which, so ask again with one.
		if err := s.probe(ctx); err != nil {
			return nil, err
		}
		return s, nil
	}
	if !ok {
		// versitygw answers HEAD with 404 to an unknown access key too; a GET's body says which.
		if err := s.probe(ctx); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("S3 bucket %q does not exist at %s", loc.Bucket, loc.Endpoint)
	}
	return s, nil
}

// probeKey is read, never written, to learn whether a credential is known to the server.
const probeKey = ".tenantops-credential-probe"

// probe GETs a key that does not exist. "No such key" and "access denied" both mean the server
// knows the credential and the bucket exists; an unknown key, a wrong secret or a missing bucket
// are errors.
func (s *S3) probe(ctx context.Context) error {
	rc, _, _, err := s.core.GetObject(ctx, s.loc.Bucket, s.objectName(probeKey), minio.GetObjectOptions{})
	if err == nil {
		return rc.Close()
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code == "NoSuchKey" || resp.Code == "AccessDenied") {
		return nil
	}
	return s.classify("open", err)
}

func (s *S3) String() string { return s.loc.String() }

// ClockOffset is how far the server's clock was ahead of this process's (negative: behind) at its
// last answer, from the answer's Date header (whole seconds, so within about a second); false
// before any answer with a Date. The operator judges retention by the earlier of its clock and the
// storage's, so that its own clock running ahead does not prune early.
func (s *S3) ClockOffset() (time.Duration, bool) { return s.clock.get() }

// serverClock remembers the offset of the server's clock from the answers' Date headers.
type serverClock struct {
	mu     sync.Mutex
	offset time.Duration
	known  bool
}

func (c *serverClock) get() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset, c.known
}

// dateRecorder is the S3 client's transport, noting each answer's Date.
type dateRecorder struct {
	base  http.RoundTripper
	clock *serverClock
}

func (d *dateRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	sent := time.Now()
	resp, err := d.base.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	if date, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
		// Date is truncated to the second: its middle is the best guess of the server's time.
		received := time.Now()
		mid := sent.Add(received.Sub(sent) / 2)
		d.clock.mu.Lock()
		d.clock.offset, d.clock.known = date.Add(500*time.Millisecond).Sub(mid), true
		d.clock.mu.Unlock()
	}
	return resp, nil
}

func (s *S3) objectName(key string) string {
	if s.loc.Prefix == "" {
		return key
	}
	return s.loc.Prefix + "/" + key
}

func (s *S3) keyOf(name string) string {
	if s.loc.Prefix == "" {
		return name
	}
	return strings.TrimPrefix(name, s.loc.Prefix+"/")
}

func (s *S3) dirPrefix(dir string) string {
	if dir == "" {
		if s.loc.Prefix == "" {
			return ""
		}
		return s.loc.Prefix + "/"
	}
	return s.objectName(dir) + "/"
}

// Put uploads r. Input shorter than one part goes up in a single request; longer input becomes a
// multipart upload whose parts are read while the previous one is sent, and which is aborted on any
// failure so that no object and no stray parts remain.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	name := s.objectName(key)
	first := make([]byte, s.partSize)
	n, err := io.ReadFull(r, first)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("put %s: %w", key, err)
		}
		sum := sha256.Sum256(first[:n])
		_, err := s.core.PutObject(ctx, s.loc.Bucket, name, bytes.NewReader(first[:n]), int64(n), "", hex.EncodeToString(sum[:]),
			minio.PutObjectOptions{DisableContentSha256: true})
		if err != nil {
			return 0, s.classify("put "+key, err)
		}
		return int64(n), nil
	}
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	return s.putMultipart(ctx, key, name, first, r)
}

type filledPart struct {
	number int
	buf    []byte
	n      int
}

func (s *S3) putMultipart(ctx context.Context, key, name string, first []byte, r io.Reader) (total int64, err error) {
	uploadID, err := s.core.NewMultipartUpload(ctx, s.loc.Bucket, name, minio.PutObjectOptions{})
	if err != nil {
		return 0, s.classify("put "+key, err)
	}
	defer func() {
		if err == nil {
			return
		}
		// ctx may be what failed; the abort still has to reach the server.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if aerr := s.core.AbortMultipartUpload(actx, s.loc.Bucket, name, uploadID); aerr != nil {
			err = fmt.Errorf("%w (and aborting the upload failed too: %v; it will be removed by a later run)", err, aerr)
		}
	}()

	uctx, cancel := context.WithCancel(ctx)
	defer cancel()
	free := make(chan []byte, 2)
	free <- first
	free <- make([]byte, s.partSize)
	filled := make(chan filledPart)
	type result struct {
		parts []minio.CompletePart
		err   error
	}
	done := make(chan result, 1)
	go func() {
		var parts []minio.CompletePart
		for p := range filled {
			sum := sha256.Sum256(p.buf[:p.n])
			op, err := s.core.PutObjectPart(uctx, s.loc.Bucket, name, uploadID, p.number,
				bytes.NewReader(p.buf[:p.n]), int64(p.n), minio.PutObjectPartOptions{
					Sha256Hex:            hex.EncodeToString(sum[:]),
					DisableContentSha256: true,
				})
			if err != nil {
				cancel()
				for range filled { // let the reader side finish
				}
				done <- result{err: s.classify(fmt.Sprintf("put %s part %d", key, p.number), err)}
				return
			}
			parts = append(parts, minio.CompletePart{PartNumber: op.PartNumber, ETag: op.ETag})
			free <- p.buf
		}
		done <- result{parts: parts}
	}()

	readErr := func() error {
		defer close(filled)
		buf, n := first, len(first)
		<-free // first is already in hand
		for number := 1; ; number++ {
			if number > maxParts {
				return fmt.Errorf("put %s: object larger than %d parts of %d bytes", key, maxParts, s.partSize)
			}
			select {
			case filled <- filledPart{number: number, buf: buf, n: n}:
			case <-uctx.Done():
				return uctx.Err()
			}
			total += int64(n)
			select {
			case buf = <-free:
			case <-uctx.Done():
				return uctx.Err()
			}
			var err error
			n, err = io.ReadFull(r, buf)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = nil
				select {
				case filled <- filledPart{number: number + 1, buf: buf, n: n}:
					total += int64(n)
				case <-uctx.Done():
					return uctx.Err()
				}
				return nil
			}
			if err != nil {
				return fmt.Errorf("put %s: %w", key, err)
			}
		}
	}()
	if readErr != nil {
		cancel() // stop an upload in flight; the object is abandoned anyway
	}
	res := <-done
	// When the upload fails first it cancels uctx, and the reading side then reports only
	// "context canceled"; the upload's error is the one worth showing.
	readStoppedByUpload := errors.Is(readErr, context.Canceled) && ctx.Err() == nil && res.err != nil
	if readErr != nil && !readStoppedByUpload {
		return total, readErr
	}
	if res.err != nil {
		return total, res.err
	}
	if err := ctx.Err(); err != nil {
		return total, fmt.Errorf("put %s: %w", key, err)
	}
	sort.Slice(res.parts, func(i, j int) bool { return res.parts[i].PartNumber < res.parts[j].PartNumber })
	if _, err := s.core.CompleteMultipartUpload(ctx, s.loc.Bucket, name, uploadID, res.parts, minio.PutObjectOptions{}); err != nil {
		return total, s.classify("put "+key+": complete", err)
	}
	return total, nil
}

func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.loc.Bucket, s.objectName(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, s.classify("get "+key, err)
	}
	// GetObject is lazy; Stat makes the request so that a missing key is reported here.
	if _, err := obj.Stat(); err != nil {
		_ = obj.Close()
		return nil, s.classify("get "+key, err)
	}
	return &s3Reader{obj: obj, s: s, key: key}, nil
}

// s3Reader names storage failures that happen mid-download as such.
type s3Reader struct {
	obj *minio.Object
	s   *S3
	key string
}

func (r *s3Reader) Read(p []byte) (int, error) {
	n, err := r.obj.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = r.s.classify("get "+r.key, err)
	}
	return n, err
}

func (r *s3Reader) Close() error { return r.obj.Close() }

func (s *S3) Stat(ctx context.Context, key string) (Object, error) {
	if err := checkKey(key); err != nil {
		return Object{}, err
	}
	oi, err := s.client.StatObject(ctx, s.loc.Bucket, s.objectName(key), minio.StatObjectOptions{})
	if err != nil {
		return Object{}, s.classify("stat "+key, err)
	}
	return Object{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil
}

func (s *S3) List(ctx context.Context, dir string) ([]Object, error) {
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	var out []Object
	for oi := range s.client.ListObjects(ctx, s.loc.Bucket, minio.ListObjectsOptions{Prefix: s.dirPrefix(dir), Recursive: true}) {
		if oi.Err != nil {
			return nil, s.classify("list "+dir, oi.Err)
		}
		if strings.HasSuffix(oi.Key, "/") {
			continue // directory markers some servers show
		}
		out = append(out, Object{Key: s.keyOf(oi.Key), Size: oi.Size, ModTime: oi.LastModified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.loc.Bucket, s.objectName(key), minio.RemoveObjectOptions{})
	if err != nil {
		if err := s.classify("delete "+key, err); errors.Is(err, ErrNotFound) {
			return nil
		}
		return s.classify("delete "+key, err)
	}
	return nil
}

func (s *S3) RemoveIncomplete(ctx context.Context, dir string, olderThan time.Time) ([]string, error) {
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	var removed []string
	for u := range s.client.ListIncompleteUploads(ctx, s.loc.Bucket, s.dirPrefix(dir), true) {
		if u.Err != nil {
			return removed, s.classify("list incomplete uploads under "+dir, u.Err)
		}
		if !u.Initiated.Before(olderThan) {
			continue
		}
		if err := s.core.AbortMultipartUpload(ctx, s.loc.Bucket, u.Key, u.UploadID); err != nil {
			return removed, s.classify("abort incomplete upload of "+s.keyOf(u.Key), err)
		}
		removed = append(removed, s.keyOf(u.Key))
	}
	return removed, nil
}

// classify turns minio-go's errors into this package's: ErrNotFound for missing keys, an
// UnreachableError for transport failures, and a short message for the server's other answers.
func (s *S3) classify(op string, err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.Code != "" {
		switch resp.Code {
		case "NoSuchKey", "NoSuchUpload":
			return fmt.Errorf("%s: %w", op, ErrNotFound)
		case "NoSuchBucket":
			return fmt.Errorf("%s: S3 bucket %q does not exist at %s", op, s.loc.Bucket, s.loc.Endpoint)
		case "AccessDenied":
			return fmt.Errorf("%s: S3 %w (%s): the credential in AWS_ACCESS_KEY_ID is unknown or not allowed to do this", op, ErrAccessDenied, resp.Code)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch":
			return fmt.Errorf("%s: S3 %w (%s): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", op, ErrAccessDenied, resp.Code)
		}
		return fmt.Errorf("%s: S3 error %s: %s", op, resp.Code, resp.Message)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	var nerr net.Error
	var operr *net.OpError
	var dnserr *net.DNSError
	if errors.As(err, &operr) || errors.As(err, &dnserr) || (errors.As(err, &nerr) && nerr.Timeout()) ||
		errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "connection refused") {
		return &UnreachableError{Location: s.loc.Endpoint, Err: err}
	}
	return fmt.Errorf("%s: %w", op, err)
}
