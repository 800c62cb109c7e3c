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
}

// StartS3 starts versitygw from bin/versitygw with random credentials and a bucket named "backups",
// and stops it when the test ends.
func StartS3(t testing.TB) *S3 {
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
	s := &S3{Region: "us-east-1", Bucket: "backups", AccessKey: "AK" + randomHex(t, 9), SecretKey: randomHex(t, 20), Root: filepath.Join(root, "data")}
	if err := os.Mkdir(s.Root, 0o700); err != nil {
		t.Fatalf("stack: %v", err)
	}
	logPath := filepath.Join(root, "versitygw.log")

	var cmd *exec.Cmd
	for attempt := 0; attempt < 3; attempt++ {
		s.Endpoint = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatalf("stack: %v", err)
		}
		cmd = exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
			"--port", s.Endpoint, "--quiet", "posix", s.Root)
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
