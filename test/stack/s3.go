package stack

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a running versitygw (posix backend) on 127.0.0.1 with one empty bucket.
type S3 struct {
	Endpoint  string // host:port
	Region    string
	Bucket    string
	AccessKey string
	SecretKey string
	// Root is the directory versitygw serves; each subdirectory is a bucket.
	Root string
	// Client talks to the server directly, for tests that inspect or tamper with objects.
	Client *minio.Client
	// iam is set when accounts other than the root can be created (WithIAM).
	iam bool
	bin string
}

// S3Option changes how StartS3 starts the server.
type S3Option func(*S3)

// WithIAM keeps accounts in versitygw's internal IAM (a directory of its own), so that a test can
// create accounts with CreateUser and grant them rights with SetBucketPolicy.
func WithIAM() S3Option { return func(s *S3) { s.iam = true } }

// StartS3 starts versitygw from bin/versitygw with random credentials and a bucket named "backups",
// and stops it when the test ends.
func StartS3(t testing.TB, opts ...S3Option) *S3 {
	t.Helper()
	bin := filepath.Join(RepoRoot(t), "bin", "versitygw")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("stack: %s not found; build it with `make bin/versitygw` (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)", bin)
	}
	// The posix backend keeps metadata in extended attributes, which /tmp supports; t.TempDir() may
	// be elsewhere (TMPDIR), so the root is made under /tmp explicitly.
	root, err := os.MkdirTemp("/tmp", "tenantops-s3-")
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	s := &S3{Region: "us-east-1", Bucket: "backups", AccessKey: "AK" + randomHex(t, 9), SecretKey: randomHex(t, 20), Root: filepath.Join(root, "data"), bin: bin}
	for _, o := range opts {
		o(s)
	}
	if err := os.Mkdir(s.Root, 0o700); err != nil {
		t.Fatalf("stack: %v", err)
	}
	var iamArgs []string
	if s.iam {
		dir := filepath.Join(root, "iam")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatalf("stack: %v", err)
		}
		// No cache: an account or policy a test just changed must take effect at once.
		iamArgs = []string{"--iam-dir", dir, "--iam-cache-disable"}
	}
	logPath := filepath.Join(root, "versitygw.log")

	var cmd *exec.Cmd
	for attempt := 0; attempt < 3; attempt++ {
		s.Endpoint = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatalf("stack: %v", err)
		}
		args := append([]string{"--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
			"--port", s.Endpoint, "--quiet"}, iamArgs...)
		cmd = exec.Command(bin, append(args, "posix", s.Root)...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("stack: start %s: %v", bin, err)
		}
		_ = logFile.Close()
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		if s.waitReady(exited) {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return s
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Fatalf("stack: versitygw did not become ready on %s: %s", s.Endpoint, tail(logPath, 20))
	return nil
}

func (s *S3) waitReady(exited <-chan struct{}) bool {
	client, err := minio.New(s.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
	if err != nil {
		return false
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		case <-time.After(50 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := client.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region})
		cancel()
		if err == nil {
			s.Client = client
			return true
		}
	}
	return false
}

// Location is the agent's LOCATION for this server's bucket under prefix.
func (s *S3) Location(prefix string) string {
	u := url.URL{Scheme: "s3", Host: s.Bucket, Path: "/" + prefix}
	u.RawQuery = "endpoint=" + s.Endpoint + "&region=" + url.QueryEscape(s.Region) + "&insecure=true"
	return u.String()
}

// Env is the environment that gives the agent this server's credentials.
func (s *S3) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey}
}

// SetEnv sets this server's credentials in the test's environment (restored when the test ends).
func (s *S3) SetEnv(t testing.TB) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
}

// Account is an S3 access key and its secret.
type Account struct {
	AccessKey, SecretKey string
}

// Env is the environment that gives the agent this account's credentials.
func (a Account) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + a.AccessKey, "AWS_SECRET_ACCESS_KEY=" + a.SecretKey}
}

// CreateUser creates an account of versitygw's role "user", which may do nothing of its own: only
// what a bucket policy grants it. The server must have been started WithIAM.
func (s *S3) CreateUser(t testing.TB) Account {
	t.Helper()
	if !s.iam {
		t.Fatal("stack: CreateUser needs StartS3(t, stack.WithIAM())")
	}
	a := Account{AccessKey: "AK" + randomHex(t, 9), SecretKey: randomHex(t, 20)}
	// versitygw's own admin client signs the request to its admin API, served on the S3 port.
	cmd := exec.Command(s.bin, "admin", "--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
		"--endpoint-url", "http://"+s.Endpoint, "create-user", "--access", a.AccessKey, "--secret", a.SecretKey, "--role", "user")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("stack: create versitygw user: %v: %s", err, out)
	}
	return a
}

// SetBucketPolicy replaces the bucket's policy, as its owner (the root account).
func (s *S3) SetBucketPolicy(t testing.TB, policy string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Client.SetBucketPolicy(ctx, s.Bucket, policy); err != nil {
		t.Fatalf("stack: set bucket policy: %v\n%s", err, policy)
	}
}

// ClientFor talks to the server as a.
func (s *S3) ClientFor(t testing.TB, a Account) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(a.AccessKey, a.SecretKey, ""), Region: s.Region, BucketLookup: minio.BucketLookupPath, MaxRetries: 1,
	})
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	return c
}
